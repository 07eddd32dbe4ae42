//! Hostile config documents (issue 18) against the real `outpostd` (its own
//! user containerd, memlogd, redb) and the real `outpost-controller`:
//! alias bombs and deep nesting are refused at once in bounded memory
//! (VmHWM of the real processes), duplicate keys and non-UTF-8 input are
//! refused with their line and column, type errors carry the full field
//! path, and entries without a UUID of their own show in `outpost list` and
//! in the device's info report at the controller.

use std::time::{Duration, Instant};

use outpost_api::{AppStatus, SwState};
use outpost_tests::agent::{app_yaml, tail, AgentEnv};
use outpost_tests::controller::{device, Controller};
use outpost_tests::vm_hwm_kib;

const T: Duration = Duration::from_secs(60);
/// Allowed growth of a process's peak RSS while it handles the hostile inputs.
const MAX_GROWTH_KIB: u64 = 64 * 1024;

/// Billion laughs in ~10 KB: ten 200-byte strings, then 119 levels of ten
/// aliases of the level before (`serde_yaml_ng` alone: +370 MiB before it
/// gives up on repetitions).
fn alias_bomb() -> String {
    let leaf = "l".repeat(200);
    let mut s = format!("a0: &a0 [{}]\n", [leaf.as_str(); 10].join(", "));
    for i in 1..120 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        s.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    s
}

/// 200 KB of block nesting (`a:\n a:\n  a:` …).
fn block_nesting() -> String {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < 200_000 {
        s.push_str(&format!("{}a:\n", " ".repeat(i % 600)));
        i += 1;
    }
    s
}

/// An app entry with `extra` lines, without the harness's `resources`.
fn entry(uuid: &str, name: &str, num: u32, extra: &str) -> String {
    format!(
        "  - uuid: {uuid}\n    version: \"1\"\n    display_name: {name}\n    app_num: {num}\n    image: hello:latest\n{extra}"
    )
}

