//! `kill -9` of outpostd while containerd is creating a task: the next
//! agent repairs what the interrupted create left (a bundle without a task,
//! a shim containerd no longer tracks) and converges with nothing left over.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use outpost_api::SwState;
use outpost_runtime::task::repair::{bundle_dir, find_shims};
use outpost_runtime::{TaskIo, USER_NAMESPACE};
use outpost_tests::agent::{app_yaml, census, tail, AgentEnv};
use outpost_tests::TestEnv;

const T: Duration = Duration::from_secs(40);

/// containerd 1.6's bundle of task `id` in the agent's user instance.
fn bundle(env: &AgentEnv, id: &str) -> PathBuf {
    env.layout
        .user_state()
        .join("io.containerd.runtime.v2.task")
        .join(USER_NAMESPACE)
        .join(id)
}

/// PIDs of the runc shims serving `id` for this env's user containerd.
fn shims(env: &AgentEnv, id: &str) -> Vec<i32> {
    let address = format!("-address {}", env.layout.user_socket().display());
    outpost_tests::pids_with_cmdline(&format!("-id {id} "))
        .into_iter()
        .filter(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains("containerd-shim-runc-v2") && cmd.contains(&address)
        })
        .collect()
}

/// Polls `f` every 50 ms until it holds; panics with `what` after `timeout`.
fn wait_until(env: &AgentEnv, what: &str, timeout: Duration, f: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}\nagent log tail:\n{}",
            tail(&env.agent_log(), 30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Holds task `id`'s create in flight: its FIFOs exist with no reader while
/// memlogd reads a pipe under each of its stream names, so the agent takes
/// the FIFOs for attached and does not hand them over, and the shim blocks
/// opening stdout inside task create for as long as the returned write ends
/// are open. (The agent itself never leaves a FIFO without a reader at its
/// path; this stands for any cause of a slow create.)
fn hold_task_streams(env: &AgentEnv, id: &str) -> Vec<OwnedFd> {
    let fifos = memlogd::task_fifos(&env.layout.fifos(), id);
    std::fs::create_dir_all(env.layout.fifos()).unwrap();
    for path in [&fifos.stdout, &fifos.stderr] {
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    }
    let mut writers = Vec::new();
    for stream in [&fifos.stdout_stream, &fifos.stderr_stream] {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        memlogd::register_fds(&env.layout.memlogd_log_socket(), stream, &[r.as_fd()]).unwrap();
        writers.push(w);
    }
    writers
}

fn active_streams(env: &AgentEnv, id: &str) -> Vec<String> {
    memlogd::active_sources(&env.layout.memlogd_query_socket())
        .unwrap()
        .into_iter()
        .filter(|s| s.ends_with(id))
        .collect()
}

fn alive(pid: i32) -> bool {
    // A zombie is dead for this purpose (its parent has not reaped it yet).
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().to_owned()))
        .is_some_and(|r| !r.starts_with('Z'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_task_create_is_repaired_by_the_next_agent() {
    let mut env = AgentEnv::new();
    let uuid = env.uuid(1);
    let id = format!("{uuid}.1.1");
    let held = hold_task_streams(&env, &id);
    env.write_config(&format!(
        "generation: 1\napps:\n{}",
        app_yaml(&uuid, "victim", 1, "hello", "")
    ));
    env.start_agent();

    // The shim is inside task create (it wrote its options into the bundle)
    // and blocks there: kill the agent now.
    let b = bundle(&env, &id);
    wait_until(&env, "the shim inside task create", T, || {
        b.join("options.json").exists() && !shims(&env, &id).is_empty()
    });
    let orphans = shims(&env, &id);
    env.kill_agent();
    assert!(b.exists(), "the interrupted create left no bundle");
    assert!(
        orphans.iter().all(|p| alive(*p)),
        "the shim died on its own"
    );

    // memlogd lets go of the old streams, so the next agent attaches the FIFOs.
    drop(held);
    wait_until(&env, "memlogd to drop the held streams", T, || {
        active_streams(&env, &id).is_empty()
    });

    let log_len = env.agent_log().len();
    env.start_agent();
    env.wait_running(&["victim"], Duration::from_secs(20));
    let new_log = env.agent_log()[log_len..].to_string();
    assert!(
        !new_log.contains("file exists"),
        "the next agent tripped over the stale bundle:\n{}",
        tail(&new_log, 30)
    );
    for p in &orphans {
        assert!(!alive(*p), "orphan shim {p} of {id} still runs");
    }
    assert!(
        new_log.contains("killed orphan shim"),
        "no repair logged:\n{}",
        tail(&new_log, 30)
    );
    let app = env.app("victim").unwrap();
    assert_eq!(app.state, SwState::Running);
    assert!(app.error.is_none(), "{:?}", app.error);
    assert_eq!(shims(&env, &id).len(), 1, "one shim for the running task");

    // Remove the app: no shim, bundle, mount or FIFO of it is left.
    env.write_config("generation: 2\napps: []\n");
    env.wait_for("victim removed", T, |l| l.is_empty());
    wait_until(&env, "no shim of the removed task", T, || {
        shims(&env, &id).is_empty()
    });
    let (containers, vols, leases, mnts, fifos) = census(&env).await;
    assert!(containers.is_empty(), "containers left: {containers:?}");
    assert!(vols.is_empty(), "container volumes left: {vols:?}");
    assert_eq!(leases, 0, "leases left");
    assert!(mnts.is_empty(), "mounts left: {mnts:?}");
    assert!(fifos.is_empty(), "FIFOs left: {fifos:?}");
    assert!(!b.exists(), "bundle left: {}", b.display());
    env.teardown().await;
}

/// The create path's own repair, for leftovers that appear while the
/// agent runs: a create whose client went away (here: the request future
/// dropped while the shim blocks on a stdout FIFO nobody reads), then a
/// create of the same task that finds the bundle, repairs and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_after_a_cancelled_create_repairs_and_succeeds() {
    let env = TestEnv::start().await;
    env.import("hello").await;
    let app = env.app("stale", "hello");
    let id = app.task_id();
    let fifo = env.dir.path().join("nobody-reads.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let blocked = TaskIo {
        stdout: fifo.clone(),
        stderr: fifo,
    };
    let first = {
        let (rt, app) = (env.runtime.clone(), app.clone());
        tokio::spawn(async move { rt.create_app(&app, 1, &blocked).await })
    };
    let b = bundle_dir(&env.layout, USER_NAMESPACE, &id);
    let socket = env.layout.user_socket();
    let orphan = TestEnv::eventually("the shim inside task create", T, || async {
        let shims: Vec<i32> = find_shims(&socket, USER_NAMESPACE)
            .into_iter()
            .filter(|s| s.id == id)
            .map(|s| s.pid)
            .collect();
        (b.join("options.json").exists() && shims.len() == 1).then(|| shims[0])
    })
    .await;
    // The client goes away: containerd cancels the create. It drops the
    // task from its list when the cancellation reaches it, which on a
    // loaded host is a moment after our side of the call has gone.
    first.abort();
    let _ = first.await;
    TestEnv::eventually("containerd to drop the cancelled task", T, || async {
        env.runtime
            .state(&id)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;

    let created = env
        .runtime
        .create_app(&app, 1, &env.io(&id))
        .await
        .expect("create after a cancelled create");
    env.runtime.start(&id).await.expect("start");
    TestEnv::eventually("the orphan shim gone", T, || async {
        (!alive(orphan)).then_some(())
    })
    .await;
    let shims: Vec<i32> = find_shims(&socket, USER_NAMESPACE)
        .into_iter()
        .filter(|s| s.id == id)
        .map(|s| s.pid)
        .collect();
    assert_eq!(shims.len(), 1, "one shim for the task: {shims:?}");
    assert_ne!(shims[0], orphan);
    assert!(created.pid > 0);
    env.teardown().await;
}
