//! Fetch, pull and push with Git remotes over the Git protocol (version 0): a local
//! repository through `git upload-pack` / `git receive-pack` over pipes (as `git` does for
//! `file://`), or a `git daemon` over TCP (`git://host:port/path`).
//!
//! Supported: ref advertisement, want/have negotiation (`ofs-delta`, `side-band-64k`),
//! pack reception (OFS/REF deltas, verified and indexed), push with `report-status`
//! (fast-forward check before sending, `--force` to skip it). Not supported: protocol v2,
//! shallow clones, HTTP(S)/SSH transports, thin packs, push certificates.

use std::collections::BTreeSet;
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::string::{String, ToString};
use std::vec::Vec;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::hash::ObjectId;
use crate::merge::{MergeFn, MergeOutcome};
use crate::pack;
use crate::path::{branch_ref, check_ref_name};
use crate::store::{CommitInfo, Repo};

/// Largest pkt-line payload the protocol allows (65520 bytes including the 4-byte header).
const MAX_PKT: usize = 65516;

/// Received packs are held in memory; refuse anything larger than this.
const MAX_PACK: usize = 2 << 30;

/// Where a remote lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteUrl {
    /// A repository on this machine (`file:///path` or a plain path).
    Local(PathBuf),
    /// A `git daemon` (`git://host[:port]/path`).
    Daemon {
        host: String,
        port: u16,
        path: String,
    },
}

impl RemoteUrl {
    pub fn parse(url: &str) -> Result<RemoteUrl> {
        if let Some(rest) = url.strip_prefix("git://") {
            let (hostport, path) = rest
                .split_once('/')
                .ok_or_else(|| Error::Protocol(format!("no path in {url:?}")))?;
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    p.parse()
                        .map_err(|_| Error::Protocol(format!("bad port in {url:?}")))?,
                ),
                None => (hostport.to_string(), 9418),
            };
            if host.is_empty() {
                return Err(Error::Protocol(format!("no host in {url:?}")));
            }
            return Ok(RemoteUrl::Daemon {
                host,
                port,
                path: format!("/{path}"),
            });
        }
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(RemoteUrl::Local(PathBuf::from(path)));
        }
        if url.contains("://") {
            return Err(Error::Protocol(format!("unsupported transport in {url:?}")));
        }
        Ok(RemoteUrl::Local(PathBuf::from(url)))
    }
}

/// A connection to `git-upload-pack` or `git-receive-pack`.
struct Conn {
    reader: BufReader<Box<dyn Read>>,
    writer: BufWriter<Box<dyn Write>>,
    child: Option<Child>,
}

impl Conn {
    fn open(url: &RemoteUrl, service: &str) -> Result<Conn> {
        match url {
            RemoteUrl::Local(path) => {
                let mut child = Command::new("git")
                    .arg(service.trim_start_matches("git-"))
                    .arg(path)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()?;
                let stdin = child
                    .stdin
                    .take()
                    .ok_or_else(|| Error::Protocol("no stdin".into()))?;
                let stdout = child
                    .stdout
                    .take()
                    .ok_or_else(|| Error::Protocol("no stdout".into()))?;
                Ok(Conn {
                    reader: BufReader::new(Box::new(stdout)),
                    writer: BufWriter::new(Box::new(stdin)),
                    child: Some(child),
                })
            }
            RemoteUrl::Daemon { host, port, path } => {
                let stream = TcpStream::connect((host.as_str(), *port))?;
                stream.set_nodelay(true)?;
                let mut conn = Conn {
                    reader: BufReader::new(Box::new(stream.try_clone()?)),
                    writer: BufWriter::new(Box::new(stream)),
                    child: None,
                };
                let req = format!("{service} {path}\0host={host}:{port}\0");
                conn.write_pkt(req.as_bytes())?;
                conn.writer.flush()?;
                Ok(conn)
            }
        }
    }

    fn write_pkt(&mut self, data: &[u8]) -> Result<()> {
        if data.len() > MAX_PKT {
            return Err(Error::Protocol("pkt-line too long".into()));
        }
        write!(self.writer, "{:04x}", data.len() + 4)?;
        self.writer.write_all(data)?;
        Ok(())
    }

    fn flush_pkt(&mut self) -> Result<()> {
        self.writer.write_all(b"0000")?;
        self.writer.flush()?;
        Ok(())
    }

