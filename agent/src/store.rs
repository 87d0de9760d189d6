//! The results store: each run's event log on disk, so `Results` can replay
//! any recent run after the controller died or the agent restarted.
//!
//! Layout: `<results-dir>/<run_id>/events.bin`, one record per event: a
//! little-endian `u32` length, then the `quarry.v1.RunEvent` protobuf. Each
//! record is written with one `write_all` on an unbuffered file as the event
//! is appended, so a crash of the agent loses nothing that was streamed (a
//! power loss may lose what the OS had not flushed). A record cut short by a
//! crash is ignored on load.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use prost::Message;
use quarry_proto::v1 as pb;

use super::DaemonError;

/// The event log's file name inside a run's directory.
const EVENTS_FILE: &str = "events.bin";

/// Longest run id accepted (it becomes a directory name).
const MAX_RUN_ID: usize = 128;

fn storage(path: &Path, e: impl std::fmt::Display) -> DaemonError {
    DaemonError::Storage {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

/// Refuses run ids that are not safe as one directory name: 1 to 128 of
/// `A-Z a-z 0-9 . _ -`, not starting with a dot.
pub(crate) fn check_run_id(id: &str) -> Result<(), DaemonError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_RUN_ID
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(DaemonError::Plan(format!(
            "run_id {id:?} must be 1 to {MAX_RUN_ID} of A-Z a-z 0-9 . _ - and not start with a dot"
        )))
    }
}

/// A run's results directory and its event file.
#[derive(Debug, Clone)]
pub(crate) struct ResultsStore {
    root: PathBuf,
}

/// An open event file, appended to as events happen.
#[derive(Debug)]
pub(crate) struct EventFile {
    file: File,
    path: PathBuf,
    /// Bytes written so far: where the next record starts.
    len: u64,
}

impl EventFile {
    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Where the next record will start.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends one record.
    pub(crate) fn append(&mut self, event: &pb::RunEvent) -> Result<(), DaemonError> {
        let body = event.encode_to_vec();
        let len = u32::try_from(body.len()).map_err(|_| storage(&self.path, "event over 4 GiB"))?;
        let mut record = Vec::with_capacity(4 + body.len());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&body);
        // One write per record: a reader (or a crash) sees whole records or
        // a cut-short tail, never interleaving.
        self.file
            .write_all(&record)
            .map_err(|e| storage(&self.path, e))?;
        self.len += record.len() as u64;
        Ok(())
    }
}

/// Up to `max` whole records of the event file at `path`, from byte
/// `offset` (where a record starts): how a log reads back events it no
/// longer holds in memory.
pub(crate) fn read_records(
    path: &Path,
    offset: u64,
    max: usize,
) -> Result<Vec<pb::RunEvent>, DaemonError> {
    use std::io::{BufReader, Read, Seek, SeekFrom};
    let mut file = BufReader::new(File::open(path).map_err(|e| storage(path, e))?);
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| storage(path, e))?;
    let mut events = Vec::with_capacity(max);
    let mut len = [0u8; 4];
    let mut body = Vec::new();
    while events.len() < max {
        match file.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(storage(path, e)),
        }
        body.resize(u32::from_le_bytes(len) as usize, 0);
        file.read_exact(&mut body).map_err(|e| storage(path, e))?;
        events.push(pb::RunEvent::decode(body.as_slice()).map_err(|e| storage(path, e))?);
    }
    Ok(events)
}

impl ResultsStore {
    /// The store under `root`, created if missing.
    pub(crate) fn open(root: &Path) -> Result<Self, DaemonError> {
        fs::create_dir_all(root).map_err(|e| storage(root, e))?;
        Ok(ResultsStore {
            root: root.to_path_buf(),
        })
    }

    fn events_path(&self, run_id: &str) -> PathBuf {
        self.root.join(run_id).join(EVENTS_FILE)
    }

    /// True when a run with this id is stored.
    pub(crate) fn exists(&self, run_id: &str) -> bool {
        self.root.join(run_id).exists()
    }

