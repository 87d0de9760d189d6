//! Ctrl-C during a run: the first stops firing and lets in-flight requests
//! finish within the grace period (results are still written); the second
//! aborts what is left.

use tokio::sync::watch;

/// How far a user has asked the run to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopLevel {
    /// Keep going.
    Running,
    /// Stop firing; finish in-flight requests.
    Stop,
    /// Cut everything now.
    Abort,
}

/// The stop requests of one run, shared by the engine and the consumer.
#[derive(Debug, Clone)]
pub struct StopSignal {
    rx: watch::Receiver<StopLevel>,
}

/// The sending side, for the Ctrl-C listener or tests.
#[derive(Debug)]
pub struct StopHandle {
    tx: watch::Sender<StopLevel>,
}

/// A fresh signal at [`StopLevel::Running`].
pub fn stop_signal() -> (StopHandle, StopSignal) {
    let (tx, rx) = watch::channel(StopLevel::Running);
    (StopHandle { tx }, StopSignal { rx })
}

impl StopHandle {
    /// Raises the level one step (Running → Stop → Abort); returns the new
    /// level.
    pub fn escalate(&self) -> StopLevel {
        let mut now = StopLevel::Running;
        self.tx.send_modify(|l| {
            *l = match *l {
                StopLevel::Running => StopLevel::Stop,
                _ => StopLevel::Abort,
            };
            now = *l;
        });
        now
    }
}

impl StopSignal {
    /// Resolves once the level reaches `level` (never, if every handle is
    /// gone first).
    pub async fn reached(mut self, level: StopLevel) {
        if self.rx.wait_for(|l| *l >= level).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// The level now.
    pub fn level(&self) -> StopLevel {
        *self.rx.borrow()
    }
}

/// Escalates `handle` on each Ctrl-C, telling the user what happens, until
/// the run aborts. Spawn it; drop (abort) the task when the run ends.
pub async fn listen_for_ctrl_c(handle: StopHandle, grace_s: f64) {
    while tokio::signal::ctrl_c().await.is_ok() {
        match handle.escalate() {
            StopLevel::Stop => eprintln!(
                "\nquarry: stopping: no new requests; in-flight ones get up to {grace_s:.0}s to finish (Ctrl-C again to abort)"
            ),
            _ => {
                eprintln!("\nquarry: aborting; writing what was recorded");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn escalates_stop_then_abort() {
        let (handle, signal) = stop_signal();
        assert_eq!(signal.level(), StopLevel::Running);
        assert_eq!(handle.escalate(), StopLevel::Stop);
        signal.clone().reached(StopLevel::Stop).await;
        assert_eq!(handle.escalate(), StopLevel::Abort);
        assert_eq!(handle.escalate(), StopLevel::Abort);
        signal.reached(StopLevel::Abort).await;
    }
}