    /// One pkt-line; `None` for a flush packet.
    fn read_pkt(&mut self) -> Result<Option<Vec<u8>>> {
        let mut len = [0u8; 4];
        self.reader.read_exact(&mut len)?;
        let s = std::str::from_utf8(&len).map_err(|_| Error::Protocol("bad pkt-line".into()))?;
        let n = usize::from_str_radix(s, 16)
            .map_err(|_| Error::Protocol(format!("bad pkt-line length {s:?}")))?;
        match n {
            0 => Ok(None),
            1..=3 => Err(Error::Protocol(format!("bad pkt-line length {n}"))),
            _ if n - 4 > MAX_PKT => Err(Error::Protocol("pkt-line too long".into())),
            _ => {
                let mut buf = vec![0u8; n - 4];
                self.reader.read_exact(&mut buf)?;
                if buf.starts_with(b"ERR ") {
                    return Err(Error::Protocol(format!(
                        "remote error: {}",
                        String::from_utf8_lossy(&buf[4..]).trim_end()
                    )));
                }
                Ok(Some(buf))
            }
        }
    }

    /// Read a side-band-64k stream until flush, returning band 1 (the pack).
    fn read_sideband(&mut self, first: Option<Vec<u8>>) -> Result<Vec<u8>> {
        let mut data = Vec::new();
        let mut next = first;
        loop {
            let pkt = match next.take() {
                Some(p) => p,
                None => match self.read_pkt()? {
                    Some(p) => p,
                    None => break,
                },
            };
            match pkt.first() {
                Some(1) => {
                    if data.len() + pkt.len() > MAX_PACK {
                        return Err(Error::Protocol("pack larger than the 2 GiB limit".into()));
                    }
                    data.extend_from_slice(&pkt[1..]);
                }
                Some(2) => log::debug!("remote: {}", String::from_utf8_lossy(&pkt[1..]).trim_end()),
                Some(3) => {
                    return Err(Error::Protocol(format!(
                        "remote error: {}",
                        String::from_utf8_lossy(&pkt[1..]).trim_end()
                    )));
                }
                _ => return Err(Error::Protocol("bad side-band packet".into())),
            }
        }
        Ok(data)
    }

    fn finish(mut self) -> Result<()> {
        drop(self.writer);
        if let Some(mut child) = self.child.take() {
            // Drain whatever is left so the child is not blocked on a full pipe.
            let mut rest = Vec::new();
            let _ = self.reader.read_to_end(&mut rest);
            let status = child.wait()?;
            if !status.success() {
                return Err(Error::Protocol(format!("git exited with {status}")));
            }
        }
        Ok(())
    }
}

/// The refs a remote advertises and what it can do.
#[derive(Clone, Debug, Default)]
pub struct Advertisement {
    pub refs: Vec<(String, ObjectId)>,
    pub capabilities: Vec<String>,
}

impl Advertisement {
    fn has(&self, cap: &str) -> bool {
        self.capabilities.iter().any(|c| c == cap)
    }
}

fn read_advertisement(conn: &mut Conn) -> Result<Advertisement> {
    let mut adv = Advertisement::default();
    let mut first = true;
    while let Some(line) = conn.read_pkt()? {
        let line = line.strip_suffix(b"\n").unwrap_or(&line);
        let (main, caps) = match line.iter().position(|&b| b == 0) {
            Some(nul) => (&line[..nul], Some(&line[nul + 1..])),
            None => (line, None),
        };
        if first {
            if let Some(caps) = caps {
                adv.capabilities = String::from_utf8_lossy(caps)
                    .split(' ')
                    .map(str::to_string)
                    .collect();
            }
            if main.starts_with(b"version ") {
                return Err(Error::Protocol("remote speaks protocol v2 only".into()));
            }
            first = false;
        }
        if main.len() < 42 || main[40] != b' ' {
            return Err(Error::Protocol("bad ref advertisement".into()));
        }
        let id = ObjectId::from_hex_bytes(&main[..40])?;
        let name = String::from_utf8_lossy(&main[41..]).into_owned();
        if name == "capabilities^{}" || name.ends_with("^{}") {
            continue;
        }
        if name != "HEAD" {
            check_ref_name(&name)?;
        }
        adv.refs.push((name, id));
    }
    Ok(adv)
}

/// List a remote's refs.
pub fn ls_remote(url: &str) -> Result<Vec<(String, ObjectId)>> {
    let url = RemoteUrl::parse(url)?;
    let mut conn = Conn::open(&url, "git-upload-pack")?;
    let adv = read_advertisement(&mut conn)?;
    conn.flush_pkt()?;
    conn.finish()?;
    Ok(adv.refs)
}

/// What a fetch brought.
#[derive(Clone, Debug, Default)]
pub struct FetchResult {
    /// Remote branches (`refs/heads/*`) and tags with their ids.
    pub refs: Vec<(String, ObjectId)>,
    /// Objects received.
    pub objects: usize,
}

