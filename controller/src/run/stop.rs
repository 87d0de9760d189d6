//! Ctrl-C or SIGTERM during a run: the first stops firing and lets in-flight requests
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

/// Escalates `handle` on each Ctrl-C (SIGINT) or SIGTERM — `timeout`,
/// systemd, CI runners and Kubernetes stop a process with SIGTERM, so it is
/// a first Ctrl-C too — telling the user what happens, until the run
/// aborts. Spawn it; drop (abort) the task when the run ends.
pub async fn listen_for_stop_signals(handle: StopHandle, grace_s: f64) {
    let mut signals = match StopSignals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "quarry: cannot listen for Ctrl-C or SIGTERM ({e}); the run cannot be stopped gracefully"
            );
            return;
        }
    };
    while let Some(name) = signals.next().await {
        match handle.escalate() {
            StopLevel::Stop => eprintln!(
                "\nquarry: {name}: stopping: no new requests; in-flight ones get up to {grace_s:.0}s to finish (Ctrl-C or SIGTERM again to abort)"
            ),
            _ => {
                eprintln!("\nquarry: {name} again: aborting; writing what was recorded");
                return;
            }
        }
    }
}

/// The process signals that ask a run to stop.
struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(StopSignals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(StopSignals {})
    }

    /// The next signal's name; `None` once no more can arrive.
    async fn next(&mut self) -> Option<&'static str> {
        #[cfg(unix)]
        {
            tokio::select! {
                s = self.interrupt.recv() => s.map(|()| "interrupted (SIGINT)"),
                s = self.terminate.recv() => s.map(|()| "terminated (SIGTERM)"),
            }
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c()
            .await
            .ok()
            .map(|()| "interrupted (Ctrl-C)")
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
