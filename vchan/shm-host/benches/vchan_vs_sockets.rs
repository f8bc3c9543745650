//! Not a test: vchan between two processes (shm host) against a Unix socketpair and a pipe
//! between two processes, with single-thread memcpy as the limit, in one run. Bulk
//! throughput and 64-byte round-trip latency; prints ratios.
//!
//! `cargo bench -p vchan-shm-host --bench vchan_vs_sockets`
//! (`VCHAN_BENCH_MB=n` changes the bulk volume, default 256).
//!
//! The vchan peer is `vchan-shm-peer` (sink / echo modes); the socket and pipe peers are
//! this binary re-executed with `--child`.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vchan::{ServerConfig, Vchan};
use vchan_shm_host::{FileStore, ShmRuntime, create_host};
use xen_platform::DomId;

const PEER: &str = env!("CARGO_BIN_EXE_vchan-shm-peer");
const CHUNK: usize = 64 * 1024;
const ROUND_TRIPS: usize = 20_000;
const MSG: usize = 64;

fn child_main(args: &[String]) {
    // stdin/stdout are the socket (both) or two pipes.
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    let mut buf = vec![0u8; CHUNK];
    match args[0].as_str() {
        "sink" => {
            let total: u64 = args[1].parse().unwrap();
            let mut got = 0u64;
            while got < total {
                let n = input.read(&mut buf).unwrap();
                assert!(n > 0, "sink: early end of stream");
                got += n as u64;
            }
            output.write_all(&[1]).unwrap();
            output.flush().unwrap();
        }
        "echo" => loop {
            let n = input.read(&mut buf).unwrap();
            if n == 0 {
                return;
            }
            output.write_all(&buf[..n]).unwrap();
            output.flush().unwrap();
        },
        other => panic!("unknown child mode {other}"),
    }
}

fn spawn_self(mode: &[&str], stdin: Stdio, stdout: Stdio) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .arg("--child")
        .args(mode)
        .stdin(stdin)
        .stdout(stdout)
        .spawn()
        .unwrap()
}

struct Figures {
    bulk_gbps: f64,
    rtt_us: f64,
}

fn gbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e9
}

fn bench_stream(
    total: u64,
    mk: impl Fn(&[&str]) -> (Child, Box<dyn Write>, Box<dyn Read>),
) -> Figures {
    let data = vec![0x5au8; CHUNK];
    let (mut child, mut w, mut r) = mk(&["sink", &total.to_string()]);
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let n = CHUNK.min((total - sent) as usize);
        w.write_all(&data[..n]).unwrap();
        sent += n as u64;
    }
    w.flush().unwrap();
    let mut ack = [0u8; 1];
    r.read_exact(&mut ack).unwrap();
    let bulk = start.elapsed();
    drop((w, r));
    child.wait().unwrap();

    let (mut child, mut w, mut r) = mk(&["echo"]);
    let msg = [7u8; MSG];
    let mut back = [0u8; MSG];
    let start = Instant::now();
    for _ in 0..ROUND_TRIPS {
        w.write_all(&msg).unwrap();
        w.flush().unwrap();
        r.read_exact(&mut back).unwrap();
    }
    let rtt = start.elapsed();
    drop((w, r));
    child.wait().unwrap();
    Figures {
        bulk_gbps: gbps(total, bulk),
        rtt_us: rtt.as_secs_f64() * 1e6 / ROUND_TRIPS as f64,
    }
}

fn socketpair(mode: &[&str]) -> (Child, Box<dyn Write>, Box<dyn Read>) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let theirs_out = theirs.try_clone().unwrap();
    let child = spawn_self(
        mode,
        Stdio::from(OwnedFd::from(theirs)),
        Stdio::from(OwnedFd::from(theirs_out)),
    );
    let r = ours.try_clone().unwrap();
    (child, Box::new(ours), Box::new(r))
}

fn pipes(mode: &[&str]) -> (Child, Box<dyn Write>, Box<dyn Read>) {
    let mut child = spawn_self(mode, Stdio::piped(), Stdio::piped());
    let w = child.stdin.take().unwrap();
    let r = child.stdout.take().unwrap();
    (child, Box::new(w), Box::new(r))
}

