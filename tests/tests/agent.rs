//! outpostd end to end: a real process, real memlogd, its own user
//! containerd, the `outpost` CLI as an operator would use it.

use std::collections::BTreeSet;
use std::time::Duration;

use outpost_api::SwState;
use outpost_runtime::volume;
use outpost_tests::agent::{app_yaml, census, mounts, AgentEnv};

const T: Duration = Duration::from_secs(40);

fn pid(env: &AgentEnv, name: &str) -> Option<u32> {
    env.app(name).and_then(|a| a.domain).and_then(|d| d.pid)
}

fn running_pid(env: &AgentEnv, name: &str) -> u32 {
    env.wait_running(&[name], T);
    pid(env, name).unwrap()
}

/// Waits until `name` runs with a PID other than `old`.
fn new_pid(env: &AgentEnv, name: &str, old: u32) -> u32 {
    env.wait_for(&format!("{name} restarted"), T, |l| {
        l.iter().any(|a| {
            a.display_name == name
                && a.state == SwState::Running
                && a.domain
                    .as_ref()
                    .and_then(|d| d.pid)
                    .is_some_and(|p| p != old)
        })
    });
    pid(env, name).unwrap()
}

fn config(env: &AgentEnv, gen: u64, apps: &[String]) {
    env.write_config(&format!("generation: {gen}\napps:\n{}", apps.concat()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_through_the_config_file_and_the_cli() {
    let mut env = AgentEnv::new();
    let vol = "0b8e6c2a-1f3d-4a5b-9c7e-2d4f6a8b0c1e";
    let (u1, u2, u3) = (env.uuid(1), env.uuid(2), env.uuid(3));
    let a = |extra: &str| app_yaml(&u1, "alpha", 1, "hello", extra);
    let b = |extra: &str| {
        app_yaml(
            &u2,
            "beta",
            2,
            "sh",
            &format!("    volumes: [{{ uuid: {vol}, mount_dir: /data }}]\n{extra}"),
        )
    };
    let c = |extra: &str| app_yaml(&u3, "gamma", 3, "hello", extra);
    // (Replaced, not added: a second `resources:` key refuses the document.)
    let bad = app_yaml(&env.uuid(4), "broken-entry", 4, "hello", "")
        .replace("memory_kib: 32768", "memory_kib: 100");
    config(&env, 1, &[a(""), b(""), c(""), bad.clone()]);
    env.start_agent();
    env.wait_running(&["alpha", "beta", "gamma"], T);

    // One invalid app: reported on that app, the other three run.
    let (code, out, _) = env.outpost(&["status", "broken-entry"]);
    assert_eq!(code, 0);
    assert!(out.contains("must be at least 4096"), "{out}");
    let (_, list, _) = env.outpost(&["list"]);
    for name in [
        "alpha",
        "beta",
        "gamma",
        "broken-entry",
        "RUNNING",
        "hello:latest",
    ] {
        assert!(list.contains(name), "{name} missing in:\n{list}");
    }
    env.wait_for("alpha output in memlogd", T, |_| {
        env.outpost(&["logs", "alpha", "--tail", "3"])
            .1
            .contains("hello ")
    });

    // Data in the app's rootfs and in its data volume.
    let (code, _, err) = env.outpost(&[
        "exec",
        "beta",
        "--",
        "sh",
        "-c",
        "echo keep > /keep && echo vol > /data/v",
    ]);
    assert_eq!(code, 0, "{err}");

    // Restart counter: new task, same volume data.
    let p1 = running_pid(&env, "beta");
    config(
        &env,
        2,
        &[a(""), b("    restart_counter: 1\n"), c(""), bad.clone()],
    );
    let p2 = new_pid(&env, "beta", p1);
    assert_eq!(
        env.outpost(&["exec", "beta", "--", "cat", "/keep"]).1,
        "keep\n"
    );
    assert_eq!(
        env.outpost(&["exec", "beta", "--", "cat", "/data/v"]).1,
        "vol\n"
    );

    // Purge counter: fresh volumes.
    config(
        &env,
        3,
        &[
            a(""),
            b("    restart_counter: 1\n    purge_counter: 1\n"),
            c(""),
            bad.clone(),
        ],
    );
    let p3 = new_pid(&env, "beta", p2);
    assert_ne!(
        env.outpost(&["exec", "beta", "--", "cat", "/keep"]).0,
        0,
        "rootfs data must be gone after a purge"
    );
    assert_ne!(
        env.outpost(&["exec", "beta", "--", "cat", "/data/v"]).0,
        0,
        "volume data must be gone after a purge"
    );
    let vols = env.layout.volumes();
    assert!(volume::container_volume_dir(&vols, &env.uuid(2), 1).exists());
    assert!(
        !volume::container_volume_dir(&vols, &env.uuid(2), 0).exists(),
        "old generation removed"
    );

    // activate false: HALTED, volume kept.
    config(
        &env,
        4,
        &[
            a(""),
            b("    restart_counter: 1\n    purge_counter: 1\n"),
            c("    activate: false\n"),
            bad.clone(),
        ],
    );
    env.wait_for("gamma HALTED", T, |l| {
        l.iter()
            .any(|x| x.display_name == "gamma" && x.state == SwState::Halted)
    });
    assert!(
        volume::container_volume_dir(&vols, &env.uuid(3), 0).exists(),
        "a halted app keeps its volume"
    );

    // Remove alpha: container, snapshot, volume and FIFOs go.
    let alpha_task = env.app("alpha").unwrap().domain.unwrap().task_id;
    let alpha_vol = volume::container_volume_dir(&vols, &env.uuid(1), 0);
    config(
        &env,
        5,
        &[
            b("    restart_counter: 1\n    purge_counter: 1\n"),
            c("    activate: false\n"),
            bad.clone(),
        ],
    );
    env.wait_for("alpha removed", T, |l| {
        !l.iter().any(|x| x.display_name == "alpha")
    });
    let rt = env.runtime().await;
    assert!(
        rt.find(&alpha_task).await.unwrap().is_none(),
        "container left"
    );
    assert!(
        !volume::stat(rt.client(), &volume::snapshot_id(&alpha_vol))
            .await
            .unwrap(),
        "snapshot left"
    );
    assert!(!alpha_vol.exists(), "volume left");
    let fifos: Vec<String> = std::fs::read_dir(env.layout.fifos())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !fifos.iter().any(|f| f.contains(&alpha_task)),
        "FIFOs left: {fifos:?}"
    );

    // An unparsable document is refused whole; what runs keeps running.
    let evaluated = env.configs_evaluated();
    env.write_config("generation: 6\napps: [ this is not yaml");
    env.wait_for("refusal logged", T, |_| env.agent_log().contains("refused"));
    // The agent evaluated the bad document and then had nothing to do.
    env.wait_settled(evaluated + 1, T);
    assert_eq!(pid(&env, "beta"), Some(p3));
    assert_eq!(env.app("gamma").unwrap().state, SwState::Halted);

    // Operator commands.
    let (code, out, _) = env.outpost(&["restart", "beta"]);
    assert_eq!(code, 0, "{out}");
    new_pid(&env, "beta", p3);
    let (code, _, err) = env.outpost(&["status", "bta"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no app named \"bta\"") && err.contains("did you mean: beta"),
        "{err}"
    );
    // enter: the app's namespaces and root (its hostname is its UUID).
    let (code, out, err) =
        env.outpost(&["enter", "beta", "sh", "-c", "hostname; cat /proc/1/cmdline"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&env.uuid(2)), "{out}");
    assert!(
        out.contains("sleep 3600"),
        "PID 1 of the app's namespace: {out}"
    );
    let (code, out, _) = env.outpost(&["check"]);
    assert_eq!(code, 0, "{out}");
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_apps_follow_their_restart_policy() {
    let mut env = AgentEnv::new();
    let crash = |n: u32, name: &str, code: u32, policy: &str| {
        app_yaml(
            &env.uuid(n),
            name,
            n,
            "crash",
            &format!("    env: {{ CRASH_AFTER: \"0\", CRASH_CODE: \"{code}\" }}\n    restart_policy: {policy}\n"),
        )
    };
    config(
        &env,
        1,
        &[
            crash(1, "flaky", 3, "{ mode: on-failure, max_attempts: 2 }"),
            crash(2, "once", 3, "{ mode: never }"),
            crash(3, "clean", 0, "{ mode: on-failure }"),
        ],
    );
    env.start_agent();
    let seen_backoff = env.wait_for("flaky in backoff", T, |l| {
        l.iter().any(|a| {
            a.display_name == "flaky" && a.backoff.as_ref().is_some_and(|b| b.attempts >= 1)
        })
    });
    let flaky = seen_backoff
        .iter()
        .find(|a| a.display_name == "flaky")
        .unwrap();
    assert_eq!(flaky.backoff.as_ref().unwrap().max_attempts, 2);
    let l = env.wait_for("flaky FAILED", T, |l| {
        l.iter()
            .any(|a| a.display_name == "flaky" && a.state == SwState::Failed)
    });
    let flaky = l.iter().find(|a| a.display_name == "flaky").unwrap();
    assert_eq!(flaky.restarts, 2, "{flaky:#?}");
    assert!(flaky.error.is_some());
    let (_, out, _) = env.outpost(&["status", "flaky"]);
    assert!(out.contains("backoff:") || out.contains("FAILED"), "{out}");

    let l = env.wait_for("once BROKEN, clean HALTED", T, |l| {
        l.iter()
            .any(|a| a.display_name == "once" && a.state == SwState::Broken)
            && l.iter()
                .any(|a| a.display_name == "clean" && a.state == SwState::Halted)
    });
    let once = l.iter().find(|a| a.display_name == "once").unwrap();
    assert!(
        once.error
            .as_ref()
            .unwrap()
            .message
            .contains("exit status 3"),
        "{once:#?}"
    );
    assert_eq!(once.restarts, 0);
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_the_agent_adopts_running_apps() {
    let mut env = AgentEnv::new();
    let apps = [
        app_yaml(&env.uuid(1), "one", 1, "hello", ""),
        app_yaml(&env.uuid(2), "two", 2, "sh", ""),
    ];
    config(&env, 1, &apps);
    env.start_agent();
    env.wait_running(&["one", "two"], T);
    let before = (pid(&env, "one"), pid(&env, "two"));
    for graceful in [true, false] {
        if graceful {
            env.stop_agent();
        } else {
            env.kill_agent();
        }
        let log_len = env.agent_log().len();
        env.start_agent();
        env.wait_running(&["one", "two"], T);
        // The new agent evaluated its config and found nothing to do.
        env.wait_settled(1, T);
        assert_eq!(
            (pid(&env, "one"), pid(&env, "two")),
            before,
            "apps must not be restarted"
        );
        let new_log = env.agent_log()[log_len..].to_string();
        assert!(
            !new_log.contains("executing"),
            "the new agent acted on running apps:\n{new_log}"
        );
    }
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_config_bursts_converges_without_leaks() {
    let mut env = AgentEnv::new();
    let mut rng = outpost_tests::Rng::new(std::process::id() as u64);
    env.start_agent();
    let mut last = Vec::new();
    for round in 0..20u64 {
        // A burst of configs: apps come and go, counters move.
        for step in 0..3u64 {
            let gen = round * 3 + step + 1;
            let mut apps = Vec::new();
            for n in 1..=4u32 {
                if rng.below(4) == 0 {
                    continue;
                }
                let extra = format!(
                    "    restart_counter: {}\n    purge_counter: {}\n    activate: {}\n",
                    rng.below(3),
                    rng.below(2),
                    rng.below(5) != 0
                );
                apps.push(app_yaml(
                    &env.uuid(n),
                    &format!("app{n}"),
                    n,
                    if n % 2 == 0 { "sh" } else { "hello" },
                    &extra,
                ));
            }
            config(&env, gen, &apps);
            last = apps;
            std::thread::sleep(Duration::from_millis(rng.below(150)));
        }
        std::thread::sleep(Duration::from_millis(rng.below(600)));
        env.kill_agent();
        env.start_agent();
    }
    // Converge to the last config.
    let want: Vec<(String, bool)> = last
        .iter()
        .map(|y| {
            let name = y
                .lines()
                .find(|l| l.contains("display_name"))
                .unwrap()
                .split(": ")
                .nth(1)
                .unwrap()
                .to_owned();
            (name, y.contains("activate: true"))
        })
        .collect();
    let l = env.wait_for("convergence after kills", Duration::from_secs(120), |l| {
        l.len() == want.len()
            && want.iter().all(|(n, active)| {
                l.iter().any(|a| {
                    &a.display_name == n
                        && a.state
                            == if *active {
                                SwState::Running
                            } else {
                                SwState::Halted
                            }
                })
            })
    });
    env.wait_settled(1, T);
    let (containers, vols, leases, mnts, fifos) = census(&env).await;
    // Writable snapshots: exactly the container volumes' (no leaked ones).
    let rt = env.runtime().await;
    let c = rt.client();
    let mut snaps = c
        .snapshots()
        .list(c.req(
            containerd_client::services::v1::snapshots::ListSnapshotsRequest {
                snapshotter: outpost_runtime::SNAPSHOTTER.into(),
                filters: vec![],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut active = BTreeSet::new();
    while let Some(batch) = snaps.message().await.unwrap() {
        for i in batch.info {
            if i.kind == containerd_client::services::v1::snapshots::Kind::Active as i32 {
                active.insert(i.name);
            }
        }
    }
    assert_eq!(
        active, vols,
        "active snapshots must be exactly the container volumes'"
    );
    let running: BTreeSet<String> = l
        .iter()
        .filter(|a| a.state == SwState::Running)
        .map(|a| a.domain.as_ref().unwrap().task_id.clone())
        .collect();
    assert_eq!(
        containers, running,
        "exactly one container per running app, none for halted or removed apps"
    );
    assert_eq!(leases, 0, "leases left");
    // At most one container volume (the current generation) per app in the
    // config, one for every running app, none for removed apps. (An app that
    // was never activated has none.)
    let vol_owner = |v: &String| v.split('#').next().unwrap_or_default().to_owned();
    let owners: Vec<String> = vols.iter().map(vol_owner).collect();
    let distinct: BTreeSet<&String> = owners.iter().collect();
    assert_eq!(
        distinct.len(),
        owners.len(),
        "two generations of one app: {vols:?}"
    );
    for o in &owners {
        assert!(
            l.iter().any(|a| &a.uuid == o),
            "volume of a removed app left: {o} in {vols:?}"
        );
    }
    for a in l.iter().filter(|a| a.state == SwState::Running) {
        assert!(
            owners.contains(&a.uuid),
            "running app {} has no volume: {vols:?}",
            a.display_name
        );
    }
    assert_eq!(
        mnts.len(),
        running.len(),
        "one rootfs mount per running app: {mnts:?}"
    );
    for f in &fifos {
        assert!(
            l.iter().any(|a| f.contains(&a.uuid)),
            "FIFO of a removed app left: {f}"
        );
    }
    // No app started twice: one init process tree per task cgroup.
    for t in &running {
        let procs = outpost_tests::cgroup_pids(t);
        let inits: Vec<&i32> = procs
            .iter()
            .filter(|p| {
                let stat = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
                stat.lines()
                    .any(|l| l.starts_with("NSpid:") && l.trim_end().ends_with("\t1"))
            })
            .collect();
        assert_eq!(
            inits.len(),
            1,
            "task {t} has {} init processes: {procs:?}",
            inits.len()
        );
    }
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboot_brings_checkpointed_apps_back_previously_active_first() {
    let mut env = AgentEnv::new();
    let apps = [
        app_yaml(&env.uuid(1), "first", 1, "hello", ""),
        app_yaml(&env.uuid(2), "second", 2, "sh", ""),
        // Never came up before the "reboot" (its image is missing at first).
        app_yaml(&env.uuid(3), "late", 3, "hello", "").replace("hello:latest", "late-image:latest"),
    ];
    config(&env, 1, &apps);
    env.start_agent();
    env.wait_running(&["first", "second"], T);
    assert_ne!(env.app("late").unwrap().state, SwState::Running);

    // Power cut: the agent, every task, containerd and memlogd die; /run is lost.
    env.kill_agent();
    for a in env.runtime().await.list().await.unwrap() {
        for p in outpost_tests::cgroup_pids(&a.task_id) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let root = env.layout.root().display().to_string();
    for p in outpost_tests::pids_with_cmdline(&root) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    env.memlogd.take();
    std::thread::sleep(Duration::from_millis(500));
    for m in mounts(env.layout.root()).into_iter().rev() {
        let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
    }
    std::fs::remove_dir_all(env.layout.root().join("run")).unwrap();
    std::fs::create_dir_all(env.layout.root().join("run")).unwrap();
    std::fs::remove_file(env.config_path()).unwrap();
    // The late app's image is available now.
    let images = outpost_tests::image_dir("hello")
        .parent()
        .unwrap()
        .to_path_buf();
    let late = images.join("late-image");
    if !late.exists() {
        std::os::unix::fs::symlink(images.join("hello"), &late).unwrap();
    }

    // Boot: memlogd, then the agent with no config source at all.
    env.memlogd = Some(outpost_tests::Memlogd::start_at(
        &env.layout.memlogd_log_socket(),
        &env.layout.memlogd_query_socket(),
        &[],
    ));
    env.start_agent_with(false);
    let l = env.wait_running(&["first", "second", "late"], T);
    let start_of = |name: &str| {
        let pid = l
            .iter()
            .find(|a| a.display_name == name)
            .unwrap()
            .domain
            .as_ref()
            .unwrap()
            .pid
            .unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        fields[19].parse::<u64>().unwrap() // starttime, clock ticks since boot
    };
    assert!(
        start_of("first") <= start_of("late") && start_of("second") <= start_of("late"),
        "previously-active apps start first"
    );
    let (_, info, _) = env.outpost(&["version"]);
    assert!(info.contains("checkpoint"), "{info}");
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_on_a_local_network_reach_each_other() {
    let mut env = AgentEnv::new();
    // The network UUID starts with this env's salt, so its bridge name is unique.
    let net = format!("{:08x}-0000-4000-8000-0000000000aa", env.salt);
    let bridge = format!("op-{:08x}", env.salt);
    let iface = |ip: &str| format!("    interfaces: [{{ network: {net}, ip: {ip} }}]\n");
    let apps = [
        app_yaml(&env.uuid(1), "left", 1, "sh", &iface("10.213.80.10")),
        app_yaml(&env.uuid(2), "right", 2, "sh", &iface("10.213.80.11")),
    ];
    env.write_config(&format!(
        "generation: 1\nnetworks:\n  - {{ uuid: {net}, name: lan, kind: local, subnet: 10.213.80.0/24, gateway: 10.213.80.1 }}\napps:\n{}",
        apps.concat()
    ));
    env.start_agent();
    env.wait_running(&["left", "right"], T);
    let (code, out, err) = env.outpost(&[
        "exec",
        "left",
        "--",
        "ping",
        "-c",
        "1",
        "-W",
        "3",
        "10.213.80.11",
    ]);
    assert_eq!(code, 0, "left cannot reach right: {out}{err}");
    let (_, list, _) = env.outpost(&["list"]);
    assert!(
        list.contains("10.213.80.10") && list.contains("10.213.80.11"),
        "{list}"
    );
    let (_, status, _) = env.outpost(&["status", "right"]);
    assert!(
        status.contains(&format!("ip:        {net}=10.213.80.11")),
        "{status}"
    );
    let (code, check, _) = env.outpost(&["check"]);
    assert_eq!(code, 0, "{check}");
    assert!(check.contains("CNI plugins in /usr/lib/cni"), "{check}");
    let (code, nets, _) = env.outpost(&["networks"]);
    assert_eq!(code, 0);
    assert!(nets.contains("lan") && nets.contains(&bridge), "{nets}");
    assert!(
        nets.contains("left=10.213.80.10") && nets.contains("right=10.213.80.11"),
        "{nets}"
    );
    env.teardown().await;
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &bridge])
        .status();
}
