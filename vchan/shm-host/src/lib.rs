//! A multi-process stand-in for Xen's grant and event-channel devices on a plain Linux host.
//!
//! Several processes, each acting as one "domain", share a directory (`FAKE_XEN_DIR`):
//!
//! | file | role |
//! |---|---|
//! | `arena` | sparse file of 4 KiB pages; page 0 is a header (`u32` next free page, `u32` next channel pair). A grant reference is a page index; mapping it is an `mmap` of that page. |
//! | `ev-P-s`, `ev-P-c` | Unix datagram sockets of the two ends of event channel pair `P` (the allocating and the binding end); a notification is one datagram. |
//! | `xs/` | xenstore: one file per node (`/` written as `#`), permissions in `<node>.perms` as `n1 r2` |
//! | `alive-D` | pid of the process acting as domain `D`; a dead pid is a dead domain |
//!
//! [`ShmPlatform`] implements the `xen-platform` traits over it and [`FileStore`] implements
//! [`vchan::VchanStore`]; `interop/fake_xen.c` implements the same conventions under Xen's
//! C libraries (libxengnttab, libxenevtchn, libxenstore calls), so that Debian's real
//! `libxenvchan.a` talks to our Rust vchan across processes without Xen.
//!
//! Not a simulation of Xen's access rules: any process may map any page of the arena
//! (read-only mappings are enforced by the MMU), grants are never revoked or reused, and
//! unmap notifications are not implemented. `xen-sim` checks those rules in one process;
//! this crate is about real concurrency, real processes and the real C library.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};

use xen_platform::executor::{Executor, Idle, Reactor, Stalled};
use xen_platform::{
    Access, Clock, DomId, Errno, Error, EventChannels, GrantMap, GrantRef, GrantShare, GrantStatus,
    Granted, Instant, Mapping, Op, PageAlloc, PageMemory, Port, ReadOnlyMem, Refused, SharedMem,
    Timers, WallTime,
};

const PAGE: usize = 4096;
/// Local port numbers of binding ends are the pair number plus this (as in fake_xen.c).
pub const BINDER_PORT_BASE: u32 = 0x10000;

/// Creates a fresh host directory with an arena of `pages` pages.
pub fn create_host(dir: &Path, pages: u32) -> io::Result<()> {
    std::fs::create_dir_all(dir.join("xs"))?;
    let f = std::fs::File::create(dir.join("arena"))?;
    f.set_len(pages as u64 * PAGE as u64)?;
    Ok(())
}

/// An mmap'd range; unmapped on drop.
struct Region {
    base: NonNull<u8>,
    len: usize,
}