/// Replaces the config file with raw bytes (atomically, as an editor would).
fn write_bytes(env: &AgentEnv, bytes: &[u8]) {
    let tmp = env.layout.root().join("etc/.device.yaml.tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, env.config_path()).unwrap();
}

/// Writes `bytes` and waits (deadline 30 s) until the agent has evaluated it
/// and reports a refusal containing `want`; returns how long that took.
fn refused(env: &AgentEnv, bytes: &[u8], want: &str) -> Duration {
    let before = env.configs_evaluated();
    let t = Instant::now();
    write_bytes(env, bytes);
    loop {
        let info = env.info();
        if let Some(i) = &info {
            if i.configs_evaluated > before
                && i.config_error.as_deref().is_some_and(|e| e.contains(want))
            {
                return t.elapsed();
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no refusal containing {want:?}: {info:?}\nagent log:\n{}",
            tail(&env.agent_log(), 20)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_documents_are_refused_at_once_in_bounded_memory() {
    let mut env = AgentEnv::new();
    let alpha = app_yaml(&env.uuid(1), "alpha", 1, "hello", "");
    let good = format!("generation: 1\napps:\n{alpha}");
    env.write_config(&good);
    env.start_agent();
    env.wait_running(&["alpha"], T);
    let pid = env.agent.as_ref().unwrap().id();
    let idle = vm_hwm_kib(pid);

    let mut latin1 = format!("generation: 2\napps:\n{alpha}").into_bytes();
    let at = latin1.windows(5).position(|w| w == b"alpha").unwrap();
    latin1.splice(at..at + 5, *b"caf\xe9");
    let bad = at + 3;
    let line = 1 + latin1[..bad].iter().filter(|b| **b == b'\n').count();
    let nl = latin1[..bad].iter().rposition(|b| *b == b'\n').unwrap();
    let latin1_error = format!(
        "invalid UTF-8 at byte {bad} (line {line}, column {})",
        bad - nl
    );
    let dup_env = format!(
        "generation: 2\napps:\n{}",
        app_yaml(
            &env.uuid(1),
            "alpha",
            1,
            "hello",
            "    env:\n      A: \"1\"\n      B: \"2\"\n      A: \"3\"\n"
        )
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "alias bomb",
            alias_bomb().into_bytes(),
            "more nodes than allowed (an alias counts every node it repeats) (limit 100000)",
        ),
        (
            "200 KB of [",
            "[".repeat(200_000).into_bytes(),
            "device config is not valid YAML/JSON: line 1, column ",
        ),
        (
            "200 KB of a: {",
            "a: {".repeat(50_000).into_bytes(),
            "device config is not valid YAML/JSON: line 1, column ",
        ),
        (
            "200 KB of block nesting",
            block_nesting().into_bytes(),
            "nested deeper than allowed (an alias counts the depth it repeats) (limit 64)",
        ),
        (
            "duplicate env key",
            dup_env.into_bytes(),
            "line 13, column 7: duplicate key \"A\" (first at line 11, column 7)",
        ),
        ("Latin-1 byte", latin1, &latin1_error),
    ];
    let mut took = Vec::new();
    for (what, bytes, want) in &cases {
        let d = refused(&env, bytes, want);
        took.push((*what, d));
    }
    // A 140 KB cpus range list (20,000 ranges of 4,097 CPUs) once expanded
    // to 82 million entries (+312 MiB): now only that app is rejected, at
    // its first CPU beyond what a device may have.
    let ranges = vec!["0-4096"; 20_000].join(",");
    let beta = entry(
        &env.uuid(2),
        "beta",
        2,
        &format!("    resources: {{ memory_kib: 16384, vcpus: 1, cpus: \"{ranges}\" }}\n"),
    );
    env.write_config(&format!("generation: 2\napps:\n{alpha}{beta}"));
    env.wait_for("beta rejected for its cpus", T, |l| {
        with_error(l, "beta", "apps[1].resources.cpus").is_some_and(|b| {
            b.error
                .as_ref()
                .is_some_and(|e| e.message.contains("beyond the 1024"))
        })
    });
    let grown = vm_hwm_kib(pid).saturating_sub(idle);
    eprintln!("refusal visible after: {took:?}; agent VmHWM +{grown} KiB (idle {idle} KiB)");
    for (what, d) in &took {
        assert!(
            *d < Duration::from_secs(1),
            "{what}: refused only after {d:?}"
        );
    }
    assert!(
        grown < MAX_GROWTH_KIB,
        "agent peak RSS grew by {grown} KiB handling the hostile documents"
    );
    // Nothing was altered: alpha keeps its name and keeps running, and the
    // loop still applies a good document.
    let a = env.app("alpha").expect("alpha still listed");
    assert_eq!(a.state, SwState::Running);
    let n = env.configs_evaluated();
    env.write_config(&good.replace("generation: 1", "generation: 3"));
    // (generation 2 was the config with the rejected beta.)
    env.wait_settled(n + 1, T);
    assert_eq!(env.info().unwrap().config_error, None);
    env.teardown().await;
}

fn with_error<'a>(l: &'a [AppStatus], name: &str, want: &str) -> Option<&'a AppStatus> {
    l.iter().find(|a| {
        a.display_name == name && a.error.as_ref().is_some_and(|e| e.message.contains(want))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_entries_show_in_the_list_with_their_full_path() {
    let mut env = AgentEnv::new();
    let u1 = env.uuid(1);
    let doc = format!(
        "generation: 1\napps:\n{}{}{}{}",
        app_yaml(&u1, "alpha", 1, "hello", ""),
        entry(
            &env.uuid(2),
            "beta",
            2,
            "    resources: { memory_kib: x }\n"
        ),
        entry("[1, 2]", "gamma", 3, ""),
        entry(&u1, "delta", 4, ""),
    );
    env.write_config(&doc);
    env.start_agent();
    let type_error = "apps[1].resources.memory_kib: invalid type: string \"x\", expected u64";
    let list = env.wait_for("alpha RUNNING, beta/gamma/delta rejected", T, |l| {
        l.iter()
            .any(|a| a.display_name == "alpha" && a.state == SwState::Running)
            && with_error(l, "beta", type_error).is_some()
            && with_error(l, "gamma (apps[2])", "apps[2].uuid: invalid type: sequence").is_some()
            && with_error(
                l,
                "delta (apps[3])",
                "apps[3].uuid: duplicate of apps[0].uuid",
            )
            .is_some()
    });
    let gamma = with_error(&list, "gamma (apps[2])", "").unwrap();
    assert_eq!(gamma.uuid, "apps[2]");
    assert_eq!(gamma.state, SwState::Unknown);
    assert_eq!(
        with_error(&list, "delta (apps[3])", "").unwrap().uuid,
        "apps[3]"
    );
    assert_eq!(list.iter().filter(|a| a.uuid == u1).count(), 1);
    let (code, table, err) = env.outpost(&["list"]);
    assert_eq!(code, 0, "{err}");
    for needle in ["gamma (apps[2])", "delta (apps[3])", "beta"] {
        assert!(table.contains(needle), "{needle} missing:\n{table}");
    }
    // `outpost status alpha` is still alpha, not the duplicate entry.
    let (code, out, err) = env.outpost(&["status", &u1]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("alpha"), "{out}");
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_refuses_bombs_in_bounded_memory_and_reports_rejected_entries() {
    let mut ctl = Controller::init(&[]);
    ctl.start();
    let (mut env, serial) = device(&ctl, true);
    env.start_agent_with(false);
    let dev = ctl.wait_device(&serial, T);
    let pid = ctl.child.as_ref().unwrap().id();
    let idle = vm_hwm_kib(pid);

    for (doc, want) in [
        (alias_bomb(), "more nodes than allowed"),
        ("[".repeat(200_000), "line 1, column "),
        (block_nesting(), "nested deeper than allowed"),
        (
            format!(
                "apps:\n{}",
                entry(&env.uuid(1), "alpha", 1, "    app_num: 2\n")
            ),
            "line 7, column 5: duplicate key \"app_num\" (first at line 5, column 5)",
        ),
    ] {
        let t = Instant::now();
        let (code, out, err) = ctl.set_config(&dev, &doc);
        assert_ne!(code, 0, "accepted: {out}");
        assert!(err.contains(want), "{want:?} missing: {err}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }
    let grown = vm_hwm_kib(pid).saturating_sub(idle);
    eprintln!("controller VmHWM +{grown} KiB (idle {idle} KiB)");
    assert!(
        grown < MAX_GROWTH_KIB,
        "controller peak RSS grew by {grown} KiB handling the hostile documents"
    );

    let u1 = env.uuid(1);
    let doc = format!(
        "apps:\n{}{}{}",
        app_yaml(&u1, "alpha", 1, "hello", ""),
        entry("7", "gamma", 2, ""),
        entry(&u1, "delta", 3, ""),
    );
    let (code, out, err) = ctl.set_config(&dev, &doc);
    assert_eq!(code, 0, "{out}{err}");
    let said = format!("{out}{err}");
    assert!(
        said.contains("apps[1].uuid: invalid type: integer `7`"),
        "{said}"
    );
    assert!(
        said.contains("apps[2].uuid: duplicate of apps[0].uuid"),
        "{said}"
    );
    // The device reports both entries under their placeholders.
    let deadline = Instant::now() + T;
    loop {
        let st = ctl.status(&dev);
        let apps = st["info"]["info"]["apps"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let shown = |name: &str, want: &str| {
            apps.iter().any(|a| {
                a["display_name"] == name
                    && a["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(want))
            })
        };
        if shown("gamma (apps[1])", "apps[1].uuid: invalid type: integer `7`")
            && shown("delta (apps[2])", "apps[2].uuid: duplicate of apps[0].uuid")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "device info at the controller lacks the rejected entries: {apps:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    env.teardown().await;
    ctl.stop();
}
