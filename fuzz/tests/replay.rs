//! Replays every committed fuzz input (`fuzz/corpus/TARGET/*` and
//! `fuzz/regressions/TARGET/*`) through the target's function in the normal
//! build: no input may panic. Deterministic and fast (each target's
//! function is the one the campaigns ran; errors are fine).

use std::path::{Path, PathBuf};

use quarry_fuzz::TARGETS;

/// The files directly under `dir`, sorted (none when it does not exist).
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(kind: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(kind);
    let mut replayed = 0;
    for (name, run) in TARGETS {
        for file in inputs(&root.join(name)) {
            let data = std::fs::read(&file).expect("a readable fuzz input");
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(
                outcome.is_ok(),
                "fuzz target {name} panicked on {}",
                file.display()
            );
            replayed += 1;
        }
    }
    replayed
}

#[test]
fn every_corpus_input_is_handled_without_a_panic() {
    let replayed = replay("corpus");
    // Every target has a seeded corpus; an empty one would make this test
    // pass without replaying anything.
    for (name, _) in TARGETS {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(name);
        assert!(!inputs(&dir).is_empty(), "fuzz/corpus/{name} has no inputs");
    }
    assert!(replayed >= TARGETS.len());
}

#[test]
fn every_crash_reproducer_is_handled_without_a_panic() {
    replay("regressions");
}

#[test]
fn targets_are_named_uniquely_and_found_by_name() {
    for (i, (name, _)) in TARGETS.iter().enumerate() {
        assert!(TARGETS[..i].iter().all(|(other, _)| other != name));
        assert!(quarry_fuzz::target(name).is_some());
    }
    assert!(quarry_fuzz::target("no-such-target").is_none());
}