impl Region {
    fn mem(&self) -> SharedMem<'_> {
        // SAFETY: the range stays mapped while `self` lives; it is page-aligned and only
        // accessed through SharedMem (atomic/volatile), here and in the peer process.
        unsafe { SharedMem::from_raw_parts(self.base, self.len) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: our own mapping; no view outlives `self` (SharedMem borrows it).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

fn map_err(e: io::Error, op: Op) -> Error {
    let _ = e;
    Error::Xen {
        op,
        errno: Errno::ENOMEM,
    }
}

struct PortSock {
    fd: OwnedFd,
    pair: u32,
    side: char,
    path: PathBuf,
    masked: bool,
}

struct Inner {
    dir: PathBuf,
    arena: OwnedFd,
    arena_pages: u32,
    header: Region,
    reactor: Reactor,
    ports: RefCell<BTreeMap<u32, PortSock>>,
    start: std::time::Instant,
}

/// One process's ("domain's") view of the shared host; implements the platform traits.
#[derive(Clone)]
pub struct ShmPlatform {
    inner: Rc<Inner>,
}

impl std::fmt::Debug for ShmPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmPlatform")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl ShmPlatform {
    /// Opens the host at `dir`, waking tasks through `reactor` (an executor's).
    pub fn open(dir: &Path, reactor: Reactor) -> io::Result<ShmPlatform> {
        let path = CString::new(dir.join("arena").into_os_string().into_encoded_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: valid NUL-terminated path; plain flags.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just opened and is owned by nobody else.
        let arena = unsafe { OwnedFd::from_raw_fd(fd) };
        let len = std::fs::metadata(dir.join("arena"))?.len();
        let header = map_file(&arena, 0, 1, true)?;
        Ok(ShmPlatform {
            inner: Rc::new(Inner {
                dir: dir.to_path_buf(),
                arena,
                arena_pages: u32::try_from(len / PAGE as u64).unwrap_or(u32::MAX),
                header,
                reactor,
                ports: RefCell::new(BTreeMap::new()),
                start: std::time::Instant::now(),
            }),
        })
    }

    fn counter(&self, index: usize) -> &AtomicU32 {
        let ptr = self.inner.header.base.as_ptr().cast::<u32>();
        // SAFETY: the header page is mapped for the life of `inner`, 4-aligned, and every
        // process accesses these two words only atomically.
        unsafe { AtomicU32::from_ptr(ptr.add(index)) }
    }

    fn sock_path(&self, pair: u32, side: char) -> PathBuf {
        self.inner.dir.join(format!("ev-{pair}-{side}"))
    }

    fn bind_port(&self, pair: u32, side: char, op: Op) -> Result<Port, Error> {
        let path = self.sock_path(pair, side);
        let _ = std::fs::remove_file(&path);
        let sock = std::os::unix::net::UnixDatagram::bind(&path).map_err(|e| map_err(e, op))?;
        sock.set_nonblocking(true).map_err(|e| map_err(e, op))?;
        let local = if side == 's' {
            pair
        } else {
            pair + BINDER_PORT_BASE
        };
        self.inner.ports.borrow_mut().insert(
            local,
            PortSock {
                fd: OwnedFd::from(sock),
                pair,
                side,
                path,
                masked: false,
            },
        );
        Ok(Port(local))
    }

    /// Drains `port`'s socket; true if a notification was there.
    fn drain(&self, port: Port) -> bool {
        let ports = self.inner.ports.borrow();
        let Some(p) = ports.get(&port.0) else {
            return false;
        };
        let mut got = false;
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: our socket; buf is our own buffer of buf.len() bytes.
            let n = unsafe {
                libc::recv(
                    p.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                return got;
            }
            got = true;
        }
    }

    fn poll_ports(
        &self,
        ports: &[Port],
        timeout: Option<std::time::Duration>,
        fired: &mut dyn FnMut(Port),
    ) {
        let mut fds = Vec::with_capacity(ports.len());
        let mut which = Vec::with_capacity(ports.len());
        {
            let table = self.inner.ports.borrow();
            for &port in ports {
                if let Some(p) = table.get(&port.0).filter(|p| !p.masked) {
                    fds.push(libc::pollfd {
                        fd: p.fd.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    });
                    which.push(port);
                }
            }
        }
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: fds is a valid array of fds.len() pollfds; ts_ptr is null or points to a
        // live timespec; no signal mask change.
        let n = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                ts_ptr,
                std::ptr::null(),
            )
        };
        if n <= 0 {
            return;
        }
        for (fd, port) in fds.iter().zip(which) {
            if fd.revents & libc::POLLIN != 0 && self.drain(port) {
                fired(port);
            }
        }
    }
}

fn map_file(arena: &OwnedFd, first_page: u32, count: usize, writable: bool) -> io::Result<Region> {
    let len = count * PAGE;
    let prot = if writable {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_READ
    };
    // SAFETY: a fresh shared mapping of our own fd at a kernel-chosen address.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            arena.as_raw_fd(),
            first_page as libc::off_t * PAGE as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(Region {
        base: NonNull::new(p.cast()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?,
        len,
    })
}

/// Pages allocated from the arena (never reused: the arena only grows).
pub struct ShmPages {
    first: u32,
    count: usize,
    region: Region,
}

impl PageMemory for ShmPages {
    fn page_count(&self) -> usize {
        self.count
    }
    fn mem(&self) -> SharedMem<'_> {
        self.region.mem()
    }
}

/// Granted pages: the references are the page indices.
pub struct ShmGranted {
    pages: ShmPages,
    refs: Vec<GrantRef>,
    domid: DomId,
    access: Access,
}

impl PageMemory for ShmGranted {
    fn page_count(&self) -> usize {
        self.pages.count
    }
    fn mem(&self) -> SharedMem<'_> {
        self.pages.mem()
    }
}

