//! Task log FIFOs through a real outpostd, memlogd and user containerd: an
//! app that comes back under the same task ID starts at once, and no FIFO
//! (nor memlogd stream) outlives its task, whichever action removed it.

use std::time::{Duration, Instant};

use outpost_api::SwState;
use outpost_tests::agent::{app_yaml, AgentEnv};
use outpost_tests::Memlogd;

const T: Duration = Duration::from_secs(40);

fn config(env: &AgentEnv, gen: u64, apps: &[String]) {
    env.write_config(&format!("generation: {gen}\napps:\n{}", apps.concat()));
}

/// The `hello` app `name` (app number 1) at `version`, with `extra` keys.
fn hello(env: &AgentEnv, name: &str, version: &str, extra: &str) -> String {
    app_yaml(&env.uuid(1), name, 1, "hello", extra)
        .replace("version: \"1\"", &format!("version: \"{version}\""))
}

/// Task ID of the running app `name`.
fn task_id(env: &AgentEnv, name: &str) -> String {
    env.wait_running(&[name], T);
    env.app(name).unwrap().domain.unwrap().task_id
}

fn memlogd(env: &AgentEnv) -> &Memlogd {
    env.memlogd.as_ref().unwrap()
}

/// What of app `uuid` is left: FIFO directory entries, and streams memlogd
/// still reads.
fn leftovers(env: &AgentEnv, uuid: &str) -> (Vec<String>, Vec<String>) {
    let files = std::fs::read_dir(env.layout.fifos())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(uuid))
        .collect();
    let streams = memlogd::active_sources(&memlogd(env).query_socket)
        .unwrap()
        .into_iter()
        .filter(|s| s.contains(uuid))
        .collect();
    (files, streams)
}

/// Waits until neither FIFOs nor memlogd streams of `task` (a task ID, or
/// an app UUID for all its tasks) remain; memlogd needs up to its FIFO check
/// interval (2 s) to release an unlinked FIFO.
fn wait_released(env: &AgentEnv, task: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = leftovers(env, task);
        if left.0.is_empty() && left.1.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: FIFOs {:?} and memlogd streams {:?} of {task} remain",
            left.0,
            left.1
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until memlogd holds a line `msg` of `stream` after its first `skip` lines.
fn wait_line_after(env: &AgentEnv, stream: &str, skip: usize, msg: &str) {
    env.wait_for(&format!("{msg:?} in {stream} after line {skip}"), T, |_| {
        memlogd(env)
            .lines(stream)
            .iter()
            .skip(skip)
            .any(|l| l == msg)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_added_back_with_the_same_task_id_starts_at_once() {
    let mut env = AgentEnv::new();
    // memlogd notices unlinked FIFOs only once an hour here, so the app
    // surely comes back while memlogd still reads its old FIFOs.
    env.memlogd = None;
    env.memlogd = Some(Memlogd::start_at(
        &env.layout.memlogd_log_socket(),
        &env.layout.memlogd_query_socket(),
        &["-fifo-check-interval", "1h"],
    ));
    let app = hello(&env, "phoenix", "1", "");
    config(&env, 1, std::slice::from_ref(&app));
    env.start_agent();
    let task = task_id(&env, "phoenix");
    let stream = format!("guest_vm-{task}");
    wait_line_after(&env, &stream, 0, "hello 2");

    config(&env, 2, &[]);
    env.wait_for("phoenix removed", T, |l| l.is_empty());
    let rt = env.runtime().await;
    assert!(rt.find(&task).await.unwrap().is_none(), "container left");
    let (files, streams) = leftovers(&env, &task);
    assert!(files.is_empty(), "FIFOs left: {files:?}");
    assert_eq!(streams.len(), 2, "memlogd still drains the old FIFOs");

    let seen = memlogd(&env).lines(&stream).len();
    let back = Instant::now();
    config(&env, 3, std::slice::from_ref(&app));
    env.wait_for("phoenix RUNNING again within 10 s", T, |l| {
        l.iter()
            .any(|a| a.display_name == "phoenix" && a.state == SwState::Running)
    });
    let took = back.elapsed();
    eprintln!("the re-added app ran {took:?} after its config was written");
    assert!(
        took < Duration::from_secs(10),
        "the re-added app took {took:?} to run"
    );
    assert_eq!(task_id(&env, "phoenix"), task);
    // The new task's output reaches memlogd under the same name.
    wait_line_after(&env, &stream, seen, "hello 2");
    wait_line_after(&env, &format!("guest_vm_err-{task}"), 0, "hello-err 5");
    env.teardown().await;
}

/// Runs app version 1, applies `change` (which brings version 2 and takes
/// the version-1 task down), then deletes the app; after each step the
/// FIFOs of the removed tasks must go, and memlogd must release them.
async fn old_task_fifos_go(change: &str, want: SwState) {
    let mut env = AgentEnv::new();
    let uuid = env.uuid(1);
    config(&env, 1, &[hello(&env, "shifty", "1", "")]);
    env.start_agent();
    let old = task_id(&env, "shifty");
    wait_line_after(&env, &format!("guest_vm-{old}"), 0, "hello 2");

    config(&env, 2, &[hello(&env, "shifty", "2", change)]);
    env.wait_for(&format!("shifty {want:?} at version 2"), T, |l| {
        l.iter().any(|a| {
            a.display_name == "shifty"
                && a.state == want
                && a.domain.as_ref().is_none_or(|d| d.task_id != old)
        })
    });
    wait_released(&env, &old, "after the version change");
    if want == SwState::Running {
        let new = task_id(&env, "shifty");
        assert_ne!(new, old);
        wait_line_after(&env, &format!("guest_vm-{new}"), 0, "hello 2");
    }

    config(&env, 3, &[]);
    env.wait_for("shifty removed", T, |l| l.is_empty());
    wait_released(&env, &uuid, "after deleting the app");
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_change_with_activate_false_removes_the_old_fifos() {
    old_task_fifos_go("    activate: false\n", SwState::Halted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_change_with_a_purge_removes_the_old_fifos() {
    old_task_fifos_go("    purge_counter: 1\n", SwState::Running).await;
}
