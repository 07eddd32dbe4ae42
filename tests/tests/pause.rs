//! `outpost pause` / `resume` through a real outpostd and user containerd:
//! the app's processes are frozen (cgroup freezer state of its init), the
//! status says PAUSED, the agent leaves it paused across passes, and a
//! resume thaws it.

use std::time::Duration;

use outpost_api::SwState;
use outpost_tests::agent::{app_yaml, AgentEnv};

const T: Duration = Duration::from_secs(40);

/// The freezer state (`THAWED`, `FROZEN`) of `pid`'s cgroup (v1).
fn freezer_state(pid: u32) -> String {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = cgroup
        .lines()
        .find_map(|l| {
            l.split(':')
                .nth(1)
                .filter(|c| *c == "freezer")
                .and(l.split(':').nth(2))
        })
        .expect("a freezer cgroup (v1 hierarchy)");
    std::fs::read_to_string(format!("/sys/fs/cgroup/freezer{path}/freezer.state"))
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_freezes_the_app_until_resume_and_the_agent_leaves_it_paused() {
    let mut env = AgentEnv::new();
    env.write_config(&format!(
        "generation: 1\napps:\n{}",
        app_yaml(&env.uuid(1), "web", 1, "hello", "")
    ));
    env.start_agent();
    let web = env.wait_running(&["web"], T).remove(0);
    let pid = web.domain.unwrap().pid.unwrap();
    assert_eq!(freezer_state(pid), "THAWED");

    let (code, out, err) = env.outpost(&["pause", "web"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("web paused"), "{out}");
    env.wait_for("web PAUSED", T, |l| {
        l.iter()
            .any(|a| a.display_name == "web" && a.state == SwState::Paused)
    });
    assert_eq!(freezer_state(pid), "FROZEN");
    // A pass later (another config document) it is still paused, same task.
    let evaluated = env.configs_evaluated();
    env.write_config(&format!(
        "generation: 2\napps:\n{}",
        app_yaml(&env.uuid(1), "web", 1, "hello", "")
    ));
    env.wait_settled(evaluated + 1, T);
    let web = env.app("web").unwrap();
    assert_eq!(web.state, SwState::Paused);
    assert_eq!(web.domain.unwrap().pid, Some(pid));

    let (code, out, err) = env.outpost(&["resume", "web"]);
    assert_eq!(code, 0, "{out}{err}");
    env.wait_running(&["web"], T);
    assert_eq!(freezer_state(pid), "THAWED");

    // Unknown apps get a suggestion and exit non-zero.
    let (code, _, err) = env.outpost(&["pause", "wbe"]);
    assert_ne!(code, 0);
    assert!(err.contains("web"), "{err}");
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_start_override_activate_until_the_next_config() {
    let mut env = AgentEnv::new();
    let entry = app_yaml(&env.uuid(1), "web", 1, "hello", "");
    let web = |gen: u64| format!("generation: {gen}\napps:\n{entry}");
    env.write_config(&web(1));
    env.start_agent();
    env.wait_running(&["web"], T);

    let (code, out, err) = env.outpost(&["stop", "web"]);
    assert_eq!(code, 0, "{out}{err}");
    env.wait_for("web HALTED", T, |l| {
        l.iter()
            .any(|a| a.display_name == "web" && a.state == SwState::Halted)
    });
    let (_, status, _) = env.outpost(&["status", "web"]);
    assert!(status.contains("stopped by the operator"), "{status}");

    let (code, out, err) = env.outpost(&["start", "web"]);
    assert_eq!(code, 0, "{out}{err}");
    env.wait_running(&["web"], T);

    // Stopped again, then the next config generation ends the override.
    assert_eq!(env.outpost(&["stop", "web"]).0, 0);
    env.wait_for("web HALTED", T, |l| {
        l.iter()
            .any(|a| a.display_name == "web" && a.state == SwState::Halted)
    });
    env.write_config(&web(2));
    let web = env.wait_running(&["web"], T).remove(0);
    assert_eq!(web.local_override, None);
    env.teardown().await;
}
