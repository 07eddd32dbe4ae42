//! App output reaches memlogd straight from the containerd shim through
//! FIFOs: the agent is not in the data path.

use std::time::Duration;

use outpost_api::SwState;
use outpost_runtime::TaskIo;
use outpost_tests::{Memlogd, TestEnv};

const T: Duration = Duration::from_secs(20);

/// Not a test on its own: the child process of the test below attaches the
/// FIFOs to memlogd, then waits to be killed.
#[test]
#[ignore = "helper process for attach_survives_the_attacher"]
fn attach_helper() {
    let (Some(log), Some(query), Some(dir), Some(task)) = (
        std::env::var_os("ATTACH_LOG"),
        std::env::var_os("ATTACH_QUERY"),
        std::env::var_os("ATTACH_DIR"),
        std::env::var("ATTACH_TASK").ok(),
    ) else {
        return;
    };
    TaskIo::memlogd(log.as_ref(), query.as_ref(), dir.as_ref(), &task).unwrap();
    println!("attached");
    std::thread::sleep(Duration::from_secs(3600));
}

async fn has_line(m: &Memlogd, source: &str, needle: &str) {
    TestEnv::eventually(
        &format!("{needle:?} in memlogd source {source}"),
        T,
        || async {
            m.lines(source)
                .iter()
                .any(|l| l.contains(needle))
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_output_reaches_memlogd_across_restarts_and_attacher_death() {
    let env = TestEnv::start().await;
    let m = Memlogd::start(env.dir.path(), &[]);
    env.import("hello").await;
    let app = env.app("logger", "hello");
    let id = app.task_id();
    let fifos = env.layout.fifos();
    std::fs::create_dir_all(&fifos).unwrap();

    // A separate process attaches the FIFOs, then is killed with SIGKILL.
    let mut helper = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "attach_helper", "--ignored", "--nocapture"])
        .env("ATTACH_LOG", &m.log_socket)
        .env("ATTACH_QUERY", &m.query_socket)
        .env("ATTACH_DIR", &fifos)
        .env("ATTACH_TASK", &id)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out_stream = format!("guest_vm-{id}");
    let err_stream = format!("guest_vm_err-{id}");
    TestEnv::eventually("streams attached", T, || async {
        let active = memlogd::active_sources(&m.query_socket).unwrap_or_default();
        (active.contains(&out_stream) && active.contains(&err_stream)).then_some(())
    })
    .await;
    helper.kill().unwrap();
    helper.wait().unwrap();

    // The attach is idempotent: no second reader for the same names.
    let io = TaskIo::memlogd(&m.log_socket, &m.query_socket, &fifos, &id).unwrap();
    assert_eq!(io.stdout, fifos.join(format!("guest_vm-{id}.log")));
    assert_eq!(io.stderr, fifos.join(format!("guest_vm_err-{id}.log")));
    let stats = memlogd::stats(&m.query_socket).unwrap();
    assert_eq!(stats.totals.streams_active, 2, "one reader per FIFO");

    env.runtime.create_app(&app, 1, &io).await.unwrap();
    env.runtime.start(&id).await.unwrap();
    has_line(&m, &out_stream, "hello 2").await;
    has_line(&m, &err_stream, "hello-err 5").await;

    // Restart: a new task writes into the same FIFOs, the same names keep receiving.
    let obs = env.runtime.find(&id).await.unwrap().unwrap();
    env.runtime.restart_task(&obs, &io).await.unwrap();
    has_line(&m, &out_stream, "bye").await;
    TestEnv::eventually("second run's output", T, || async {
        let lines = m.lines(&out_stream);
        let bye = lines.iter().position(|l| l == "bye")?;
        lines[bye..].iter().any(|l| l == "hello 2").then_some(())
    })
    .await;
    assert_eq!(
        env.runtime.state(&id).await.unwrap().unwrap().sw_state(),
        SwState::Running
    );

    // Deleting the app's FIFOs lets memlogd release them.
    let obs = env.runtime.find(&id).await.unwrap().unwrap();
    env.runtime.remove_container(&obs).await.unwrap();
    memlogd::remove_task_logs(&fifos, &id).unwrap();
    TestEnv::eventually("FIFO streams released", Duration::from_secs(30), || async {
        let s = memlogd::stats(&m.query_socket).ok()?;
        (s.totals.streams_active == 0).then_some(())
    })
    .await;
    env.teardown().await;
}
