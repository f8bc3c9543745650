//! `xs`: xenstore-utils work-alike over this crate's client.
//!
//! ```text
//! xs read [-p] KEY...             xenstore-read
//! xs write KEY VALUE...           xenstore-write (values unescaped like xenstore-write)
//! xs ls [-f] [-p] [-r] [PATH]     xenstore-ls (always recursive; -r accepted)
//! xs list [-p] KEY...             xenstore-list
//! xs exists KEY...                xenstore-exists
//! xs rm [-t] KEY...               xenstore-rm
//! xs chmod [-r] [-u] KEY PERM...  xenstore-chmod
//! xs perms KEY...                 print permissions, comma-separated
//! xs watch [-n COUNT] PATH...     xenstore-watch
//! ```
//! Connects to `XENSTORED_PATH` (or `/run/xenstored/socket`), falling back to
//! `/dev/xen/xenbus` like libxenstore's `xs_open`; `-s` insists on the socket.
//! Multi-key read/write/rm/chmod run in one transaction, retried on conflicts.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use xenstore::client::Watch;
use xenstore::transport::{
    TokioTimer, Transport, TransportError, UnixSocketTransport, XenbusDeviceTransport,
    socket_path_from_env,
};
use xenstore::{Access, Client, ClientConfig, Error, Permission};

/// Either Linux transport, chosen at run time.
enum AnyTransport {
    Socket(UnixSocketTransport),
    Device(XenbusDeviceTransport),
}

impl Transport for AnyTransport {
    fn poll_read(
        &mut self,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<Result<usize, TransportError>> {
        match self {
            AnyTransport::Socket(t) => t.poll_read(cx, buf),
            AnyTransport::Device(t) => t.poll_read(cx, buf),
        }
    }
    fn poll_write(
        &mut self,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<Result<usize, TransportError>> {
        match self {
            AnyTransport::Socket(t) => t.poll_write(cx, buf),
            AnyTransport::Device(t) => t.poll_write(cx, buf),
        }
    }
}

/// Inside a transaction body: a conflict or a dead connection propagates (so the
/// transaction is retried or fails), any other error is reported against `key`.
macro_rules! try_key {
    ($e:expr, $key:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) if e == Error::Xenstore(xenstore::ErrorCode::EAGAIN) || e.is_fatal() => {
                return Err(e)
            }
            Err(e) => return Ok(Err(($key.to_string(), e))),
        }
    };
}

type XsClient = Client<AnyTransport, TokioTimer>;

struct Failure(String);

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure(e.to_string())
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("usage: xs <read|write|ls|list|exists|rm|chmod|perms|watch> [options] args...");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("xs: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command, rest)) {
        Ok(code) => code,
        Err(Failure(message)) => {
            eprintln!("xs {command}: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Parsed single-letter flags, each with its value if it takes one.
type Flags<'a> = Vec<(char, Option<&'a str>)>;

/// Splits leading single-letter flags (`-p`, `-fp`, `-n 3`) from the operands.
fn flags<'a>(
    args: &'a [String],
    with_value: &[char],
) -> Result<(Flags<'a>, &'a [String]), Failure> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            return Ok((out, &args[i + 1..]));
        }
        if !a.starts_with('-') || a.len() < 2 {
            break;
        }
        for c in a[1..].chars() {
            if with_value.contains(&c) {
                i += 1;
                let v = args
                    .get(i)
                    .ok_or_else(|| Failure(format!("-{c} needs a value")))?;
                out.push((c, Some(v.as_str())));
            } else {
                out.push((c, None));
            }
        }
        i += 1;
    }
    Ok((out, &args[i..]))
}

fn has(flags: &[(char, Option<&str>)], c: char) -> bool {
    flags.iter().any(|(f, _)| *f == c)
}