impl Granted for ShmGranted {
    fn refs(&self) -> &[GrantRef] {
        &self.refs
    }
    fn domid(&self) -> DomId {
        self.domid
    }
    fn access(&self) -> Access {
        self.access
    }
}

/// A mapping of arena pages.
pub struct ShmMapping {
    region: Region,
    count: usize,
    access: Access,
}

impl Mapping for ShmMapping {
    fn page_count(&self) -> usize {
        self.count
    }
    fn access(&self) -> Access {
        self.access
    }
    fn mem(&self) -> Option<SharedMem<'_>> {
        (self.access == Access::ReadWrite).then(|| self.region.mem())
    }
    fn mem_ro(&self) -> ReadOnlyMem<'_> {
        ReadOnlyMem::new(self.region.mem())
    }
}

impl PageAlloc for ShmPlatform {
    type Pages = ShmPages;

    fn alloc_pages(&self, count: usize) -> Result<ShmPages, Error> {
        let n = u32::try_from(count)
            .ok()
            .filter(|&n| n > 0)
            .ok_or(Error::InvalidArgument { op: Op::AllocPages })?;
        let first = self.counter(0).fetch_add(n, Ordering::SeqCst) + 1;
        if first as u64 + n as u64 > self.inner.arena_pages as u64 {
            return Err(Error::OutOfMemory);
        }
        let region = map_file(&self.inner.arena, first, count, true)
            .map_err(|e| map_err(e, Op::AllocPages))?;
        Ok(ShmPages {
            first,
            count,
            region,
        })
    }
}

impl GrantShare for ShmPlatform {
    type Granted = ShmGranted;

    fn grant(
        &self,
        pages: ShmPages,
        domid: DomId,
        access: Access,
    ) -> Result<ShmGranted, Refused<ShmPages>> {
        let refs = (0..pages.count as u32)
            .map(|i| GrantRef(pages.first + i))
            .collect();
        Ok(ShmGranted {
            pages,
            refs,
            domid,
            access,
        })
    }

    fn revoke(&self, granted: ShmGranted) -> Result<ShmPages, Refused<ShmGranted>> {
        Ok(granted.pages)
    }
}

impl GrantMap for ShmPlatform {
    type Mapping = ShmMapping;

    fn map(&self, _domid: DomId, refs: &[GrantRef], access: Access) -> Result<ShmMapping, Error> {
        if refs.is_empty() {
            return Err(Error::InvalidArgument { op: Op::Map });
        }
        let bad = Error::Grant {
            op: Op::Map,
            status: GrantStatus::BadGntref,
        };
        if refs
            .iter()
            .any(|r| r.0 == 0 || r.0 >= self.inner.arena_pages)
        {
            return Err(bad);
        }
        let len = refs.len() * PAGE;
        // SAFETY: an anonymous PROT_NONE reservation at a kernel-chosen address.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Error::OutOfMemory);
        }
        let region = Region {
            base: NonNull::new(base.cast()).ok_or(Error::OutOfMemory)?,
            len,
        };
        let prot = match access {
            Access::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
            Access::ReadOnly => libc::PROT_READ,
        };
        for (i, r) in refs.iter().enumerate() {
            // SAFETY: the target page lies inside our reservation; MAP_FIXED replaces only it.
            let p = unsafe {
                libc::mmap(
                    base.cast::<u8>().add(i * PAGE).cast(),
                    PAGE,
                    prot,
                    libc::MAP_SHARED | libc::MAP_FIXED,
                    self.inner.arena.as_raw_fd(),
                    r.0 as libc::off_t * PAGE as libc::off_t,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(bad); // `region` unmaps the reservation
            }
        }
        Ok(ShmMapping {
            region,
            count: refs.len(),
            access,
        })
    }

    fn unmap(&self, mapping: ShmMapping) -> Result<(), Error> {
        drop(mapping);
        Ok(())
    }
}

impl EventChannels for ShmPlatform {
    fn alloc_unbound(&self, _remote: DomId) -> Result<Port, Error> {
        let pair = self.counter(1).fetch_add(1, Ordering::SeqCst) + 1;
        self.bind_port(pair, 's', Op::AllocUnbound)
    }

