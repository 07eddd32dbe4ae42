//! pkg/runtime against a real user containerd + runc (and runsc).

use std::time::{Duration, Instant};

use containerd_client::services::v1::snapshots::ListSnapshotsRequest;
use containerd_client::services::v1::{
    GetContainerRequest, ListContainersRequest, ListContentRequest, ListTasksRequest,
};
use outpost_api::{RuntimeClass, Secret, SwState};
use outpost_runtime::labels::EVE_VNC_PASSWORD;
use outpost_runtime::{lease, volume, SNAPSHOTTER};
use outpost_tests::{cgroup_pids, read, TestEnv};

const T: Duration = Duration::from_secs(20);

async fn state(env: &TestEnv, id: &str) -> SwState {
    env.runtime
        .state(id)
        .await
        .unwrap()
        .map(|s| s.sw_state())
        .unwrap_or(SwState::Unknown)
}

async fn wait_state(env: &TestEnv, id: &str, want: SwState) {
    TestEnv::eventually(&format!("{id} {want}"), T, || async {
        (state(env, id).await == want).then_some(())
    })
    .await;
}

async fn wait_output(path: &std::path::Path, needle: &str) {
    TestEnv::eventually(&format!("{needle:?} in {}", path.display()), T, || async {
        read(path).contains(needle).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_runs_with_memory_limit_and_stops_gracefully() {
    let env = TestEnv::start().await;
    let img = env.import("hello").await;
    assert!(img.chain_id.starts_with("sha256:"));
    let mut app = env.app("hello", "hello");
    app.resources.memory_kib = 32 * 1024;
    let id = app.task_id();
    env.run(&app).await;
    wait_state(&env, &id, SwState::Running).await;
    let io = env.io(&id);
    wait_output(&io.stdout, "hello 1").await;

    let limit =
        read(format!("/sys/fs/cgroup/memory/eve-user-apps/{id}/memory.limit_in_bytes").as_ref());
    assert_eq!(
        limit.trim(),
        (32 * 1024 * 1024).to_string(),
        "cgroup memory limit"
    );
    let quota = read(format!("/sys/fs/cgroup/cpu/eve-user-apps/{id}/cpu.cfs_quota_us").as_ref());
    assert_eq!(quota.trim(), "100000");

    // The image traps SIGTERM: it exits 0 well within the grace period.
    let obs = env.runtime.find(&id).await.unwrap().unwrap();
    assert_eq!(obs.stop_signal, libc::SIGTERM);
    let t0 = Instant::now();
    let out = env.runtime.stop(&obs).await.unwrap();
    assert!(!out.killed, "trapped SIGTERM must not need SIGKILL");
    assert_eq!(out.exit_status, 0);
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "stop took {:?}",
        t0.elapsed()
    );
    wait_output(&io.stdout, "bye").await;
    assert_eq!(state(&env, &id).await, SwState::Halted);
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_ignoring_sigterm_is_killed_after_the_grace_period() {
    let env = TestEnv::start().await;
    env.import("stubborn").await;
    let mut app = env.app("stubborn", "stubborn");
    app.stop_timeout = Duration::from_secs(2);
    let id = app.task_id();
    env.run(&app).await;
    wait_output(&env.io(&id).stdout, "stubborn: started").await;
    let obs = env.runtime.find(&id).await.unwrap().unwrap();
    assert_eq!(obs.stop_timeout, Duration::from_secs(2));
    let t0 = Instant::now();
    let out = env.runtime.stop(&obs).await.unwrap();
    let took = t0.elapsed();
    assert!(out.killed, "SIGKILL expected");
    assert_eq!(out.exit_status, 137);
    assert!(
        took >= Duration::from_secs(2),
        "killed before the grace period: {took:?}"
    );
    assert!(
        took < Duration::from_secs(8),
        "kill took too long: {took:?}"
    );
    wait_output(&env.io(&id).stdout, "ignoring TERM").await;
    assert_eq!(state(&env, &id).await, SwState::Broken);
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_map_to_halted_and_broken() {
    let env = TestEnv::start().await;
    env.import("crash").await;
    let mut bad = env.app("crash", "crash");
    bad.env.insert("CRASH_AFTER".into(), "0".into());
    bad.env.insert("CRASH_CODE".into(), "3".into());
    let mut good = env.app("ok", "crash");
    good.app_num = 2;
    good.env.insert("CRASH_AFTER".into(), "0".into());
    good.env.insert("CRASH_CODE".into(), "0".into());
    env.run(&bad).await;
    env.run(&good).await;
    wait_state(&env, &bad.task_id(), SwState::Broken).await;
    wait_state(&env, &good.task_id(), SwState::Halted).await;
    let s = env.runtime.state(&bad.task_id()).await.unwrap().unwrap();
    assert_eq!(s.exit_status, 3);
    assert_eq!(s.error_text().unwrap(), "task broke with exit status 3");
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_pause_resume_and_metrics() {
    let env = TestEnv::start().await;
    env.import("sh").await;
    let app = env.app("shell", "sh");
    let id = app.task_id();
    env.run(&app).await;
    wait_state(&env, &id, SwState::Running).await;

    let out = env
        .sh(&id, "echo out; echo err >&2; hostname; exit 7")
        .await;
    assert_eq!(out.exit_status, 7);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("out\n{}\n", app.uuid)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");

    let timed_out = env
        .runtime
        .exec(
            &id,
            &["/bin/sleep".into(), "30".into()],
            Duration::from_millis(500),
        )
        .await;
    assert!(timed_out.is_err(), "exec must time out");

    let m = env.runtime.metrics(&id).await.unwrap();
    assert!(m.memory_usage > 0, "{m:?}");
    assert_eq!(m.memory_limit, 65536 * 1024, "{m:?}");
    assert!(m.cpu_ns > 0, "{m:?}");
    assert!(m.pids >= 1, "{m:?}");

    env.runtime.pause(&id).await.unwrap();
    assert_eq!(state(&env, &id).await, SwState::Paused);
    let frozen = read(format!("/sys/fs/cgroup/freezer/eve-user-apps/{id}/freezer.state").as_ref());
    assert_eq!(frozen.trim(), "FROZEN");
    env.runtime.resume(&id).await.unwrap();
    assert_eq!(state(&env, &id).await, SwState::Running);
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runsc_class_runs_under_gvisor() {
    let env = TestEnv::start().await;
    env.import("sh").await;
    let mut app = env.app("gvisor", "sh");
    app.runtime = RuntimeClass::Runsc;
    let id = app.task_id();
    env.run(&app).await;
    wait_state(&env, &id, SwState::Running).await;
    let out = env
        .runtime
        .exec(&id, &["/bin/dmesg".into()], T)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("gVisor"),
        "dmesg under runsc should come from gVisor, got: {text}"
    );
    let obs = env.runtime.find(&id).await.unwrap().unwrap();
    assert_eq!(obs.runtime, "runsc");
    env.runtime.remove_container(&obs).await.unwrap();
    assert!(env.runtime.state(&id).await.unwrap().is_none());
    env.teardown().await;
}

async fn annotation(env: &TestEnv, id: &str) -> Option<String> {
    let c = env.client();
    let ct = c
        .containers()
        .get(c.req(GetContainerRequest { id: id.into() }))
        .await
        .unwrap()
        .into_inner()
        .container
        .unwrap();
    let spec: serde_json::Value = serde_json::from_slice(&ct.spec.unwrap().value).unwrap();
    spec["annotations"][EVE_VNC_PASSWORD]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vnc_password_annotation_precedence() {
    let env = TestEnv::start().await;
    env.import("vnc-labelled").await;
    env.import("hello").await;
    let from_label = env.app("label", "vnc-labelled");
    let mut from_config = env.app("config", "vnc-labelled");
    from_config.app_num = 2;
    from_config.vnc.password = Some(Secret::new("config-secret"));
    let mut none = env.app("none", "hello");
    none.app_num = 3;
    for a in [&from_label, &from_config, &none] {
        env.runtime
            .create_app(a, 1, &env.io(&a.task_id()))
            .await
            .unwrap();
    }
    assert_eq!(
        annotation(&env, &from_label.task_id()).await.as_deref(),
        Some("image-secret")
    );
    assert_eq!(
        annotation(&env, &from_config.task_id()).await.as_deref(),
        Some("config-secret")
    );
    assert_eq!(annotation(&env, &none.task_id()).await, None);
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_volume_keeps_its_snapshot_through_snapshot_id() {
    let env = TestEnv::start().await;
    env.import("sh").await;
    let mut app = env.app("keeper", "sh");
    let id = app.task_id();
    env.run(&app).await;
    let out = env.sh(&id, "echo precious > /keep").await;
    assert_eq!(out.exit_status, 0);
    let old_dir = env.runtime.volume_dir(&app);
    assert_eq!(
        volume::snapshot_id(&old_dir),
        old_dir.file_name().unwrap().to_string_lossy()
    );
    let obs = env.runtime.find(&id).await.unwrap().unwrap();
    env.runtime.remove_container(&obs).await.unwrap();

    // Move the volume to a new generation's name, as the upgrade conversion does.
    app.purge_counter = 5;
    let new_dir = env.runtime.volume_dir(&app);
    std::fs::rename(&old_dir, &new_dir).unwrap();
    volume::save_snapshot_id(&old_dir, &new_dir).unwrap();
    env.run(&app).await;
    let out = env
        .runtime
        .exec(&id, &["/bin/cat".into(), "/keep".into()], T)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "precious\n",
        "data of the old snapshot"
    );
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_user_containerd_is_restarted_and_the_task_survives() {
    let env = TestEnv::start().await;
    env.import("hello").await;
    let app = env.app("survivor", "hello");
    let id = app.task_id();
    let pid = env.run(&app).await;
    wait_state(&env, &id, SwState::Running).await;
    let instance = env.instance.as_ref().unwrap();
    let cpid = instance.pid().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(cpid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    TestEnv::eventually("containerd restart", T, || async {
        (instance.restarts() >= 1 && instance.pid() != Some(cpid)).then_some(())
    })
    .await;
    // The same process is still running and containerd knows it again.
    let st = TestEnv::eventually("task visible again", T, || async {
        env.runtime.state(&id).await.ok().flatten()
    })
    .await;
    assert_eq!(st.pid, pid);
    assert_eq!(st.sw_state(), SwState::Running);
    assert!(cgroup_pids(&id).contains(&(pid as i32)));
    let before = read(&env.io(&id).stdout).lines().count();
    TestEnv::eventually("more output", T, || async {
        (read(&env.io(&id).stdout).lines().count() > before + 1).then_some(())
    })
    .await;
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_everything_leaves_nothing_behind() {
    let env = TestEnv::start().await;
    let img = env.import("hello").await;
    let app = env.app("gone", "hello");
    env.run(&app).await;
    let c = env.client();
    let obs = env.runtime.find(&app.task_id()).await.unwrap().unwrap();
    env.runtime.remove_container(&obs).await.unwrap();
    env.runtime.remove_volume(&obs.volume_dir).await.unwrap();
    outpost_runtime::image::delete_image(c, &img.name)
        .await
        .unwrap();

    let containers = c
        .containers()
        .list(c.req(ListContainersRequest { filters: vec![] }))
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert!(containers.is_empty(), "{containers:?}");
    let tasks = c
        .tasks()
        .list(c.req(ListTasksRequest {
            filter: String::new(),
        }))
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert!(tasks.is_empty(), "{tasks:?}");
    assert!(lease::list_own(c).await.unwrap().is_empty(), "leases left");
    // The image's snapshots and blobs go with the synchronous GC of the delete.
    let snaps = c
        .snapshots()
        .list(c.req(ListSnapshotsRequest {
            snapshotter: SNAPSHOTTER.into(),
            filters: vec![],
        }))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap();
    assert!(
        snaps.as_ref().map(|s| s.info.is_empty()).unwrap_or(true),
        "snapshots left: {snaps:?}"
    );
    let mut content = c
        .content()
        .list(c.req(ListContentRequest { filters: vec![] }))
        .await
        .unwrap()
        .into_inner();
    let blobs = content.message().await.unwrap();
    assert!(
        blobs.as_ref().map(|b| b.info.is_empty()).unwrap_or(true),
        "content left: {blobs:?}"
    );
    assert!(!obs.volume_dir.exists());
    assert!(outpost_runtime::mount::mounts_under(env.dir.path()).is_empty());
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctr_sees_the_container_task_and_labels() {
    let env = TestEnv::start().await;
    env.import("hello").await;
    let app = env.app("observed", "hello");
    let id = app.task_id();
    env.run(&app).await;
    wait_state(&env, &id, SwState::Running).await;
    let ctr = |args: &[&str]| {
        let out = std::process::Command::new("ctr")
            .arg("--address")
            .arg(env.layout.user_socket())
            .args(["-n", "eve-user-apps"])
            .args(args)
            .output()
            .expect("running ctr");
        assert!(
            out.status.success(),
            "ctr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(ctr(&["containers", "ls"]).contains(&id));
    let tasks = ctr(&["tasks", "ls"]);
    let line = tasks
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} not in {tasks}"));
    assert!(line.contains("RUNNING"), "{line}");
    let info: serde_json::Value = serde_json::from_str(&ctr(&["containers", "info", &id])).unwrap();
    assert_eq!(info["Labels"]["dev.outpost.app"], app.uuid.as_str());
    assert_eq!(info["Labels"]["dev.outpost.version"], "1");
    assert_eq!(info["Labels"]["dev.outpost.config-generation"], "1");
    assert_eq!(info["Runtime"]["Name"], "io.containerd.runc.v2");
    env.teardown().await;
}