async fn connect(socket_only: bool) -> Result<XsClient, Failure> {
    let config = ClientConfig {
        request_timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let path = socket_path_from_env();
    let transport = match UnixSocketTransport::connect(&path).await {
        Ok(t) => AnyTransport::Socket(t),
        Err(e) if socket_only => return Err(Failure(format!("{}: {e}", path.display()))),
        Err(socket_error) => match XenbusDeviceTransport::open_default() {
            Ok(t) => AnyTransport::Device(t),
            Err(e) => {
                return Err(Failure(format!(
                    "cannot connect to {} ({socket_error}) or /dev/xen/xenbus ({e})",
                    path.display()
                )));
            }
        },
    };
    Ok(Client::with_config(transport, TokioTimer, config))
}

async fn run(command: &str, args: &[String]) -> Result<ExitCode, Failure> {
    // Flags each command accepts, as in xenstore-utils (`-s`: socket only, everywhere).
    let allowed: &[char] = match command {
        "read" | "list" => &['p', 's'],
        "ls" => &['f', 'p', 'r', 's'],
        "rm" => &['t', 's'],
        "chmod" => &['r', 'u', 's'],
        "watch" => &['n', 's'],
        "write" | "exists" | "perms" => &['s'],
        other => return Err(Failure(format!("unknown command {other}"))),
    };
    let with_value: &[char] = if command == "watch" { &['n'] } else { &[] };
    let (flags, operands) = flags(args, with_value)?;
    if let Some((bad, _)) = flags.iter().find(|(c, _)| !allowed.contains(c)) {
        return Err(Failure(format!("unknown option -{bad}")));
    }
    let client = connect(has(&flags, 's')).await?;
    let mut out = Vec::new();
    let code = match command {
        "read" => read(&client, &flags, operands, &mut out).await?,
        "write" => write(&client, operands).await?,
        "ls" => {
            let width = if has(&flags, 'f') {
                None
            } else if std::io::stdout().is_terminal() {
                Some(terminal_width().saturating_sub(2).max(20))
            } else {
                Some(80)
            };
            let root = operands.first().map(String::as_str).unwrap_or("/");
            ls(&client, root, 0, width, has(&flags, 'p'), &mut out).await?;
            ExitCode::SUCCESS
        }
        "list" => list(&client, &flags, operands, &mut out).await?,
        "exists" => exists(&client, operands).await?,
        "rm" => rm(&client, has(&flags, 't'), operands).await?,
        "chmod" => chmod(&client, &flags, operands).await?,
        "perms" => {
            for key in operands {
                let perms = client.get_permissions(key).await?;
                writeln!(out, "{}", format_perms(&perms)).ok();
            }
            ExitCode::SUCCESS
        }
        "watch" => {
            let count = flags
                .iter()
                .find(|(c, _)| *c == 'n')
                .and_then(|(_, v)| v.map(|v| v.parse::<u64>()))
                .transpose()
                .map_err(|_| Failure("-n needs a number".into()))?;
            watch(&client, operands, count).await?
        }
        other => return Err(Failure(format!("unknown command {other}"))),
    };
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| Failure(e.to_string()))?;
    Ok(code)
}

/// The terminal's width as xenstore-ls gets it (`TIOCGWINSZ` on stdout), else `COLUMNS`,
/// else 80.
fn terminal_width() -> usize {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which points to a live,
    // properly aligned local; the fd is stdout, and a failure only returns -1.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 {
        return size.ws_col as usize;
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(80)
}

fn require(operands: &[String], what: &str) -> Result<(), Failure> {
    if operands.is_empty() {
        Err(Failure(format!("missing {what}")))
    } else {
        Ok(())
    }
}

async fn read(
    client: &XsClient,
    flags: &[(char, Option<&str>)],
    keys: &[String],
    out: &mut Vec<u8>,
) -> Result<ExitCode, Failure> {
    require(keys, "key")?;
    let prefix = has(flags, 'p');
    if let [key] = keys {
        // One key needs no transaction (as in xenstore-read).
        let result = match client.read(key).await {
            Ok(value) => {
                let mut text = if prefix {
                    format!("{key}: ").into_bytes()
                } else {
                    Vec::new()
                };
                text.extend_from_slice(sanitise(&value).as_bytes());
                text.push(b'\n');
                Ok(Ok(text))
            }
            Err(e) if e.is_fatal() => Err(e),
            Err(e) => Ok(Err((key.clone(), e))),
        };
        return finish(result, out, "couldn't read path");
    }
    let result = client
        .transaction(async |tx| {
            let mut text = Vec::new();
            for key in keys {
                let value = try_key!(tx.read(key).await, key);
                if prefix {
                    text.extend_from_slice(format!("{key}: ").as_bytes());
                }
                text.extend_from_slice(sanitise(&value).as_bytes());
                text.push(b'\n');
            }
            Ok(Ok(text))
        })
        .await;
    finish(result, out, "couldn't read path")
}