    fn bind_interdomain(&self, _remote: DomId, remote_port: Port) -> Result<Port, Error> {
        let allocated = self.counter(1).load(Ordering::SeqCst);
        if remote_port.0 == 0 || remote_port.0 > allocated {
            return Err(Error::Xen {
                op: Op::BindInterdomain,
                errno: Errno::EINVAL,
            });
        }
        self.bind_port(remote_port.0, 'c', Op::BindInterdomain)
    }

    fn bind_virq(&self, _virq: xen_platform::Virq) -> Result<Port, Error> {
        Err(Error::Xen {
            op: Op::BindVirq,
            errno: Errno::ENOSYS,
        })
    }

    fn notify(&self, port: Port) -> Result<(), Error> {
        let ports = self.inner.ports.borrow();
        let p = ports.get(&port.0).ok_or(Error::PortNotBound { port })?;
        let peer = self.sock_path(p.pair, if p.side == 's' { 'c' } else { 's' });
        let Ok(path) = CString::new(peer.into_os_string().into_encoded_bytes()) else {
            return Err(Error::InvalidArgument { op: Op::Notify });
        };
        // SAFETY: sockaddr_un is plain old data; zeroed is a valid value.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = path.as_bytes_with_nul();
        if bytes.len() > addr.sun_path.len() {
            return Err(Error::InvalidArgument { op: Op::Notify });
        }
        for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        let byte = 1u8;
        // SAFETY: our socket, a one-byte buffer, and a valid sockaddr_un of the given size.
        // A peer not bound yet or with a full queue drops it: Xen drops sends on unbound
        // ports and coalesces pending events.
        unsafe {
            libc::sendto(
                p.fd.as_raw_fd(),
                (&byte as *const u8).cast(),
                1,
                libc::MSG_DONTWAIT,
                (&addr as *const libc::sockaddr_un).cast(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        Ok(())
    }

    fn mask(&self, port: Port) -> Result<(), Error> {
        let mut ports = self.inner.ports.borrow_mut();
        ports
            .get_mut(&port.0)
            .ok_or(Error::PortNotBound { port })?
            .masked = true;
        Ok(())
    }

    fn unmask(&self, port: Port) -> Result<(), Error> {
        let mut ports = self.inner.ports.borrow_mut();
        ports
            .get_mut(&port.0)
            .ok_or(Error::PortNotBound { port })?
            .masked = false;
        Ok(())
    }

    fn close(&self, port: Port) -> Result<(), Error> {
        let p = self
            .inner
            .ports
            .borrow_mut()
            .remove(&port.0)
            .ok_or(Error::PortNotBound { port })?;
        let _ = std::fs::remove_file(&p.path);
        self.inner.reactor.forget_port(port);
        Ok(())
    }

    async fn wait(&self, port: Port) -> Result<(), Error> {
        if !self.inner.ports.borrow().contains_key(&port.0) {
            return Err(Error::PortNotBound { port });
        }
        self.inner.reactor.wait_port(port).await;
        if !self.inner.ports.borrow().contains_key(&port.0) {
            return Err(Error::PortNotBound { port });
        }
        Ok(())
    }
}

impl Clock for ShmPlatform {
    fn now(&self) -> Instant {
        Instant(self.inner.start.elapsed().as_nanos() as u64)
    }

    fn wall_time(&self) -> WallTime {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        WallTime {
            secs: d.as_secs(),
            nanos: d.subsec_nanos(),
        }
    }
}

impl Timers for ShmPlatform {
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + '_ {
        self.inner.reactor.sleep_until(deadline)
    }
}

struct ShmIdle(ShmPlatform);

impl Idle for ShmIdle {
    fn now(&mut self) -> Instant {
        Clock::now(&self.0)
    }

    fn block(&mut self, ports: &[Port], deadline: Option<Instant>, fired: &mut dyn FnMut(Port)) {
        let timeout = deadline.map(|d| d - Clock::now(&self.0));
        self.0.poll_ports(ports, timeout, fired);
    }

    fn poll(&mut self, ports: &[Port], fired: &mut dyn FnMut(Port)) {
        self.0
            .poll_ports(ports, Some(std::time::Duration::ZERO), fired);
    }
}

/// An executor plus the platform of one process.
pub struct ShmRuntime {
    exec: Executor,
    platform: ShmPlatform,
}

impl ShmRuntime {
    /// Opens the host at `dir`.
    pub fn open(dir: &Path) -> io::Result<ShmRuntime> {
        let exec = Executor::new();
        let platform = ShmPlatform::open(dir, exec.reactor().clone())?;
        Ok(ShmRuntime { exec, platform })
    }

    /// The platform (cheap to clone).
    pub fn platform(&self) -> ShmPlatform {
        self.platform.clone()
    }

    /// Runs `future` to completion, blocking in `ppoll` on the waited ports' sockets.
    pub fn block_on<F: Future>(&mut self, future: F) -> Result<F::Output, Stalled> {
        let mut idle = ShmIdle(self.platform.clone());
        self.exec.block_on(future, &mut idle)
    }
}

/// Xenstore as files (see the crate docs), for [`vchan::VchanStore`].
#[derive(Clone, Debug)]
pub struct FileStore {
    dir: PathBuf,
    me: DomId,
}

fn node_file(dir: &Path, path: &str, suffix: &str) -> PathBuf {
    dir.join("xs")
        .join(format!("{}{suffix}", path.replace('/', "#")))
}

fn io_error(e: io::Error) -> xenstore::Error {
    xenstore::Error::Transport(xenstore::TransportError::Os(e.raw_os_error().unwrap_or(5)))
}

impl FileStore {
    /// The store of the host at `dir`, for domain `me`; announces `me` as alive.
    pub fn open(dir: &Path, me: DomId) -> io::Result<FileStore> {
        std::fs::write(
            dir.join(format!("alive-{}", me.0)),
            std::process::id().to_string(),
        )?;
        Ok(FileStore {
            dir: dir.to_path_buf(),
            me,
        })
    }

    /// The permissions of a node as written (e.g. `n1 r2`).
    pub fn perms(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(node_file(&self.dir, path, ".perms")).ok()
    }

    fn write_atomic(&self, file: &Path, data: &[u8]) -> io::Result<()> {
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, data)?;
        std::fs::rename(tmp, file)
    }
}

impl vchan::VchanStore for FileStore {
    async fn own_domid(&self) -> Result<DomId, xenstore::Error> {
        Ok(self.me)
    }