/// Fetch every branch and tag of `url`; remote branches land in
/// `refs/remotes/<remote_name>/<branch>`, tags in `refs/tags/` (existing tags are kept).
pub fn fetch<B: Backend>(repo: &mut Repo<B>, url: &str, remote_name: &str) -> Result<FetchResult> {
    check_ref_name(&format!("refs/remotes/{remote_name}/x"))?;
    let url = RemoteUrl::parse(url)?;
    let mut conn = Conn::open(&url, "git-upload-pack")?;
    let adv = read_advertisement(&mut conn)?;
    let wanted_refs: Vec<(String, ObjectId)> = adv
        .refs
        .iter()
        .filter(|(n, _)| n.starts_with("refs/heads/") || n.starts_with("refs/tags/"))
        .cloned()
        .collect();
    let mut wants = BTreeSet::new();
    for (_, id) in &wanted_refs {
        if !repo.backend().has_object(id)? {
            wants.insert(*id);
        }
    }
    let mut objects = 0;
    if wants.is_empty() {
        conn.flush_pkt()?;
        conn.finish()?;
    } else {
        let mut caps = vec!["ofs-delta", "agent=irmin-store/0.1"];
        let sideband = adv.has("side-band-64k");
        if sideband {
            caps.insert(0, "side-band-64k");
        }
        for (i, id) in wants.iter().enumerate() {
            let line = if i == 0 {
                format!("want {id} {}\n", caps.join(" "))
            } else {
                format!("want {id}\n")
            };
            conn.write_pkt(line.as_bytes())?;
        }
        conn.flush_pkt()?;
        let mut local_heads: Vec<ObjectId> = repo
            .backend()
            .list_refs("refs/")?
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        local_heads.sort();
        local_heads.dedup();
        let mut haves = Vec::new();
        for h in local_heads {
            if let Ok(log) = repo.log(h, 256) {
                haves.extend(log.into_iter().map(|(id, _)| id));
            }
        }
        for h in haves.iter().take(4096) {
            conn.write_pkt(format!("have {h}\n").as_bytes())?;
        }
        conn.write_pkt(b"done\n")?;
        conn.writer.flush()?;
        // ACK/NAK lines, then the pack (side-band framed, or raw).
        let data = loop {
            if !sideband {
                let mut peek = [0u8; 4];
                conn.reader.read_exact(&mut peek)?;
                if &peek == b"PACK" {
                    let mut rest = Vec::new();
                    (&mut conn.reader)
                        .take(MAX_PACK as u64)
                        .read_to_end(&mut rest)?;
                    let mut d = peek.to_vec();
                    d.extend_from_slice(&rest);
                    break d;
                }
                let s =
                    std::str::from_utf8(&peek).map_err(|_| Error::Protocol("bad reply".into()))?;
                let n = usize::from_str_radix(s, 16)
                    .map_err(|_| Error::Protocol("bad reply".into()))?;
                if !(4..=MAX_PKT + 4).contains(&n) {
                    return Err(Error::Protocol("bad reply".into()));
                }
                let mut buf = vec![0u8; n - 4];
                conn.reader.read_exact(&mut buf)?;
                if !(buf.starts_with(b"ACK") || buf.starts_with(b"NAK")) {
                    return Err(Error::Protocol(format!(
                        "unexpected {:?}",
                        String::from_utf8_lossy(&buf)
                    )));
                }
                continue;
            }
            let pkt = conn
                .read_pkt()?
                .ok_or_else(|| Error::Protocol("no pack sent".into()))?;
            if pkt.starts_with(b"ACK") || pkt.starts_with(b"NAK") {
                continue;
            }
            break conn.read_sideband(Some(pkt))?;
        };
        conn.finish()?;
        let indexed = {
            let backend = repo.backend();
            pack::index_pack(&data, &|id| backend.read_object(id))?
        };
        objects = indexed.objects.len();
        repo.backend_mut().store_pack(&data, &indexed)?;
    }
    // Every wanted object must now be present (the remote could have sent less).
    for (_, id) in &wanted_refs {
        if !repo.backend().has_object(id)? {
            return Err(Error::MissingObject(*id));
        }
    }
    for (name, id) in &wanted_refs {
        let local = if let Some(branch) = name.strip_prefix("refs/heads/") {
            format!("refs/remotes/{remote_name}/{branch}")
        } else {
            name.clone()
        };
        let current = repo.backend().read_ref(&local)?;
        if current == Some(*id) || (name.starts_with("refs/tags/") && current.is_some()) {
            continue;
        }
        repo.update_ref(&local, current, Some(*id))?;
    }
    Ok(FetchResult {
        refs: wanted_refs,
        objects,
    })
}

