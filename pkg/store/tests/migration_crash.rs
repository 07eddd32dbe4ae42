//! `kill -9` during the schema 1 → 2 migration (`drop_dead_tables`, run by
//! `Store::open`) and during the 2 → 1 rollback (`recreate_dead_tables`, run
//! by `Store::roll_back_schema`): the file must always be whole at version 1
//! (exactly the schema-1 contents) or at version 2 (exactly the migrated
//! contents), and open afterwards. A child process (this binary, re-executed
//! with `OUTPOST_STORE_MIGRATION_CHILD=<forward|backward>:<db path>`) runs the
//! step; the parent kills it at a random moment within the step's measured
//! duration.
//!
//! `harness = false`: `main` is either the parent test or the child.

#[path = "common/filter.rs"]
mod filter;

#[path = "common/v1.rs"]
mod v1;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use outpost_store::Store;
use rand::Rng;
use v1::Contents;

const CHILD_ENV: &str = "OUTPOST_STORE_MIGRATION_CHILD";
const TEST_NAME: &str = "kill9_during_schema_migration_leaves_version_1_or_2";
const KILLS: usize = 25;
/// Enough records that one step takes tens of milliseconds to commit.
const APPS: usize = 3000;

/// A consistent schema-1 file, as the schema-1 agent wrote it.
fn template() -> Contents {
    let mut c = Contents {
        version: 1,
        ..Contents::default()
    };
    c.checkpoints
        .insert("applied".into(), (9, 9_000, b"{\"generation\":9}".to_vec()));
    c.handlers.insert("convertPersistVolumes".into(), 1);
    for i in 0..APPS {
        let uuid = format!("{i:08}-0000-4000-8000-000000000000");
        let active = i % 3 != 0;
        let purge = (i % 5) as u64;
        let rec = serde_json::json!({
            "applied": {"uuid": uuid, "purge_counter": purge, "pad": "p".repeat(700 + i % 300)},
            "was_active": active,
            "restarts": i,
        });
        c.records
            .insert(uuid.clone(), serde_json::to_vec(&rec).unwrap());
        c.purge_counters.insert(uuid.clone(), purge);
        if active {
            c.active.insert(uuid.clone());
        }
        if i % 7 == 0 {
            c.locals.insert(uuid, (1, 0));
        }
    }
    c
}

fn migrated(c: &Contents) -> Contents {
    Contents {
        version: 2,
        purge_counters: BTreeMap::new(),
        active: BTreeSet::new(),
        ..c.clone()
    }
}

fn child(spec: &str) -> ! {
    let (step, path) = spec.split_once(':').expect("child spec <step>:<path>");
    let path = Path::new(path);
    println!("start");
    match step {
        "forward" => drop(Store::open(path).expect("child: open (forward migration)")),
        "backward" => {
            let v = Store::roll_back_schema(path, &outpost_store::schema::CURRENT)
                .expect("child: roll back");
            assert_eq!(v, 1);
        }
        other => panic!("unknown child step {other}"),
    }
    println!("done");
    std::process::exit(0)
}

/// Runs the child on `path`, killing it `kill_after` after it reported its
/// start (`None`: let it finish). Returns (time from start to done if it
/// reported done, whether it did).
fn run_child(step: &str, path: &Path, kill_after: Option<Duration>) -> (Duration, bool) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, format!("{step}:{}", path.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "start", "child did not start");
    let started = Instant::now();
    if let Some(delay) = kill_after {
        thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL; harmless if it already exited
    }
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let elapsed = started.elapsed();
    let status = child.wait().unwrap();
    let done = rest.lines().any(|l| l == "done");
    if kill_after.is_none() {
        assert!(status.success() && done, "child {step} failed: {status}");
    }
    (elapsed, done)
}

/// Checks the file is whole at 1 or 2 and opens; returns its version.
fn verify(path: &Path, v1_contents: &Contents, v2_contents: &Contents) -> u32 {
    let names = v1::tables(path);
    let dead = v1::DEAD_TABLES.map(|t| names.contains(t));
    let version = v1::read(path, false).version;
    match version {
        1 => {
            assert_eq!(dead, [true, true], "a version-1 file has both tables");
            assert!(
                v1::read(path, true) == *v1_contents,
                "version 1 but not the schema-1 contents"
            );
        }
        2 => {
            assert_eq!(dead, [false, false], "a version-2 file has neither table");
            assert!(
                v1::read(path, false) == *v2_contents,
                "version 2 but not the migrated contents"
            );
        }
        v => panic!("file at schema version {v}"),
    }
    // and the agent opens it, whichever it is
    let store = Store::open(path).expect("open after kill -9");
    assert_eq!(store.schema_version().unwrap(), 2);
    assert_eq!(
        store.app_records::<serde_json::Value>().unwrap().len(),
        APPS
    );
    version
}

fn kills(step: &str, dir: &Path, start: &Path, v1c: &Contents, v2c: &Contents) {
    let mut rng = rand::rng();
    let fresh = |n: usize| -> PathBuf {
        let p = dir.join(format!("{step}-{n}.redb"));
        std::fs::copy(start, &p).unwrap();
        p
    };
    // median of three undisturbed runs
    let mut runs: Vec<Duration> = (0..3)
        .map(|i| run_child(step, &fresh(usize::MAX - i), None).0)
        .collect();
    runs.sort();
    let full = runs[1];
    let window_us = (full.as_micros() as u64 * 6 / 5).max(1);
    let mut found = BTreeMap::<(u32, bool), usize>::new();
    for n in 0..KILLS {
        let path = fresh(n);
        let delay = Duration::from_micros(rng.random_range(0..window_us));
        let (_, done) = run_child(step, &path, Some(delay));
        let version = verify(&path, v1c, v2c);
        let want_after = if step == "forward" { 2 } else { 1 };
        assert!(
            !done || version == want_after,
            "{step}: the child finished but the file is at {version}"
        );
        *found.entry((version, done)).or_default() += 1;
        std::fs::remove_file(&path).unwrap();
    }
    println!(
        "{step}: step takes {:.1} ms in a child (incl. open); {KILLS} kills within {:.1} ms: \
         (version, child had finished) -> count {found:?}",
        full.as_secs_f64() * 1e3,
        window_us as f64 / 1e3
    );
}

fn parent() {
    let dir = tempfile::tempdir().unwrap();
    let v1c = template();
    let v2c = migrated(&v1c);
    let at_1 = dir.path().join("template-v1.redb");
    v1::write(&at_1, &v1c);
    assert!(v1::read(&at_1, true) == v1c);
    let at_2 = dir.path().join("template-v2.redb");
    std::fs::copy(&at_1, &at_2).unwrap();
    drop(Store::open(&at_2).unwrap());
    assert!(v1::read(&at_2, false) == v2c);
    kills("forward", dir.path(), &at_1, &v1c, &v2c);
    kills("backward", dir.path(), &at_2, &v1c, &v2c);
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
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
    parent();
    println!("test {TEST_NAME} ... ok\n");
}