    async fn read(&self, path: &str) -> Result<Option<Vec<u8>>, xenstore::Error> {
        match std::fs::read(node_file(&self.dir, path, "")) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(e)),
        }
    }

    async fn publish(
        &self,
        dir: &str,
        entries: &[(&str, String)],
        owner: DomId,
        reader: DomId,
    ) -> Result<(), xenstore::Error> {
        for (key, value) in entries {
            let path = format!("{dir}/{key}");
            self.write_atomic(
                &node_file(&self.dir, &path, ".perms"),
                format!("n{} r{}", owner.0, reader.0).as_bytes(),
            )
            .map_err(io_error)?;
            self.write_atomic(&node_file(&self.dir, &path, ""), value.as_bytes())
                .map_err(io_error)?;
        }
        Ok(())
    }

    async fn remove(&self, path: &str) -> Result<(), xenstore::Error> {
        let name = path.replace('/', "#");
        let entries = std::fs::read_dir(self.dir.join("xs")).map_err(io_error)?;
        for e in entries.flatten() {
            let f = e.file_name();
            let f = f.to_string_lossy();
            if let Some(rest) = f.strip_prefix(&name) {
                if rest.is_empty() || rest.starts_with('#') || rest.starts_with('.') {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }

    async fn domain_exists(&self, domid: DomId) -> Result<bool, xenstore::Error> {
        let Ok(pid) = std::fs::read_to_string(self.dir.join(format!("alive-{}", domid.0))) else {
            return Ok(false);
        };
        let Ok(pid) = pid.trim().parse::<libc::pid_t>() else {
            return Ok(false);
        };
        // A zombie still "exists" for kill(0); look at /proc for the state too.
        // SAFETY: signal 0 only checks for existence.
        let exists = unsafe { libc::kill(pid, 0) } == 0
            || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(false);
        Ok(exists && !zombie)
    }
}

/// The ports currently bound (for leak checks).
pub fn bound_ports(p: &ShmPlatform) -> BTreeSet<u32> {
    p.inner.ports.borrow().keys().copied().collect()
}
