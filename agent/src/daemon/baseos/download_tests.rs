//! The base OS download against a real HTTP server on loopback: whole,
//! cut and resumed with `Range`, from a server that ignores ranges, and
//! the errors that are retried or not.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::*;

/// An HTTP/1.0 server: `/img` honours `Range: bytes=N-`; `/cut` does too
/// but the first answer breaks off after `CUT` bytes; `/whole` ignores
/// ranges; `/404` and `/503` answer with those. Records each request's
/// path and Range header.
struct Server {
    port: u16,
    seen: Seen,
}

/// Each request's path and Range header.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

const CUT: usize = 1_200_000;

impl Server {
    fn start(body: Vec<u8>) -> Server {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let (path, range) = read_request(&s);
                let cuts = {
                    let mut log = log.lock().unwrap();
                    let first = !log.iter().any(|(p, _)| p == "/cut");
                    log.push((path.clone(), range.clone()));
                    path == "/cut" && first
                };
                answer(s, &path, range, &body, cuts);
            }
        });
        Server { port, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn seen(&self) -> Vec<(String, Option<String>)> {
        self.seen.lock().unwrap().clone()
    }
}

fn read_request(s: &TcpStream) -> (String, Option<String>) {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap_or(0);
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut range = None;
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) <= 2 {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_owned());
            }
        }
    }
    (path, range)
}