    /// Creates a new run's event file; an existing run is refused.
    pub(crate) fn create(&self, run_id: &str) -> Result<EventFile, DaemonError> {
        let dir = self.root.join(run_id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(DaemonError::RunExists(run_id.to_owned()));
            }
            Err(e) => return Err(storage(&dir, e)),
        }
        let path = self.events_path(run_id);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| storage(&path, e))?;
        Ok(EventFile { file, path, len: 0 })
    }

    /// Opens a stored run's event file for appending (to close a log that a
    /// crash left without its `Finished`).
    pub(crate) fn reopen(&self, run_id: &str) -> Result<EventFile, DaemonError> {
        let path = self.events_path(run_id);
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| storage(&path, e))?;
        let len = file.metadata().map_err(|e| storage(&path, e))?.len();
        Ok(EventFile { file, path, len })
    }

    /// Removes a run's directory (a run that failed before it started).
    pub(crate) fn remove(&self, run_id: &str) {
        let dir = self.root.join(run_id);
        if let Err(e) = fs::remove_dir_all(&dir) {
            tracing::warn!(path = %dir.display(), error = %e, "could not remove run directory");
        }
    }

    /// A stored run's events, or `None` when no such run is stored. A record
    /// cut short at the end (a crash mid-write) is dropped.
    pub(crate) fn load(&self, run_id: &str) -> Result<Option<Vec<pb::RunEvent>>, DaemonError> {
        let path = self.events_path(run_id);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(storage(&path, e)),
        };
        let mut events = Vec::new();
        let mut rest = bytes.as_slice();
        while rest.len() >= 4 {
            let (len, tail) = rest.split_at(4);
            // unwrap is safe because split_at(4) gave exactly four bytes
            let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
            if tail.len() < len {
                tracing::warn!(path = %path.display(), "ignoring a truncated last event");
                break;
            }
            let (body, tail) = tail.split_at(len);
            let event = pb::RunEvent::decode(body).map_err(|e| storage(&path, e))?;
            events.push(event);
            rest = tail;
        }
        Ok(Some(events))
    }

    /// Deletes the oldest stored runs (by directory modification time) beyond
    /// the newest `keep`, sparing `spare` (live runs). Returns the removed ids.
    pub(crate) fn prune(&self, keep: usize, spare: &[String]) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut runs: Vec<(std::time::SystemTime, String)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join(EVENTS_FILE).exists())
            .filter_map(|e| {
                let modified = e.metadata().ok()?.modified().ok()?;
                Some((modified, e.file_name().to_str()?.to_owned()))
            })
            .collect();
        runs.sort_by_key(|r| std::cmp::Reverse(r.0));
        let mut removed = Vec::new();
        for (_, id) in runs.into_iter().skip(keep) {
            if !spare.contains(&id) {
                self.remove(&id);
                removed.push(id);
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(sequence: u64) -> pb::RunEvent {
        pb::RunEvent {
            sequence,
            event: Some(pb::run_event::Event::Started(pb::Started {
                started_at_unix_ns: sequence as i64,
            })),
        }
    }

    #[test]
    fn events_survive_a_reload_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResultsStore::open(dir.path()).unwrap();
        let mut file = store.create("run-1").unwrap();
        for s in 1..=3 {
            file.append(&event(s)).unwrap();
        }
        assert!(matches!(
            store.create("run-1"),
            Err(DaemonError::RunExists(_))
        ));
        // A crash mid-write leaves a partial record.
        file.file.write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
        let loaded = store.load("run-1").unwrap().unwrap();
        assert_eq!(loaded, vec![event(1), event(2), event(3)]);
        assert_eq!(store.load("nope").unwrap(), None);
    }

    #[test]
    fn run_ids_must_be_plain_names() {
        for ok in ["run-1", "2024.01.01_x", "A"] {
            check_run_id(ok).unwrap();
        }
        for bad in ["", "..", ".hidden", "a/b", "a\\b", &"x".repeat(129)] {
            assert!(check_run_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prune_keeps_the_newest_and_spares_live_runs() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResultsStore::open(dir.path()).unwrap();
        for id in ["a", "b", "c"] {
            store.create(id).unwrap();
        }
        let removed = store.prune(0, &["b".to_owned()]);
        assert_eq!(removed.len(), 2);
        assert!(store.exists("b") && !store.exists("a") && !store.exists("c"));
    }
}
