//! Tokens issued per second by the emulator, measured over real sockets with keep-alive clients.
//!
//! Scenarios: the App Service managed-identity endpoint with the token cache off (every request
//! signs a fresh RS256 token) over HTTP, and the Entra v2 client-secret grant over HTTPS. Two
//! load generators: a minimal HTTP/1.1 keep-alive client (pre-built request bytes, so nearly all
//! CPU goes to the emulator) and reqwest (what most Rust callers use). Client and emulator share
//! one tokio runtime with two worker threads on the 2-core machine.
//!
//! Run: `cargo bench -p pgentra-emulator --bench issue` (env: `PGENTRA_BENCH_SECS`, default 5;
//! `PGENTRA_BENCH_CONCURRENCY`, default 16).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pgentra_emulator::{Config, Emulator, RunningEmulator, dev};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    ManagedIdentity,
    /// The managed-identity endpoint with its token cache on: no signing, HTTP cost only.
    ManagedIdentityCached,
    ClientSecret,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Load {
    Raw,
    Reqwest,
}

fn describe(endpoint: Endpoint, load: Load) -> String {
    let e = match endpoint {
        Endpoint::ManagedIdentity => "App Service MI, cache off (HTTP)",
        Endpoint::ManagedIdentityCached => "App Service MI, cached token (HTTP)",
        Endpoint::ClientSecret => "v2 client_secret (HTTPS)",
    };
    let l = match load {
        Load::Raw => "minimal keep-alive client",
        Load::Reqwest => "reqwest keep-alive client",
    };
    format!("{e}, {l}")
}

