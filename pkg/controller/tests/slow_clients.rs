//! Slow and greedy clients: header and body deadlines, the connection cap.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, tls_config, Harness};
use outpost_controller::{layout, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes `request` one byte per second; returns how long until the
/// server closed the connection.
async fn slowloris<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    started: Instant,
    request: &[u8],
) -> Duration {
    let mut buf = [0u8; 1024];
    for b in request.iter().cycle() {
        if stream.write_all(&[*b]).await.is_err() || stream.flush().await.is_err() {
            return started.elapsed();
        }
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            Err(_) => {} // still open, nothing said
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {} // an answer; the close follows
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "never disconnected"
        );
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_dropped_after_ten_seconds_while_others_are_served() {
    let h = Harness::start().await;
    let ca = h.file(layout::CA_CERT);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(&ca, None)));

    // headers one byte per second, after a complete TLS handshake
    let tls_loris = {
        let (addr, connector) = (h.addr, connector.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let tls = connector.connect(name, tcp).await.unwrap();
            slowloris(
                tls,
                started,
                b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            )
            .await
        })
    };
    // a client that never even starts the TLS handshake
    let silent = {
        let addr = h.addr;
        tokio::spawn(async move {
            let started = Instant::now();
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            let mut buf = [0u8; 16];
            let n = tokio::time::timeout(Duration::from_secs(40), tcp.read(&mut buf)).await;
            assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "{n:?}");
            started.elapsed()
        })
    };
    // a long-poll is not a slow client: it outlives the header timeout
    let d = h.device("gw", "SN-1").await;
    h.controller()
        .set_config("gw", common::doc(1))
        .await
        .unwrap();
    let long_poll = {
        let url = h.url(&format!("/devices/{}/config", d.uuid));
        let client = d.client.clone();
        tokio::spawn(async move {
            let etag = client.get(&url).send().await.unwrap().headers()["etag"].clone();
            let started = Instant::now();
            let r = client
                .get(format!("{url}?wait=12"))
                .header("if-none-match", etag)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), started.elapsed())
        })
    };
    // meanwhile the server answers everyone else
    let client = h.anonymous();
    let until = Instant::now() + Duration::from_secs(8);
    let mut served = 0;
    while Instant::now() < until {
        let r = client.get(h.url("/ping")).send().await.unwrap();
        assert_eq!(r.status(), 204);
        served += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(served >= 10);

    let t = tls_loris.await.unwrap();
    assert!(
        t >= Duration::from_secs(9) && t <= Duration::from_secs(13),
        "slowloris lasted {t:?}"
    );
    let t = silent.await.unwrap();
    assert!(
        t >= Duration::from_secs(9) && t <= Duration::from_secs(12),
        "silent client lasted {t:?}"
    );
    let (status, held) = long_poll.await.unwrap();
    assert_eq!(status, 304);
    assert!(held >= Duration::from_secs(12), "{held:?}");
    assert!(
        eventually(|| {
            let s = h.controller().stats.snapshot();
            s.handshake_timeouts >= 1 && s.connection_errors >= 1
        })
        .await,
        "{:?}",
        h.controller().stats.snapshot()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let limits = Limits {
        body_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let h = Harness::start_with(false, limits).await;
    let d = h.device("gw", "SN-1").await;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(
        &h.file(layout::CA_CERT),
        Some((&d.cert_pem, &d.key_pem)),
    )));
    let tcp = TcpStream::connect(h.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let started = Instant::now();
    let head = format!(
        "POST /api/v1/devices/{}/info HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{",
        d.uuid
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let t = started.elapsed();
    assert!(
        t >= Duration::from_secs(2) && t < Duration::from_secs(5),
        "{t:?}"
    );
    assert!(eventually(|| h.controller().stats.snapshot().body_timeouts == 1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_and_counted() {
    let limits = Limits {
        max_connections: 2,
        header_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let h = Harness::start_with(false, limits).await;
    let hog1 = TcpStream::connect(h.addr).await.unwrap();
    let hog2 = TcpStream::connect(h.addr).await.unwrap();
    // Both hogs hold their slots before the third connects.
    assert!(eventually(|| h.controller().stats.snapshot().connections_open == 2).await);
    let mut third = TcpStream::connect(h.addr).await.unwrap();
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(1), third.read(&mut buf)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "closed at once: {n:?}");
    assert!(eventually(|| h.controller().stats.snapshot().connections_refused == 1).await);
    // once the hogs time out, clients get in again
    assert!(
        eventually(|| {
            let s = h.controller().stats.snapshot();
            s.handshake_timeouts == 2 && s.connections_open == 0
        })
        .await
    );
    let r = h.anonymous().get(h.url("/ping")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    drop((hog1, hog2));
}
