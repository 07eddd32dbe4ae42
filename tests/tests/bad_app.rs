//! One oversized app entry against a real outpostd, containerd and redb:
//! it is rejected on its own with a path-precise error, and the other apps
//! keep converging (before size validation, its planner record was over the
//! store's 1 MiB bound and every reconcile pass failed).

use std::time::Duration;

use outpost_api::SwState;
use outpost_tests::agent::{app_yaml, AgentEnv};

const T: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_app_is_rejected_alone_and_the_others_converge() {
    let mut env = AgentEnv::new();
    let big = "x".repeat(2 * 1024 * 1024);
    let alpha = app_yaml(&env.uuid(1), "alpha", 1, "hello", "");
    let huge = app_yaml(
        &env.uuid(2),
        "huge",
        2,
        "hello",
        &format!("    env:\n      SMALL: ok\n      BIG: \"{big}\"\n"),
    );
    let u3 = env.uuid(3);
    let beta = |extra: &str| app_yaml(&u3, "beta", 3, "hello", extra);
    env.write_config(&format!("generation: 1\napps:\n{alpha}{huge}{}", beta("")));
    env.start_agent();

    let want = "apps[1].env.BIG: value is 2097152 bytes, more than the limit of 32768";
    let list = env.wait_for("alpha and beta RUNNING, huge rejected", T, |l| {
        let running = |n: &str| {
            l.iter()
                .any(|a| a.display_name == n && a.state == SwState::Running)
        };
        let rejected = l.iter().any(|a| {
            a.display_name == "huge" && a.error.as_ref().is_some_and(|e| e.message.contains(want))
        });
        running("alpha") && running("beta") && rejected
    });
    let huge_status = list.iter().find(|a| a.display_name == "huge").unwrap();
    assert_eq!(huge_status.uuid, env.uuid(2));
    assert!(
        huge_status.domain.is_none(),
        "no container for the rejected app"
    );
    let (code, out, err) = env.outpost(&["status", "huge"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(want), "{out}");
    let (_, table, _) = env.outpost(&["list"]);
    assert!(table.contains("huge"), "{table}");

    // The loop is not stuck: a change to a good app is applied.
    let old = env.app("beta").unwrap().domain.unwrap().pid.unwrap();
    env.write_config(&format!(
        "generation: 2\napps:\n{alpha}{huge}{}",
        beta("    restart_counter: 1\n")
    ));
    env.wait_for("beta restarted by its restart_counter", T, |l| {
        l.iter().any(|a| {
            a.display_name == "beta"
                && a.state == SwState::Running
                && a.domain
                    .as_ref()
                    .and_then(|d| d.pid)
                    .is_some_and(|p| p != old)
        })
    });

    // The 2 MiB value was never echoed into the log.
    let log = env.agent_log();
    assert!(log.len() < 256 * 1024, "agent log is {} bytes", log.len());
    env.teardown().await;
}
