//! Crash safety: a child process (this same binary, re-executed with
//! `OUTPOST_STORE_CRASH_CHILD=<db path>`) commits batches in a loop; each batch
//! writes a config document and several app records that all carry the
//! same sequence number. The parent
//! `kill -9`s it at random moments, reopens the store and checks that it
//! holds exactly one committed batch, never older than the last one the child
//! reported as committed, and never going backwards across kills.
//!
//! `harness = false`: `main` is either the parent test or the child writer.

#[path = "common/filter.rs"]
mod filter;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use outpost_store::{Batch, Store};
use rand::Rng;
use serde::{Deserialize, Serialize};

const CHILD_ENV: &str = "OUTPOST_STORE_CRASH_CHILD";
const TEST_NAME: &str = "kill9_during_writes_keeps_one_consistent_batch";
const KILLS: usize = 30;
const CREATION_KILLS: usize = 40;
const APPS: usize = 6;
/// Present only in even sequences, so removal is part of the atomic batch.
const EXTRA: &str = "extra-app";

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    seq: u64,
    uuid: String,
    pad: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ConfigDoc {
    seq: u64,
    pad: String,
}

fn uuid(i: usize) -> String {
    format!("app-{i}")
}

/// Varies with `seq` so that consecutive batches touch different page layouts.
fn pad(seq: u64, salt: u64) -> String {
    let len = 512 + ((seq * 7919 + salt * 104_729) % 24_000) as usize;
    char::from(b'a' + (seq % 26) as u8).to_string().repeat(len)
}

fn batch_for(seq: u64) -> Batch {
    let doc = ConfigDoc {
        seq,
        pad: pad(seq, 1000),
    };
    let mut batch = Batch::new().config(serde_json::to_vec(&doc).unwrap(), seq, seq);
    for i in 0..APPS {
        let uuid = uuid(i);
        let rec = Record {
            seq,
            uuid: uuid.clone(),
            pad: pad(seq, i as u64),
        };
        batch = batch.put(&uuid, &rec).unwrap();
    }
    if seq % 2 == 0 {
        let rec = Record {
            seq,
            uuid: EXTRA.into(),
            pad: pad(seq, 99),
        };
        batch.put(EXTRA, &rec).unwrap()
    } else {
        batch.remove(EXTRA)
    }
}

/// Child: commit forever, printing each sequence number once it is committed.
fn child(path: &Path) -> ! {
    let store = Store::open(path).expect("child: open store");
    let mut seq = store
        .applied_config()
        .expect("child: read applied config")
        .map_or(0, |c| c.generation);
    let mut out = std::io::stdout().lock();
    loop {
        seq += 1;
        store.commit(batch_for(seq)).expect("child: commit");
        writeln!(out, "{seq}").unwrap();
        out.flush().unwrap();
    }
}

/// Checks the store holds exactly one whole batch; returns its sequence (0: none yet).
fn verify(path: &Path) -> u64 {
    let store = Store::open(path).expect("reopen after kill -9");
    let Some(cp) = store.applied_config().unwrap() else {
        assert!(store.app_records::<Record>().unwrap().is_empty());
        return 0;
    };
    let seq = cp.generation;
    assert_eq!(cp.saved_ms, seq);
    let doc: ConfigDoc = serde_json::from_slice(&cp.raw).expect("config document intact");
    assert_eq!(doc.seq, seq, "config document from another batch");
    assert_eq!(doc.pad, pad(seq, 1000));

    let records: BTreeMap<String, Record> = store.app_records().unwrap();
    let mut want_keys: BTreeSet<String> = (0..APPS).map(uuid).collect();
    if seq % 2 == 0 {
        want_keys.insert(EXTRA.into());
    }
    assert_eq!(
        records.keys().cloned().collect::<BTreeSet<_>>(),
        want_keys,
        "record set of batch {seq}"
    );
    for (key, rec) in &records {
        assert_eq!(
            rec.seq, seq,
            "record {key} is from batch {}, config from batch {seq}",
            rec.seq
        );
        assert_eq!(&rec.uuid, key);
        let salt = if key == EXTRA {
            99
        } else {
            key[4..].parse().unwrap()
        };
        assert_eq!(rec.pad, pad(seq, salt), "record {key} padding");
    }
    seq
}