/// Fetch, then merge the remote's `branch` into the local `branch` (fast-forward, merge
/// commit, or conflicts to resolve).
pub fn pull<B: Backend>(
    repo: &mut Repo<B>,
    url: &str,
    remote_name: &str,
    branch: &str,
    merge: &dyn MergeFn,
    info: &CommitInfo,
) -> Result<MergeOutcome> {
    let fetched = fetch(repo, url, remote_name)?;
    let want = branch_ref(branch)?;
    let Some((_, theirs)) = fetched.refs.iter().find(|(n, _)| *n == want) else {
        return Err(Error::RefNotFound(format!("{remote_name}/{branch}")));
    };
    repo.merge_into(branch, theirs, merge, info)
}

/// Push the local `branch` to the same branch of `url`. Refuses non-fast-forward updates
/// (`Error::RefChanged`) unless `force`.
pub fn push<B: Backend>(repo: &mut Repo<B>, url: &str, branch: &str, force: bool) -> Result<()> {
    let name = branch_ref(branch)?;
    let new = repo
        .backend()
        .read_ref(&name)?
        .ok_or_else(|| Error::RefNotFound(name.clone()))?;
    let url = RemoteUrl::parse(url)?;
    let mut conn = Conn::open(&url, "git-receive-pack")?;
    let adv = read_advertisement(&mut conn)?;
    let old = adv.refs.iter().find(|(n, _)| *n == name).map(|(_, id)| *id);
    if old == Some(new) {
        conn.flush_pkt()?;
        return conn.finish();
    }
    if let Some(old) = old {
        let known = repo.backend().has_object(&old)?;
        if !force && (!known || !repo.is_ancestor(&old, &new)?) {
            conn.flush_pkt()?;
            conn.finish()?;
            return Err(Error::RefChanged {
                name,
                expected: Some(old),
                actual: Some(new),
            });
        }
    }
    // Objects the remote has: everything reachable from its refs that we know.
    let mut exclude = BTreeSet::new();
    for (_, id) in &adv.refs {
        if repo.backend().has_object(id)? {
            exclude.insert(*id);
        }
    }
    let objects = crate::sync::reachable(repo.backend(), &[new], &exclude)?;
    let inputs = objects
        .into_iter()
        .map(|(id, obj, group)| pack::PackInput {
            id,
            kind: obj.kind,
            data: obj.data,
            group,
        })
        .collect();
    let packed = pack::write_pack(inputs, true);
    let mut caps = vec!["report-status", "agent=irmin-store/0.1"];
    let sideband = adv.has("side-band-64k");
    if sideband {
        caps.push("side-band-64k");
    }
    let old_hex = old.unwrap_or(ObjectId::ZERO);
    conn.write_pkt(format!("{old_hex} {new} {name}\0{}\n", caps.join(" ")).as_bytes())?;
    conn.flush_pkt()?;
    conn.writer.write_all(&packed.data)?;
    conn.writer.flush()?;
    // report-status, possibly inside side-band 1.
    let report = if sideband {
        conn.read_sideband(None)?
    } else {
        let mut r = Vec::new();
        while let Some(p) = conn.read_pkt()? {
            r.extend_from_slice(&format!("{:04x}", p.len() + 4).into_bytes());
            r.extend_from_slice(&p);
        }
        r.extend_from_slice(b"0000");
        r
    };
    conn.finish()?;
    let lines = parse_pkt_lines(&report)?;
    let unpack = lines.first().map(String::as_str).unwrap_or("");
    if unpack != "unpack ok" {
        return Err(Error::Protocol(format!("remote: {unpack}")));
    }
    for l in &lines[1..] {
        if let Some(rest) = l.strip_prefix("ng ") {
            return Err(Error::Protocol(format!("remote rejected {rest}")));
        }
    }
    if !lines.iter().any(|l| *l == format!("ok {name}")) {
        return Err(Error::Protocol("remote did not confirm the update".into()));
    }
    Ok(())
}

fn parse_pkt_lines(mut data: &[u8]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    while data.len() >= 4 {
        let s =
            std::str::from_utf8(&data[..4]).map_err(|_| Error::Protocol("bad status".into()))?;
        let n = usize::from_str_radix(s, 16).map_err(|_| Error::Protocol("bad status".into()))?;
        if n == 0 {
            data = &data[4..];
            continue;
        }
        if n < 4 || n > data.len() {
            return Err(Error::Protocol("bad status".into()));
        }
        out.push(String::from_utf8_lossy(&data[4..n]).trim_end().to_string());
        data = &data[n..];
    }
    Ok(out)
}