/// Unwraps the nested result a transaction body uses to report which key failed.
fn finish(
    result: Result<Result<Vec<u8>, (String, Error)>, Error>,
    out: &mut Vec<u8>,
    what: &str,
) -> Result<ExitCode, Failure> {
    match result {
        Ok(Ok(text)) => {
            out.extend(text);
            Ok(ExitCode::SUCCESS)
        }
        Ok(Err((key, e))) => {
            eprintln!("xs: {what} {key}: {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

async fn write(client: &XsClient, operands: &[String]) -> Result<ExitCode, Failure> {
    if operands.is_empty() || operands.len() % 2 != 0 {
        return Err(Failure("usage: xs write KEY VALUE [KEY VALUE]...".into()));
    }
    if let [key, value] = operands {
        // One pair needs no transaction (as in xenstore-write).
        let result = match client.write(key, unsanitise(value)).await {
            Ok(()) => Ok(Ok(Vec::new())),
            Err(e) if e.is_fatal() => Err(e),
            Err(e) => Ok(Err((key.clone(), e))),
        };
        return finish(result, &mut Vec::new(), "could not write path");
    }
    let result = client
        .transaction(async |tx| {
            for pair in operands.chunks(2) {
                try_key!(tx.write(&pair[0], unsanitise(&pair[1])).await, pair[0]);
            }
            Ok(Ok(Vec::new()))
        })
        .await;
    finish(result, &mut Vec::new(), "could not write path")
}

async fn list(
    client: &XsClient,
    flags: &[(char, Option<&str>)],
    keys: &[String],
    out: &mut Vec<u8>,
) -> Result<ExitCode, Failure> {
    require(keys, "key")?;
    for key in keys {
        match client.directory(key).await {
            Ok(children) => {
                for child in children {
                    if has(flags, 'p') {
                        out.extend_from_slice(format!("{key}/").as_bytes());
                    }
                    out.extend_from_slice(format!("{child}\n").as_bytes());
                }
            }
            Err(e) => {
                eprintln!("xs: could not list path {key}: {e}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn exists(client: &XsClient, keys: &[String]) -> Result<ExitCode, Failure> {
    require(keys, "key")?;
    for key in keys {
        if client.read_optional(key).await?.is_none() {
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn rm(client: &XsClient, tidy: bool, keys: &[String]) -> Result<ExitCode, Failure> {
    require(keys, "key")?;
    let result = client
        .transaction(async |tx| {
            for key in keys {
                try_key!(tx.rm(key).await, key);
                if tidy {
                    // Also remove parents left empty and without a value, up to the root.
                    let mut path = key.as_str();
                    while let Some(slash) = path.rfind('/').filter(|s| *s > 0) {
                        path = &path[..slash];
                        let empty_value =
                            tx.read_optional(path).await?.is_some_and(|v| v.is_empty());
                        if !empty_value || !tx.directory(path).await?.is_empty() {
                            break;
                        }
                        try_key!(tx.rm(path).await, path);
                    }
                }
            }
            Ok(Ok(Vec::new()))
        })
        .await;
    finish(result, &mut Vec::new(), "could not remove path")
}

fn parse_perm(spec: &str) -> Result<Permission, Failure> {
    let bad = || Failure(format!("invalid permission specification: '{spec}'"));
    let access = Access::from_letter(*spec.as_bytes().first().ok_or_else(bad)?).ok_or_else(bad)?;
    let domid = spec[1..].parse().map_err(|_| bad())?;
    Ok(Permission::new(domid, access))
}

async fn chmod(
    client: &XsClient,
    flags: &[(char, Option<&str>)],
    operands: &[String],
) -> Result<ExitCode, Failure> {
    let (key, specs) = operands
        .split_first()
        .ok_or_else(|| Failure("missing key".into()))?;
    if specs.is_empty() {
        return Err(Failure("missing permissions".into()));
    }
    let perms = specs
        .iter()
        .map(|s| parse_perm(s))
        .collect::<Result<Vec<_>, _>>()?;
    let (recurse, upto) = (has(flags, 'r'), has(flags, 'u'));
    let result = client
        .transaction(async |tx| {
            let mut targets = vec![key.clone()];
            if upto {
                let mut p = key.as_str();
                while let Some(slash) = p.rfind('/').filter(|s| *s > 0) {
                    p = &p[..slash];
                    targets.push(p.to_string());
                }
            }
            if recurse {
                let mut stack = vec![key.clone()];
                while let Some(dir) = stack.pop() {
                    for child in try_key!(tx.directory(&dir).await, dir) {
                        let path = join(&dir, &child);
                        targets.push(path.clone());
                        stack.push(path);
                    }
                }
            }
            for t in &targets {
                try_key!(tx.set_permissions(t, &perms).await, t);
            }
            Ok(Ok(Vec::new()))
        })
        .await;
    finish(result, &mut Vec::new(), "error setting permissions on")
}

async fn watch(
    client: &XsClient,
    paths: &[String],
    count: Option<u64>,
) -> Result<ExitCode, Failure> {
    require(paths, "path")?;
    let mut watches: Vec<Watch<AnyTransport>> = Vec::new();
    for p in paths {
        watches.push(client.watch(p).await?);
    }
    let mut remaining = count;
    let stdout = std::io::stdout();
    loop {
        if remaining == Some(0) {
            return Ok(ExitCode::SUCCESS);
        }
        // Wait on all watches at once and print events as they come.
        let event = std::future::poll_fn(|cx| {
            for w in watches.iter_mut() {
                if let std::task::Poll::Ready(r) = w.poll_next(cx) {
                    return std::task::Poll::Ready(r);
                }
            }
            std::task::Poll::Pending
        })
        .await;
        match event {
            Ok(ev) => {
                let mut lock = stdout.lock();
                writeln!(lock, "{}", ev.path)
                    .and_then(|_| lock.flush())
                    .map_err(|e| Failure(e.to_string()))?;
            }
            Err(Error::WatchLagged { dropped }) => eprintln!("xs: {dropped} watch events dropped"),
            Err(e) => return Err(e.into()),
        }
        remaining = remaining.map(|n| n - 1);
    }
}

fn join(parent: &str, child: &str) -> String {
    if parent.ends_with('/') {
        format!("{parent}{child}")
    } else {
        format!("{parent}/{child}")
    }
}

fn format_perms(perms: &[Permission]) -> String {
    perms
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// xenstore-ls's layout: indented names (or full paths with `-f`), `= "value"` truncated
/// to the terminal width with `\...`, and with `-p` a dotted leader and `(perms)`.
fn ls<'a>(
    client: &'a XsClient,
    path: &'a str,
    depth: usize,
    width: Option<usize>,
    show_perms: bool,
    out: &'a mut Vec<u8>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Failure>> + 'a>> {
    Box::pin(async move {
        const TAG_LEN: usize = 8; // ` = "..."`
        let children = client
            .directory(path)
            .await
            .map_err(|e| Failure(format!("xs_directory ({path}): {e}")))?;
        let (max_width, desired_width) = match width {
            Some(w) => (w, 60),
            None => (usize::MAX / 4, 0),
        };
        for child in children {
            let full = join(path, &child);
            let mut line = String::new();
            if width.is_none() {
                line.push_str(&full);
            } else {
                line.push_str(&" ".repeat(depth));
                let room = max_width.saturating_sub(TAG_LEN + depth);
                line.extend(child.chars().take(room));
            }
            let mut linewid = if width.is_none() {
                0
            } else {
                line.chars().count()
            };
            match client.read_optional(&full).await? {
                None => line.push(':'),
                Some(value) => {
                    let shown = sanitise(&value);
                    if max_width < linewid + value.len() + TAG_LEN {
                        let room = max_width.saturating_sub(TAG_LEN + linewid);
                        let cut: String = shown.chars().take(room).collect();
                        line.push_str(&format!(" = \"{cut}\\...\""));
                    } else {
                        let part = format!(" = \"{shown}\"");
                        linewid += part.chars().count();
                        line.push_str(&part);
                        if show_perms {
                            line.push(' ');
                            linewid += 1;
                            while linewid < desired_width.min(max_width) {
                                line.push(if linewid & 1 == 1 { '.' } else { ' ' });
                                linewid += 1;
                            }
                        }
                    }
                }
            }
            if show_perms {
                match client.get_permissions(&full).await {
                    Ok(perms) => line.push_str(&format!("  ({})", format_perms(&perms))),
                    Err(e) => eprintln!("\ncould not access permissions for {child}: {e}"),
                }
            }
            line.push('\n');
            out.extend_from_slice(line.as_bytes());
            ls(client, &full, depth + 1, width, show_perms, out).await?;
        }
        Ok(())
    })
}

/// xenstore-utils' escaping of values for printing.
fn sanitise(value: &[u8]) -> String {
    let mut s = String::with_capacity(value.len());
    for &b in value {
        match b {
            b'\\' => s.push_str("\\\\"),
            b' '..=b'~' => s.push(b as char),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            0..=7 => s.push_str(&format!("\\{b:03o}")),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// xenstore-write's unescaping: `\t \n \r \\`, octal `\NNN`, hex `\xNN`; any other escaped
/// character stands for itself.
fn unsanitise(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        if b != b'\\' || i == bytes.len() {
            out.push(b);
            continue;
        }
        let c = bytes[i];
        i += 1;
        match c {
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'f' => out.push(0x0c),
            b'0'..=b'7' => {
                let mut v = (c - b'0') as u32;
                for _ in 0..2 {
                    match bytes.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + (d - b'0') as u32;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' => {
                let mut v = 0u32;
                let mut digits = 0;
                while digits < 2 {
                    match bytes.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            i += 1;
                            digits += 1;
                        }
                        None => break,
                    }
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_all_bytes() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unsanitise(&sanitise(&all)), all);
        assert_eq!(sanitise(b"a\tb\\c\x01\x7f"), "a\\tb\\\\c\\001\\x7f");
        assert_eq!(unsanitise("\\x41\\101\\0\\7z\\q"), b"AA\0\x07zq");
    }
}