/// Spawns the child writer on `path`; its committed sequence numbers land in the returned counter.
fn spawn_child(path: &Path) -> (std::process::Child, Arc<AtomicU64>, thread::JoinHandle<()>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child writer");
    let acked = Arc::new(AtomicU64::new(0));
    let stdout = child.stdout.take().unwrap();
    let reader = {
        let acked = Arc::clone(&acked);
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let seq: u64 = line.unwrap().trim().parse().unwrap();
                acked.store(seq, Ordering::SeqCst);
            }
        })
    };
    (child, acked, reader)
}

/// Phase 1: kill the child while it is still creating a brand-new file.
fn kill_during_creation() {
    let mut rng = rand::rng();
    let (mut before_creation, mut mid_creation, mut after_creation) = (0, 0, 0);
    for kill in 0..CREATION_KILLS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh.redb");
        let (mut child, acked, reader) = spawn_child(&path);
        // creation takes a few ms to tens of ms (fsyncs): aim half the kills early
        let max_us = if rng.random_bool(0.5) { 10_000 } else { 40_000 };
        thread::sleep(Duration::from_micros(rng.random_range(0..max_us)));
        if let Some(status) = child.try_wait().unwrap() {
            panic!("child writer exited on its own with {status} (creation kill {kill})");
        }
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        let mut staging = path.clone().into_os_string();
        staging.push(".creating");
        match (Path::new(&staging).exists(), path.exists()) {
            (true, _) => mid_creation += 1,
            (false, false) => before_creation += 1,
            (false, true) => after_creation += 1,
        }
        let seq = verify(&path);
        assert!(seq >= acked.load(Ordering::SeqCst), "creation kill {kill}");
    }
    println!(
        "{CREATION_KILLS} kills of a new store: {before_creation} before creation, \
         {mid_creation} mid-creation, {after_creation} after it; all reopened"
    );
}

fn parent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let mut rng = rand::rng();
    let mut last_seq = 0;
    let (mut progressed, mut in_flight_landed) = (0, 0);
    let started = Instant::now();
    for kill in 0..KILLS {
        let (mut child, acked, reader) = spawn_child(&path);
        // mostly mid-run (after the first commit of this run), sometimes
        // during start-up and crash recovery
        let early = rng.random_bool(0.2);
        if early {
            thread::sleep(Duration::from_millis(rng.random_range(0..15)));
        } else {
            let deadline = Instant::now() + Duration::from_secs(60);
            while acked.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                thread::sleep(Duration::from_millis(1));
            }
            thread::sleep(Duration::from_millis(rng.random_range(0..150)));
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("child writer exited on its own with {status} before kill {kill}");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let acked = acked.load(Ordering::SeqCst);

        let seq = verify(&path);
        assert!(
            seq >= last_seq,
            "kill {kill}: sequence went backwards from {last_seq} to {seq}"
        );
        assert!(
            seq >= acked,
            "kill {kill}: batch {acked} was reported committed, store has {seq}"
        );
        // the child starts from the stored batch, and at most one commit is in flight
        let known = acked.max(last_seq);
        assert!(
            seq <= known + 1,
            "kill {kill}: store has {seq}, last known batch {known}"
        );
        if seq > last_seq {
            progressed += 1;
        } else {
            assert!(
                early,
                "kill {kill}: a mid-run kill after a commit left no progress"
            );
        }
        if seq == acked + 1 {
            in_flight_landed += 1;
        }
        last_seq = seq;
    }
    println!(
        "{KILLS} kills in {:.1}s: {progressed} runs committed, final batch {last_seq}, \
         {in_flight_landed} kills landed between commit and report",
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&path));
    }
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        println!("{TEST_NAME}: test");
        return;
    }
    if !filter::selected(&args, TEST_NAME) {
        println!("\nrunning 0 tests\n");
        return;
    }
    println!("\nrunning 1 test");
    kill_during_creation();
    parent();
    println!("test {TEST_NAME} ... ok\n");
}