fn host_dir() -> PathBuf {
    let dir = PathBuf::from(format!("/tmp/vbench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    create_host(&dir, 4096).unwrap();
    dir
}

/// Our side is the server (writing the right ring of `ring` bytes); the client process is
/// `vchan-shm-peer` in sink or echo mode.
fn bench_vchan(total: u64, ring: usize) -> Figures {
    let dir = host_dir();
    let path = "/local/domain/1/data/vchan/2/bench";
    let spawn_peer = |mode: &[&str]| {
        Command::new(PEER)
            .args(["client", "1", path])
            .args(mode)
            .env("FAKE_XEN_DIR", &dir)
            .env("FAKE_XEN_DOMID", "2")
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut rt = ShmRuntime::open(&dir).unwrap();
    let p = rt.platform();
    let store = FileStore::open(&dir, DomId(1)).unwrap();
    let config = ServerConfig {
        read_min: ring,
        write_min: ring,
        ..ServerConfig::default()
    };
    let data = vec![0x5au8; CHUNK];
    let figures = rt
        .block_on(async {
            let mut v = Vchan::server_at(&p, &store, DomId(1), DomId(2), path, config.clone())
                .await
                .unwrap();
            let mut child = spawn_peer(&["sink", &total.to_string()]);
            v.wait_connected().await.unwrap();
            let start = Instant::now();
            let mut sent = 0u64;
            while sent < total {
                let n = CHUNK.min((total - sent) as usize);
                v.write_all(&data[..n]).await.unwrap();
                sent += n as u64;
            }
            let mut ack = [0u8; 1];
            v.read_exact(&mut ack).await.unwrap();
            let bulk = start.elapsed();
            v.close().await.unwrap();
            child.wait().unwrap();

            let mut v = Vchan::server_at(&p, &store, DomId(1), DomId(2), path, config)
                .await
                .unwrap();
            let mut child = spawn_peer(&["echo"]);
            v.wait_connected().await.unwrap();
            let msg = [7u8; MSG];
            let mut back = [0u8; MSG];
            let start = Instant::now();
            for _ in 0..ROUND_TRIPS {
                v.write_all(&msg).await.unwrap();
                v.read_exact(&mut back).await.unwrap();
            }
            let rtt = start.elapsed();
            v.close().await.unwrap();
            child.wait().unwrap();
            Figures {
                bulk_gbps: gbps(total, bulk),
                rtt_us: rtt.as_secs_f64() * 1e6 / ROUND_TRIPS as f64,
            }
        })
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    figures
}

fn bench_memcpy(total: u64) -> f64 {
    let src = vec![0x5au8; 32 << 20];
    let mut dst = vec![0u8; 32 << 20];
    let start = Instant::now();
    let mut done = 0u64;
    let mut off = 0;
    while done < total {
        if off + CHUNK > src.len() {
            off = 0;
        }
        dst[off..off + CHUNK].copy_from_slice(&src[off..off + CHUNK]);
        std::hint::black_box(&mut dst);
        off += CHUNK;
        done += CHUNK as u64;
    }
    gbps(total, start.elapsed())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child_main(&args[i + 1..]);
        return;
    }
    let mb: u64 = std::env::var("VCHAN_BENCH_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let total = mb << 20;
    println!(
        "bulk: {mb} MiB in {CHUNK}-byte writes; latency: {ROUND_TRIPS} round trips of {MSG} bytes; two processes each"
    );
    let memcpy = bench_memcpy(total);
    let sock = bench_stream(total, socketpair);
    let pipe = bench_stream(total, pipes);
    let v64k = bench_vchan(total, 64 * 1024);
    let v1m = bench_vchan(total, 1 << 20);
    println!("{:<28} {:>10} {:>12}", "path", "bulk GB/s", "64B RTT us");
    println!("{:<28} {:>10.2} {:>12}", "memcpy (1 thread)", memcpy, "-");
    for (name, f) in [
        ("unix socketpair", &sock),
        ("pipe", &pipe),
        ("vchan, 64 KiB rings", &v64k),
        ("vchan, 1 MiB rings", &v1m),
    ] {
        println!("{name:<28} {:>10.2} {:>12.1}", f.bulk_gbps, f.rtt_us);
    }
    for (name, f) in [("64 KiB", &v64k), ("1 MiB", &v1m)] {
        println!(
            "ratios vchan {name}: bulk {:.2}x socketpair, {:.2}x pipe, {:.2} of memcpy; RTT {:.2}x socketpair's",
            f.bulk_gbps / sock.bulk_gbps,
            f.bulk_gbps / pipe.bulk_gbps,
            f.bulk_gbps / memcpy,
            f.rtt_us / sock.rtt_us
        );
    }
}