fn answer(mut s: TcpStream, path: &str, range: Option<String>, body: &[u8], cut: bool) {
    let status = match path {
        "/404" => Some("404 Not Found"),
        "/503" => Some("503 Service Unavailable"),
        _ => None,
    };
    if let Some(st) = status {
        let _ = write!(s, "HTTP/1.0 {st}\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    let from: usize = range
        .filter(|_| path != "/whole")
        .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok())
        .unwrap_or(0);
    let part = &body[from..];
    if from > 0 {
        let _ = write!(
            s,
            "HTTP/1.0 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {from}-{}/{}\r\n\r\n",
            part.len(),
            body.len() - 1,
            body.len()
        );
    } else {
        let _ = write!(
            s,
            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n",
            part.len()
        );
    }
    let n = if cut { CUT } else { part.len() };
    let _ = s.write_all(&part[..n]);
}

/// A 4 MiB "disk" whose slot starts at 64 KiB.
fn disk(dir: &Path) -> SlotArea {
    let dev = dir.join("disk");
    std::fs::write(&dev, vec![0u8; 4 << 20]).unwrap();
    SlotArea {
        dev,
        label: "IMGB".into(),
        offset: 64 << 10,
        size: (4 << 20) - (64 << 10),
    }
}

fn config(url: &str, body: &[u8]) -> BaseOsConfig {
    serde_json::from_value(serde_json::json!({
        "version": "2", "url": url, "sha256": hex::encode(Sha256::digest(body)),
        "test_window": "600s", "fallback": "300s"
    }))
    .unwrap()
}

/// Runs [`download`] on the blocking pool (it blocks on the runtime).
async fn fetch(
    area: &SlotArea,
    rec: &Record,
    cfg: &BaseOsConfig,
) -> (Record, Result<u64, FetchError>) {
    let (area, mut rec, cfg) = (area.clone(), rec.clone(), cfg.clone());
    tokio::task::spawn_blocking(move || {
        let path = area.dev.with_file_name("baseos.json");
        let r = download(&Layout::new("/nonexistent"), &path, &mut rec, &cfg, &area);
        (rec, r)
    })
    .await
    .unwrap()
}

fn slot_bytes(area: &SlotArea, len: usize) -> Vec<u8> {
    let all = std::fs::read(&area.dev).unwrap();
    all[area.offset as usize..area.offset as usize + len].to_vec()
}

fn image() -> Vec<u8> {
    (0..3_000_000u32).map(|i| (i % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_download_resumes_where_it_stopped() {
    let body = image();
    let srv = Server::start(body.clone());
    let d = tempfile::tempdir().unwrap();
    let area = disk(d.path());
    let cfg = config(&srv.url("/cut"), &body);
    let (rec, r) = fetch(&area, &Record::default(), &cfg).await;
    let e = r.unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(
        rec.downloaded > 0 && rec.downloaded <= CUT as u64,
        "{} bytes kept of the {CUT} sent",
        rec.downloaded
    );
    // The progress is on disk too (a reboot resumes from it).
    let saved = Record::load(&area.dev.with_file_name("baseos.json"));
    assert_eq!(saved.downloaded, rec.downloaded);
    let (rec2, r) = fetch(&area, &rec, &cfg).await;
    assert_eq!(r.unwrap(), body.len() as u64);
    assert_eq!(rec2.downloaded, body.len() as u64);
    assert!(slot_bytes(&area, body.len()) == body);
    let seen = srv.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].1, None);
    assert_eq!(seen[1].1, Some(format!("bytes={}-", rec.downloaded)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_ranges_or_a_file_gives_the_whole_image() {
    let body = image();
    let srv = Server::start(body.clone());
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("img");
    std::fs::write(&f, &body).unwrap();
    for url in [
        srv.url("/img"),
        srv.url("/whole"),
        format!("file:{}", f.display()),
    ] {
        let area = disk(d.path());
        let cfg = config(&url, &body);
        // Half of it "already there" from an earlier try; garbage past it.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&area.dev)
            .and_then(|mut f| {
                f.seek(SeekFrom::Start(area.offset))?;
                f.write_all(&body[..1_500_000])?;
                f.write_all(&[0xff; 4096])
            })
            .unwrap();
        let rec = Record {
            downloaded: 1_500_000,
            ..Record::default()
        };
        let (_, r) = fetch(&area, &rec, &cfg).await;
        assert_eq!(r.unwrap(), body.len() as u64, "{url}");
        assert!(slot_bytes(&area, body.len()) == body, "{url}");
    }
    let seen = srv.seen();
    assert_eq!(seen[0], ("/img".into(), Some("bytes=1500000-".into())));
    assert_eq!(seen[1], ("/whole".into(), Some("bytes=1500000-".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_errors_that_can_pass_are_retried() {
    let body = image();
    let srv = Server::start(body.clone());
    let d = tempfile::tempdir().unwrap();
    let area = disk(d.path());
    let none = Record::default();
    let cases = [
        (srv.url("/503"), true, "503"),
        (
            "http://127.0.0.1:1/x".to_owned(),
            true,
            "connecting to 127.0.0.1:1",
        ),
        (srv.url("/404"), false, "404"),
        ("ftp://x/y".to_owned(), false, "only http:// and file:/"),
        (
            "file:/nonexistent/img".to_owned(),
            false,
            "opening /nonexistent/img",
        ),
    ];
    for (url, transient, says) in cases {
        let (_, r) = fetch(&area, &none, &config(&url, &body)).await;
        let e = r.unwrap_err();
        assert_eq!(e.is_transient(), transient, "{url}: {e}");
        assert!(e.to_string().contains(says), "{url}: {e}");
    }
    // Larger than the slot, or not the image the config names: refused.
    let small = SlotArea {
        size: 1 << 20,
        ..area.clone()
    };
    let (_, r) = fetch(&small, &none, &config(&srv.url("/img"), &body)).await;
    let e = r.unwrap_err();
    assert!(
        !e.is_transient() && e.to_string().contains("larger than slot IMGB"),
        "{e}"
    );
    let (_, r) = fetch(&area, &none, &config(&srv.url("/img"), b"another image")).await;
    let e = r.unwrap_err();
    assert!(
        !e.is_transient() && e.to_string().contains("has sha256"),
        "{e}"
    );
    // A resumed download that does not match may have joined two files:
    // once more, from the beginning.
    let resumed = Record {
        downloaded: 1000,
        ..Record::default()
    };
    let (rec, r) = fetch(&area, &resumed, &config(&srv.url("/img"), b"another image")).await;
    let e = r.unwrap_err();
    assert!(
        e.is_transient() && e.to_string().contains("resumed download"),
        "{e}"
    );
    assert_eq!(rec.downloaded, 0);
}
