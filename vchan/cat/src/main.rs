//! `vchan-cat`: stdin/stdout over a libxenvchan-compatible channel, for Linux in a Xen
//! domain (like `xencat`, or `nc` for vchan).
//!
//! ```text
//! vchan-cat [OPTIONS] connect <server-domid> <port>   # client of /local/domain/<server>/data/vchan/<us>/<port>
//! vchan-cat [OPTIONS] listen <client-domid> <port>    # server at /local/domain/<us>/data/vchan/<client>/<port>
//!   -t SECS    connect timeout / wait for the client (default 10; 0 = forever for listen)
//!   -w SECS    after stdin ends, exit when the peer has been quiet this long (default 1)
//!   -s L,R     (listen) minimum ring sizes: L client->server, R server->client (default 1024,2048)
//!   -p PATH    explicit xenstore directory instead of the conventional one
//!   --source BYTES SEED   instead of stdin/stdout: send a pattern in varied chunks,
//!              verify the peer's echo (same exchange as interop/vchan-peer.c), print timing
//! ```
//! Xenstore: `$XENSTORED_PATH` or `/run/xenstored/socket` (dom0), else `/dev/xen/xenbus`.
//! Exit status 0 on success (peer closed or stdin done), 1 on any error.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vchan::{
    ClientConfig, Error, PeerState, ServerConfig, Vchan, VchanPlatform, VchanStore, vchan_path,
};
use xen_linux::UnmapNotify;
use xen_platform::DomId;
use xenstore::Client;
use xenstore::transport::{TokioTimer, Transport, UnixSocketTransport, XenbusDeviceTransport};

struct Args {
    listen: bool,
    peer: DomId,
    port: String,
    timeout: Duration,
    linger: Duration,
    sizes: (usize, usize),
    path: Option<String>,
    source: Option<(u64, u64)>,
}

const USAGE: &str = "usage: vchan-cat [-t SECS] [-w SECS] [-s L,R] [-p PATH] [--source BYTES SEED] connect|listen DOMID PORT";

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        listen: false,
        peer: DomId(0),
        port: String::new(),
        timeout: Duration::from_secs(10),
        linger: Duration::from_secs(1),
        sizes: (1024, 2048),
        path: None,
        source: None,
    };
    let mut positional = Vec::new();
    let secs = |v: Option<String>| -> Result<Duration, String> {
        v.and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| USAGE.to_string())
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-t" => a.timeout = secs(it.next())?,
            "-w" => a.linger = secs(it.next())?,
            "-s" => {
                let v = it.next().ok_or(USAGE)?;
                let (l, r) = v.split_once(',').ok_or(USAGE)?;
                a.sizes = (l.parse().map_err(|_| USAGE)?, r.parse().map_err(|_| USAGE)?);
            }
            "-p" => a.path = Some(it.next().ok_or(USAGE)?),
            "--source" => {
                let bytes = it.next().and_then(|s| s.parse().ok()).ok_or(USAGE)?;
                let seed = it.next().and_then(|s| s.parse().ok()).ok_or(USAGE)?;
                a.source = Some((bytes, seed));
            }
            "-h" | "--help" => return Err(USAGE.into()),
            _ => positional.push(arg),
        }
    }
    let [role, domid, port] = <[String; 3]>::try_from(positional).map_err(|_| USAGE)?;
    a.listen = match role.as_str() {
        "listen" => true,
        "connect" => false,
        _ => return Err(USAGE.into()),
    };
    a.peer = DomId(domid.parse().map_err(|_| "DOMID must be a number")?);
    a.port = port;
    Ok(a)
}

/// Copies stdin to the channel and the channel to stdout until the peer closes, or stdin
/// ended and the peer has been quiet for `linger`.
async fn pump<P: VchanPlatform, S: VchanStore>(
    v: &mut Vchan<'_, P, S>,
    linger: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    let mut inbuf = vec![0u8; 65536];
    let mut outbuf = vec![0u8; 65536];
    let (mut start, mut end) = (0usize, 0usize);
    let mut stdin_open = true;
    let mut quiet_since = Instant::now();
    loop {
        let n = v.try_read(&mut outbuf)?;
        if n > 0 {
            stdout.write_all(&outbuf[..n]).await?;
            stdout.flush().await?;
            quiet_since = Instant::now();
            continue;
        }
        if v.peer_state()? == PeerState::Closed {
            // Data written just before the close is visible now.
            let n = v.try_read(&mut outbuf)?;
            if n == 0 {
                return Ok(());
            }
            stdout.write_all(&outbuf[..n]).await?;
            continue;
        }
        if start < end {
            let w = v.try_write(&inbuf[start..end])?;
            start += w;
            if w > 0 {
                continue;
            }
        }
        if !stdin_open && start == end {
            let left = linger.saturating_sub(quiet_since.elapsed());
            if left.is_zero() {
                return Ok(());
            }
            let _ = tokio::time::timeout(left, v.wait()).await;
            continue;
        }
        tokio::select! {
            r = v.wait() => r?,
            r = stdin.read(&mut inbuf), if stdin_open && start == end => {
                let n = r?;
                if n == 0 {
                    stdin_open = false;
                    quiet_since = Instant::now();
                } else {
                    (start, end) = (0, n);
                }
            }
        }
    }
}

