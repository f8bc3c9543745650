//! `vchan-echo`: a libxenvchan-compatible echo service as a unikernel, and the client side
//! of the same exchange, so both roles can be checked against a dom0 peer built on Xen's
//! libxenvchan (`vchan/interop/vchan-peer.c`) or on our Linux stack.
//!
//! Command line (`extra=` in xl-configs/vchan-echo.cfg):
//!
//! * `peer=<domid>` the other end (default 0, dom0)
//! * `role=server|client|both` (default `both`: serve, then act as client)
//! * `port=<name>` the server's channel (default `echo`): the guest serves
//!   `/local/domain/<guest>/data/vchan/<peer>/<port>`
//! * `back=<name>` the channel the guest connects to as a client (default `echo-back`):
//!   `/local/domain/<peer>/data/vchan/<guest>/<back>`, where the peer echoes
//! * `sessions=<n>` echo sessions to serve before moving on (default 1); session `k > 1`
//!   serves port `<port><k>` (e.g. `echo2`), so a peer never finds a stale advertisement
//! * `bytes=<n>`, `seed=<n>` what the client sends and verifies (default 1000000, 1)
//! * `ring=<left>,<right>` minimum ring sizes the server asks for (default 1024,2048)
//!
//! Prints `vchan-echo: ok <what>` per completed part and `vchan-echo: FAIL <why>`
//! otherwise; crashes the domain if anything failed.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::time::Duration;

use vchan::{ClientConfig, Error, ServerConfig, Vchan, vchan_path};
use xen_platform::{Clock, DomId};
use xen_pv::{Env, PvPlatform, Runtime, println};
use xenstore::transport::{RingClient, ring_client};

xen_pv::entry!(main);

type Xs<'a> = RingClient<'a, PvPlatform>;

struct Options {
    peer: DomId,
    serve: bool,
    connect: bool,
    port: String,
    back: String,
    sessions: u32,
    bytes: u64,
    seed: u64,
    ring: (usize, usize),
}

fn options(env: &Env) -> Result<Options, String> {
    let c = env.cmdline();
    let num = |key: &str, default: u64| -> Result<u64, String> {
        c.get(key).map_or(Ok(default), |v| {
            v.parse().map_err(|_| format!("{key}={v} is not a number"))
        })
    };
    let role = c.get("role").unwrap_or("both");
    let ring = match c.get("ring") {
        None => (1024, 2048),
        Some(spec) => {
            let (l, r) = spec.split_once(',').ok_or("ring=<left>,<right>")?;
            (
                l.parse().map_err(|_| "bad ring size")?,
                r.parse().map_err(|_| "bad ring size")?,
            )
        }
    };
    Ok(Options {
        peer: DomId(u16::try_from(num("peer", 0)?).map_err(|_| "peer out of range")?),
        serve: matches!(role, "server" | "both"),
        connect: matches!(role, "client" | "both"),
        port: c.get("port").unwrap_or("echo").into(),
        back: c.get("back").unwrap_or("echo-back").into(),
        sessions: num("sessions", 1)? as u32,
        bytes: num("bytes", 1_000_000)?,
        seed: num("seed", 1)?,
        ring,
    })
}

fn main(env: &Env) -> Result<(), String> {
    let o = options(env)?;
    let mut rt = Runtime::new().map_err(|e| format!("runtime: {e}"))?;
    let p = rt.platform();
    let (page, port) = rt
        .xenstore_ring()
        .map_err(|e| format!("xenstore ring: {e}"))?;
    let me = p.own_domid().map_err(|e| format!("own domid: {e}"))?;
    let mut failed = 0;
    rt.block_on(async {
        let xs: Xs<'_> = match ring_client(page, &p, port) {
            Ok(xs) => xs,
            Err(e) => {
                println!("vchan-echo: FAIL xenstore ring: {e:?}");
                failed += 1;
                return;
            }
        };
        if o.serve {
            for session in 1..=o.sessions {
                let port = if session == 1 {
                    o.port.clone()
                } else {
                    format!("{}{session}", o.port)
                };
                match serve(&p, &xs, me, &o, &port).await {
                    Ok(summary) => println!("vchan-echo: ok server session {session}: {summary}"),
                    Err(e) => {
                        println!("vchan-echo: FAIL server session {session}: {e}");
                        failed += 1;
                    }
                }
            }
        }
        if o.connect {
            match client(&p, &xs, me, &o).await {
                Ok(summary) => println!("vchan-echo: ok client: {summary}"),
                Err(e) => {
                    println!("vchan-echo: FAIL client: {e}");
                    failed += 1;
                }
            }
        }
    })
    .map_err(|e| format!("executor: {e}"))?;
    if failed > 0 {
        Err(format!("{failed} parts failed"))
    } else {
        println!("vchan-echo: done");
        Ok(())
    }
}

/// One echo session: advertise, wait for the client, echo until it closes.
async fn serve(
    p: &PvPlatform,
    xs: &Xs<'_>,
    me: DomId,
    o: &Options,
    port: &str,
) -> Result<String, Error> {
    let dir = vchan_path(me, o.peer, port);
    let config = ServerConfig {
        read_min: o.ring.0,
        write_min: o.ring.1,
        ..ServerConfig::default()
    };
    let mut v = Vchan::server_at(p, xs, me, o.peer, &dir, config).await?;
    println!(
        "vchan-echo: serving {} at {dir} (orders {}/{})",
        o.peer,
        v.geometry().left_order,
        v.geometry().right_order
    );
    v.wait_connected().await?;
    let start = p.now();
    let total = vchan::exchange::echo(&mut v, &mut alloc::vec![0u8; 65536]).await?;
    let elapsed = p.now() - start;
    v.close().await?;
    Ok(format!(
        "echoed {total} bytes in {} ms",
        elapsed.as_millis()
    ))
}

/// Connects to the peer's echo service, sends a pattern in varied chunks (alternating
/// packets and stream writes, like vchan-peer.c), verifies the echo, closes.
async fn client(p: &PvPlatform, xs: &Xs<'_>, me: DomId, o: &Options) -> Result<String, Error> {
    let dir = vchan_path(o.peer, me, &o.back);
    let config = ClientConfig {
        connect_timeout: Duration::from_secs(60),
        ..ClientConfig::default()
    };
    let mut v = Vchan::client_at(p, xs, o.peer, &dir, config).await?;
    let start = p.now();
    vchan::exchange::source_and_verify(&mut v, o.bytes, o.seed).await?;
    let elapsed = p.now() - start;
    v.close().await?;
    Ok(format!(
        "sent and verified {} bytes via {dir} in {} ms",
        o.bytes,
        elapsed.as_millis()
    ))
}
