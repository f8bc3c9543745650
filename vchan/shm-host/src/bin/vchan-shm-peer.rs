//! `vchan-shm-peer`: our vchan as a separate process on the shm host, with the same command
//! line as `interop/vchan-peer.c` (the libxenvchan peer), so tests can pair any two.
//!
//! ```text
//! vchan-shm-peer [-s LEFT_MIN,RIGHT_MIN] server|client DOMID PATH MODE [ARGS]
//!   echo                  write back everything read until the peer closes
//!   source BYTES SEED     send a pattern in varied chunks, alternating packets (send/recv)
//!                         and stream writes/reads, verify the echo, close
//!   sink BYTES            read BYTES (any chunking), then write one byte, wait for close
//! ```
//! Environment: `FAKE_XEN_DIR` (the host directory), `FAKE_XEN_DOMID` (our domain id).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use vchan::{ClientConfig, Error, ServerConfig, Vchan, VchanPlatform, VchanStore};
use vchan_shm_host::{FileStore, ShmRuntime};
use xen_platform::DomId;

struct Args {
    sizes: (usize, usize),
    server: bool,
    domid: DomId,
    path: String,
    mode: Vec<String>,
}

fn parse() -> Result<Args, String> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut sizes = (1024, 2048);
    if args.first().map(String::as_str) == Some("-s") {
        let spec = args.get(1).ok_or("-s needs LEFT_MIN,RIGHT_MIN")?;
        let (l, r) = spec.split_once(',').ok_or("-s needs LEFT_MIN,RIGHT_MIN")?;
        sizes = (
            l.parse().map_err(|_| "bad LEFT_MIN")?,
            r.parse().map_err(|_| "bad RIGHT_MIN")?,
        );
        args.drain(..2);
    }
    if args.len() < 4 {
        return Err("usage: vchan-shm-peer [-s L,R] server|client DOMID PATH MODE [ARGS]".into());
    }
    let server = match args[0].as_str() {
        "server" => true,
        "client" => false,
        _ => return Err("role must be server or client".into()),
    };
    Ok(Args {
        sizes,
        server,
        domid: DomId(args[1].parse().map_err(|_| "bad DOMID")?),
        path: args[2].clone(),
        mode: args[3..].to_vec(),
    })
}

async fn echo<P: VchanPlatform, S: VchanStore>(v: &mut Vchan<'_, P, S>) -> Result<String, Error> {
    let total = vchan::exchange::echo(v, &mut vec![0u8; 65536]).await?;
    Ok(format!("echoed {total} bytes"))
}

async fn source<P: VchanPlatform, S: VchanStore>(
    v: &mut Vchan<'_, P, S>,
    bytes: u64,
    seed: u64,
) -> Result<String, Error> {
    vchan::exchange::source_and_verify(v, bytes, seed).await?;
    Ok(format!("sent and verified {bytes} bytes"))
}

async fn sink<P: VchanPlatform, S: VchanStore>(
    v: &mut Vchan<'_, P, S>,
    bytes: u64,
) -> Result<String, Error> {
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    while got < bytes {
        match v.read(&mut buf).await? {
            0 => return Err(Error::Closed),
            n => got += n as u64,
        }
    }
    v.write_all(&[1]).await?;
    let _ = v.read(&mut buf[..1]).await;
    Ok(format!("sank {got} bytes"))
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("vchan-shm-peer: {e}");
            return ExitCode::from(2);
        }
    };
    let dir =
        PathBuf::from(std::env::var("FAKE_XEN_DIR").unwrap_or_else(|_| "/tmp/fake-xen".into()));
    let me = DomId(
        std::env::var("FAKE_XEN_DOMID")
            .ok()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0),
    );
    let mut rt = match ShmRuntime::open(&dir) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vchan-shm-peer: opening {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    let store = match FileStore::open(&dir, me) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vchan-shm-peer: store: {e}");
            return ExitCode::FAILURE;
        }
    };
    let p = rt.platform();
    let result = rt.block_on(async {
        let mut v = if args.server {
            let config = ServerConfig {
                read_min: args.sizes.0,
                write_min: args.sizes.1,
                ..ServerConfig::default()
            };
            Vchan::server_at(&p, &store, me, args.domid, &args.path, config).await?
        } else {
            let config = ClientConfig {
                connect_timeout: Duration::from_secs(10),
                ..ClientConfig::default()
            };
            Vchan::client_at(&p, &store, args.domid, &args.path, config).await?
        };
        let num = |i: usize| -> Result<u64, Error> {
            args.mode
                .get(i)
                .and_then(|s| s.parse().ok())
                .ok_or(Error::InvalidConfig("mode needs numeric arguments"))
        };
        let outcome = match args.mode[0].as_str() {
            "echo" => echo(&mut v).await,
            "source" => source(&mut v, num(1)?, num(2)?).await,
            "sink" => sink(&mut v, num(1)?).await,
            _ => Err(Error::InvalidConfig("mode must be echo, source or sink")),
        };
        let closed = v.close().await;
        let summary = outcome?;
        closed?;
        Ok::<_, Error>(summary)
    });
    match result {
        Ok(Ok(summary)) => {
            println!("vchan-shm-peer: ok {summary}");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("vchan-shm-peer: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("vchan-shm-peer: {e}");
            ExitCode::FAILURE
        }
    }
}