fn form_body() -> String {
    let pairs = [
        ("grant_type", "client_credentials"),
        ("client_id", dev::SP_CLIENT_ID),
        ("client_secret", dev::SP_SECRET),
        ("scope", dev::OSSRDBMS_SCOPE),
    ];
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The exact request bytes the minimal client repeats.
fn raw_request(emu: &RunningEmulator, endpoint: Endpoint) -> Vec<u8> {
    match endpoint {
        Endpoint::ManagedIdentity | Endpoint::ManagedIdentityCached => format!(
            "GET /msi/token?api-version=2019-08-01&resource={} HTTP/1.1\r\nHost: {}\r\nX-IDENTITY-HEADER: {}\r\n\r\n",
            dev::OSSRDBMS_RESOURCE,
            emu.http_addr(),
            emu.identity_header()
        ),
        Endpoint::ClientSecret => {
            let body = form_body();
            format!(
                "POST /{}/oauth2/v2.0/token HTTP/1.1\r\nHost: localhost:{}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                dev::TENANT_ID,
                emu.https_addr().port(),
                body.len()
            )
        }
    }
    .into_bytes()
}

/// Sends one request on a keep-alive connection; true when a 200 with a body arrived.
async fn raw_round_trip<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> bool {
    if stream.write_all(request).await.is_err() {
        return false;
    }
    buf.clear();
    let mut chunk = [0u8; 8192];
    loop {
        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n");
        if let Some(end) = head_end {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            return head.starts_with("http/1.1 200") && length > 500;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn raw_worker(
    emu: RunningEmulator,
    endpoint: Endpoint,
    deadline: Instant,
    counters: Counters,
) {
    let request = raw_request(&emu, endpoint);
    let mut buf = Vec::with_capacity(16 * 1024);
    let tcp = |addr| async move {
        let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).expect("nodelay");
        s
    };
    match endpoint {
        Endpoint::ManagedIdentity | Endpoint::ManagedIdentityCached => {
            let mut stream = tcp(emu.http_addr()).await;
            while Instant::now() < deadline {
                counters.count(raw_round_trip(&mut stream, &request, &mut buf).await);
            }
        }
        Endpoint::ClientSecret => {
            let mut roots = rustls::RootCertStore::empty();
            use rustls_pki_types::pem::PemObject as _;
            let ca = rustls_pki_types::CertificateDer::from_pem_slice(emu.ca_cert_pem().as_bytes())
                .expect("CA");
            roots.add(ca).expect("CA added");
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
            let mut stream = connector
                .connect(name, tcp(emu.https_addr()).await)
                .await
                .expect("TLS");
            while Instant::now() < deadline {
                counters.count(raw_round_trip(&mut stream, &request, &mut buf).await);
            }
        }
    }
}

async fn reqwest_worker(
    emu: RunningEmulator,
    endpoint: Endpoint,
    deadline: Instant,
    counters: Counters,
) {
    let ca = reqwest::Certificate::from_pem(emu.ca_cert_pem().as_bytes()).expect("CA");
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .expect("client");
    let mi_url = format!(
        "{}?api-version=2019-08-01&resource={}",
        emu.identity_endpoint(),
        dev::OSSRDBMS_RESOURCE
    );
    let token_url = format!("{}/{}/oauth2/v2.0/token", emu.https_base(), dev::TENANT_ID);
    let body = form_body();
    while Instant::now() < deadline {
        let request = match endpoint {
            Endpoint::ManagedIdentity | Endpoint::ManagedIdentityCached => client
                .get(&mi_url)
                .header("X-IDENTITY-HEADER", emu.identity_header()),
            Endpoint::ClientSecret => client
                .post(&token_url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.clone()),
        };
        let ok = match request.send().await {
            Ok(r) if r.status() == 200 => r.bytes().await.is_ok_and(|b| b.len() > 500),
            _ => false,
        };
        counters.count(ok);
    }
}

#[derive(Clone, Default)]
struct Counters {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl Counters {
    fn count(&self, ok: bool) {
        let c = if ok { &self.ok } else { &self.failed };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// CPU time (user + system) this process has used so far, from /proc/self/stat.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

struct Measured {
    per_second: f64,
    /// CPU (emulator + load generator) per token, when /proc is available.
    cpu_per_token: Option<Duration>,
}

async fn measure(
    emu: &RunningEmulator,
    endpoint: Endpoint,
    load: Load,
    secs: u64,
    concurrency: u64,
) -> Measured {
    // A short warm-up run opens connections and TLS sessions, then the timed run starts.
    for (duration, timed) in [
        (Duration::from_millis(300), false),
        (Duration::from_secs(secs), true),
    ] {
        let counters = Counters::default();
        let cpu_before = process_cpu();
        let start = Instant::now();
        let deadline = start + duration;
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (emu, counters) = (emu.clone(), counters.clone());
                match load {
                    Load::Raw => tokio::spawn(raw_worker(emu, endpoint, deadline, counters)),
                    Load::Reqwest => {
                        tokio::spawn(reqwest_worker(emu, endpoint, deadline, counters))
                    }
                }
            })
            .collect();
        for t in tasks {
            t.await.expect("worker");
        }
        let elapsed = start.elapsed().as_secs_f64();
        assert_eq!(
            counters.failed.load(Ordering::Relaxed),
            0,
            "no failed requests"
        );
        if timed {
            let n = counters.ok.load(Ordering::Relaxed);
            let cpu_per_token = match (cpu_before, process_cpu()) {
                (Some(a), Some(b)) if n > 0 => Some((b - a) / u32::try_from(n).unwrap_or(u32::MAX)),
                _ => None,
            };
            return Measured {
                per_second: n as f64 / elapsed,
                cpu_per_token,
            };
        }
    }
    unreachable!("the timed run returns")
}

/// CPU cost of one RSA-2048 PKCS#1 v1.5 SHA-256 signature (the floor under every fresh token).
fn signature_floor() -> Option<Duration> {
    use aws_lc_rs::signature::RSA_PKCS1_SHA256;
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).ok()?;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut signature = vec![0u8; key.public_modulus_len()];
    let message = [7u8; 900];
    let rounds = 400u32;
    let before = process_cpu()?;
    for _ in 0..rounds {
        key.sign(&RSA_PKCS1_SHA256, &rng, &message, &mut signature)
            .ok()?;
    }
    Some((process_cpu()? - before) / rounds)
}

fn main() {
    let secs = env_number("PGENTRA_BENCH_SECS", 5);
    let concurrency = env_number("PGENTRA_BENCH_CONCURRENCY", 16);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Some(floor) = signature_floor() {
        println!(
            "RSA-2048 signature alone: {:.2} ms CPU -> at most {:.0} tokens/s on 2 cores",
            floor.as_secs_f64() * 1e3,
            2.0 / floor.as_secs_f64()
        );
    }
    runtime.block_on(async {
        let emu = Emulator::builder()
            .config(Config::default().with_mi_cache(Duration::ZERO))
            .start()
            .await
            .expect("emulator");
        println!(
            "emulator token issuance: {concurrency} keep-alive connections, {secs} s per scenario, 2 worker threads"
        );
        let cached = Emulator::builder().start().await.expect("emulator");
        let scenarios = [
            (Endpoint::ManagedIdentity, Load::Raw),
            (Endpoint::ClientSecret, Load::Raw),
            (Endpoint::ManagedIdentity, Load::Reqwest),
            (Endpoint::ClientSecret, Load::Reqwest),
            (Endpoint::ManagedIdentityCached, Load::Raw),
        ];
        for (endpoint, load) in scenarios {
            let target = match endpoint {
                Endpoint::ManagedIdentityCached => &cached,
                _ => &emu,
            };
            let m = measure(target, endpoint, load, secs, concurrency).await;
            let cpu = match m.cpu_per_token {
                Some(c) => format!(
                    "  ({:.2} ms CPU/token -> {:.0}/s on 2 idle cores)",
                    c.as_secs_f64() * 1e3,
                    2.0 / c.as_secs_f64()
                ),
                None => String::new(),
            };
            let name = describe(endpoint, load);
            println!("{name:<62} {:>7.0} tokens/s{cpu}", m.per_second);
        }
    });
}
