//! The download table's rules with fetches the test finishes by hand.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::*;

type Fetch = std::pin::Pin<Box<dyn Future<Output = Result<(), Failure>> + Send>>;
type End = oneshot::Sender<Result<(), Failure>>;

/// A fetch that reports `started` and ends with what the test sends.
fn held(
    started: mpsc::UnboundedSender<&'static str>,
    name: &'static str,
) -> (
    impl FnOnce(watch::Sender<PullProgress>) -> Fetch + Send + 'static,
    End,
) {
    let (tx, rx) = oneshot::channel();
    let fetch = move |progress: watch::Sender<PullProgress>| {
        Box::pin(async move {
            progress.send_replace(PullProgress { done: 1, total: 10 });
            let _ = started.send(name);
            rx.await.unwrap_or(Ok(()))
        }) as Fetch
    };
    (fetch, tx)
}

fn waker() -> (impl FnOnce() + Send + 'static, oneshot::Receiver<()>) {
    let (tx, rx) = oneshot::channel();
    (
        move || {
            let _ = tx.send(());
        },
        rx,
    )
}

fn fail(class: ErrorClass) -> Failure {
    Failure {
        class,
        message: "registry r, repository x: 1 not found".into(),
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<&'static str>) -> &'static str {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a download should start")
        .unwrap()
}

#[tokio::test]
async fn at_most_concurrency_run_and_a_finished_one_leaves_the_table() {
    let d = Downloads::new(2, 8);
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let mut ends = Vec::new();
    let mut wakes = Vec::new();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let (fetch, end) = held(started_tx.clone(), name);
        let (wake, woken) = waker();
        assert_eq!(
            d.request(name, &format!("app{i}"), fetch, wake),
            Request::Waiting
        );
        ends.push(end);
        wakes.push(woken);
    }
    let mut first = [next(&mut started).await, next(&mut started).await];
    first.sort();
    assert_eq!(first, ["a", "b"]);
    // "c" is queued: visible (0 bytes), not started.
    assert_eq!(d.progress("c"), Some(PullProgress::default()));
    assert!(started.try_recv().is_err());
    // A second app asking for "a" joins it: no new fetch.
    let (fetch, _end) = held(started_tx.clone(), "a-again");
    assert_eq!(d.request("a", "app9", fetch, || {}), Request::Waiting);
    assert_eq!(d.progress("a"), Some(PullProgress { done: 1, total: 10 }));

    let c_end = ends.pop().unwrap();
    ends.remove(0).send(Ok(())).unwrap();
    wakes.remove(0).await.unwrap();
    assert_eq!(
        d.progress("a"),
        None,
        "a finished download leaves the table"
    );
    assert_eq!(
        next(&mut started).await,
        "c",
        "its slot goes to the queued one"
    );
    c_end.send(Ok(())).unwrap();
    wakes.pop().unwrap().await.unwrap();
    assert!(started.try_recv().is_err(), "joining did not start a fetch");
}

#[tokio::test]
async fn a_failure_is_reported_once_per_app_then_retried() {
    let d = Downloads::new(2, 8);
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (fetch, end) = held(started_tx.clone(), "first");
    let (wake, woken) = waker();
    assert_eq!(d.request("img", "app1", fetch, wake), Request::Waiting);
    assert_eq!(next(&mut started).await, "first");
    end.send(Err(fail(ErrorClass::Permanent))).unwrap();
    woken.await.unwrap();
    assert_eq!(
        d.progress("img"),
        None,
        "a failed download is not DOWNLOADING"
    );

    let never = |_: watch::Sender<PullProgress>| async { Ok::<(), Failure>(()) };
    let want = Request::Failed(fail(ErrorClass::Permanent));
    assert_eq!(d.request("img", "app1", never, || {}), want);
    assert_eq!(d.request("img", "app2", never, || {}), want);
    // app1 was told; its next attempt (after its backoff) downloads again.
    let (fetch, end) = held(started_tx, "retry");
    assert_eq!(d.request("img", "app1", fetch, || {}), Request::Waiting);
    assert_eq!(next(&mut started).await, "retry");
    drop(end);
}

#[tokio::test]
async fn a_full_table_refuses_and_counts_and_failures_make_room() {
    let d = Downloads::new(1, 2);
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (fa, end_a) = held(started_tx.clone(), "a");
    let (wake_a, woken_a) = waker();
    let (fb, _end_b) = held(started_tx.clone(), "b");
    assert_eq!(d.request("a", "app1", fa, wake_a), Request::Waiting);
    assert_eq!(d.request("b", "app2", fb, || {}), Request::Waiting);
    let (fc, _end_c) = held(started_tx.clone(), "c");
    match d.request("c", "app3", fc, || {}) {
        Request::Failed(f) => {
            assert_eq!(f.class, ErrorClass::Transient);
            assert!(f.message.contains("image c"), "{}", f.message);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(d.refused(), 1);
    // A failed entry gives its place to a new request.
    assert_eq!(next(&mut started).await, "a");
    end_a.send(Err(fail(ErrorClass::Transient))).unwrap();
    woken_a.await.unwrap();
    let (fc, _end_c) = held(started_tx, "c");
    assert_eq!(d.request("c", "app3", fc, || {}), Request::Waiting);
    assert_eq!(d.refused(), 1);
}

#[tokio::test]
async fn unwanted_queued_downloads_are_cancelled_running_ones_finish() {
    let d = Downloads::new(1, 8);
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (fa, end_a) = held(started_tx.clone(), "a");
    let (wake_a, woken_a) = waker();
    let (fb, _end_b) = held(started_tx.clone(), "b");
    assert_eq!(d.request("a", "app1", fa, wake_a), Request::Waiting);
    assert_eq!(d.request("b", "app2", fb, || {}), Request::Waiting);
    assert_eq!(next(&mut started).await, "a");
    d.retain_wanted(&BTreeSet::new());
    assert!(d.progress("a").is_some(), "a running download is kept");
    assert_eq!(d.progress("b"), None, "a queued one is dropped");
    end_a.send(Ok(())).unwrap();
    woken_a.await.unwrap();
    // "b" never starts: its task was cancelled.
    let (fc, end_c) = held(started_tx, "c");
    let (wake_c, woken_c) = waker();
    assert_eq!(d.request("c", "app3", fc, wake_c), Request::Waiting);
    assert_eq!(next(&mut started).await, "c");
    end_c.send(Ok(())).unwrap();
    woken_c.await.unwrap();
    assert!(started.try_recv().is_err());
}
