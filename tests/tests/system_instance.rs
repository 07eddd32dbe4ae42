//! The system containerd (started by init on a device, by
//! `scripts/test-daemons.sh` in CI) runs device services in
//! `services.linuxkit`, apart from the user instance's `eve-user-apps`.

use std::time::Duration;

use outpost_api::SwState;
use outpost_runtime::instance::{InstanceOptions, UserInstance};
use outpost_runtime::{Containerd, Layout, Runtime, SYSTEM_NAMESPACE};
use outpost_tests::{image_dir, require_root, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_runs_in_the_system_instance_namespace() {
    require_root();
    let dir = tempfile::Builder::new()
        .prefix("outpost-sys")
        .tempdir_in("/tmp")
        .unwrap();
    let layout = Layout::new(dir.path());
    // CI's system containerd when present; otherwise one of our own.
    let mut own = None;
    let socket = match std::env::var_os("OUTPOST_TEST_SYSTEM_SOCKET") {
        Some(s) => s.into(),
        None => {
            let sys = Layout::new(dir.path().join("sys"));
            let (i, _) = UserInstance::start(
                &sys,
                InstanceOptions::with_log_file(dir.path().join("sys.log")),
            )
            .await
            .unwrap();
            let s = i.socket().to_path_buf();
            own = Some(i);
            s
        }
    };
    let c = Containerd::connect_wait(&socket, SYSTEM_NAMESPACE, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        c.version().await.unwrap().starts_with('1'),
        "containerd 1.x expected"
    );
    let rt = Runtime::new(c, layout);
    rt.import_layout(&image_dir("sh"), "sh:latest")
        .await
        .unwrap();
    let app: outpost_api::AppConfig = serde_json::from_value(serde_json::json!({
        "uuid": uuid::Uuid::new_v4().to_string(), "version": "1", "display_name": "svc",
        "app_num": 1, "image": "sh:latest",
    }))
    .unwrap();
    let id = app.task_id();
    let io = outpost_runtime::TaskIo {
        stdout: dir.path().join("out"),
        stderr: dir.path().join("err"),
    };
    std::fs::write(&io.stdout, "").unwrap();
    std::fs::write(&io.stderr, "").unwrap();
    rt.create_app(&app, 1, &io).await.unwrap();
    rt.start(&id).await.unwrap();
    let st = TestEnv::eventually("service running", Duration::from_secs(20), || async {
        rt.state(&id)
            .await
            .ok()
            .flatten()
            .filter(|s| s.sw_state() == SwState::Running)
    })
    .await;
    assert!(st.pid > 0);
    let out = std::process::Command::new("ctr")
        .arg("--address")
        .arg(&socket)
        .args(["-n", SYSTEM_NAMESPACE, "tasks", "ls"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&id),
        "ctr -n services.linuxkit tasks ls shows the service"
    );
    // Not visible in the user apps' namespace of the same daemon.
    let other = rt.client().with_namespace(outpost_runtime::USER_NAMESPACE);
    assert!(outpost_runtime::observe::list_apps(&other)
        .await
        .unwrap()
        .iter()
        .all(|a| a.task_id != id));

    let obs = rt.find(&id).await.unwrap().unwrap();
    rt.remove_container(&obs).await.unwrap();
    rt.remove_volume(&obs.volume_dir).await.unwrap();
    outpost_runtime::image::delete_image(rt.client(), "sh:latest")
        .await
        .unwrap();
    if let Some(i) = own {
        i.kill().await;
    }
}