/// The exchange of `vchan-peer.c source`: alternating packets and stream writes of 1..=1000
/// bytes, each echo verified.
async fn source<P: VchanPlatform, S: VchanStore>(
    v: &mut Vchan<'_, P, S>,
    bytes: u64,
    seed: u64,
) -> Result<String, Error> {
    let start = Instant::now();
    vchan::exchange::source_and_verify(v, bytes, seed).await?;
    let secs = start.elapsed().as_secs_f64();
    Ok(format!(
        "sent and verified {bytes} bytes in {:.0} ms ({:.1} MB/s echoed)",
        secs * 1e3,
        bytes as f64 / secs.max(1e-9) / 1e6
    ))
}

async fn run<T: Transport>(
    a: Args,
    xs: Client<T, TokioTimer>,
) -> Result<(), Box<dyn std::error::Error>> {
    let xen = xen_linux::LinuxPlatform::open()?;
    let mut v = if a.listen {
        let me = xs.own_domid().await?;
        let dir = a
            .path
            .clone()
            .unwrap_or_else(|| vchan_path(me, a.peer, &a.port));
        let config = ServerConfig {
            read_min: a.sizes.0,
            write_min: a.sizes.1,
            ..ServerConfig::default()
        };
        let mut v = Vchan::server_at(&xen, &xs, me, a.peer, &dir, config).await?;
        eprintln!("vchan-cat: listening at {dir}");
        if a.timeout.is_zero() {
            v.wait_connected().await?;
        } else {
            tokio::time::timeout(a.timeout, v.wait_connected())
                .await
                .map_err(|_| "no client connected in time")??;
        }
        v
    } else {
        let me = xs.own_domid().await?;
        let dir = a
            .path
            .clone()
            .unwrap_or_else(|| vchan_path(a.peer, me, &a.port));
        let config = ClientConfig {
            connect_timeout: a.timeout,
            ..ClientConfig::default()
        };
        Vchan::client_at(&xen, &xs, a.peer, &dir, config).await?
    };
    // As libxenvchan: if this process dies without closing, the kernel clears our live
    // flag and notifies the peer when it tears down the grant or mapping.
    let notify = UnmapNotify {
        clear_byte: Some(v.own_live_offset()),
        event: Some(v.port()),
    };
    if let Some(granted) = v.control_granted() {
        granted.set_unmap_notify(notify)?;
    } else if let Some(mapping) = v.control_mapping() {
        mapping.set_unmap_notify(notify)?;
    }
    let outcome = match a.source {
        Some((bytes, seed)) => source(&mut v, bytes, seed)
            .await
            .map(|s| {
                eprintln!("vchan-cat: ok {s}");
            })
            .map_err(Into::into),
        None => pump(&mut v, a.linger).await,
    };
    let closed = v.close().await;
    outcome?;
    closed?;
    Ok(())
}

async fn main_async(a: Args) -> Result<(), Box<dyn std::error::Error>> {
    match UnixSocketTransport::connect(xenstore::transport::socket_path_from_env()).await {
        Ok(t) => run(a, Client::new(t, TokioTimer)).await,
        Err(_) => {
            let t = XenbusDeviceTransport::open_default().map_err(|e| {
                format!("no xenstore: neither the xenstored socket nor /dev/xen/xenbus ({e})")
            })?;
            run(a, Client::new(t, TokioTimer)).await
        }
    }
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vchan-cat: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(main_async(args));
    // tokio reads stdin on a blocking thread that may sit in read() forever (a terminal, a
    // fifo opened read-write): do not wait for it when shutting down.
    rt.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vchan-cat: {e}");
            ExitCode::FAILURE
        }
    }
}
