//! [`LinuxPlatform`]: the `xen-platform` traits over `/dev/xen/{evtchn,gntalloc,gntdev}`.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use xen_platform::{
    Access, Clock, CopyOp, CopyPtr, DomId, Error, EventChannels, GrantCopy, GrantMap, GrantRef,
    GrantShare, GrantStatus, Granted, Instant, Mapping, Op, PAGE_SIZE, PageAlloc, PageMemory, Port,
    ReadOnlyMem, Refused, SharedMem, Timers, Virq, WallTime,
};

use crate::abi::*;
use crate::error::{OpenError, io_error};
use crate::evtchn::{Demux, EvtchnDevice, ioctl as evtchn_ioctl};
use crate::sys::{self, CopyEnd, CopyRequest, MappedRegion};

/// Path of the event-channel device.
pub const EVTCHN_DEVICE: &str = "/dev/xen/evtchn";
/// Path of the grant-mapping device.
pub const GNTDEV_DEVICE: &str = "/dev/xen/gntdev";
/// Path of the grant-allocation device.
pub const GNTALLOC_DEVICE: &str = "/dev/xen/gntalloc";

/// The `xen-platform` traits for a Linux process in a Xen domain (dom0 or a domU with the
/// Xen device drivers), under tokio.
///
/// Owns one open file of each device: ports, grants and mappings made through it belong to
/// this instance (the kernel releases them when the process exits). `Send + Sync`: share it
/// between tasks with an `Arc`.
pub struct LinuxPlatform {
    evtchn: Demux<EvtchnDevice>,
    gntdev: Arc<File>,
    gntalloc: Arc<File>,
}

impl std::fmt::Debug for LinuxPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinuxPlatform")
            .field("gntdev", &self.gntdev)
            .field("gntalloc", &self.gntalloc)
            .finish_non_exhaustive()
    }
}

fn open_device(path: &str, extra_flags: i32) -> Result<File, OpenError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC | extra_flags)
        .open(path)
        .map_err(|e| OpenError::device(path, e))
}

impl LinuxPlatform {
    /// Opens `/dev/xen/evtchn`, `/dev/xen/gntdev` and `/dev/xen/gntalloc` and starts the
    /// event reader task. Must be called inside a tokio runtime with I/O and time enabled.
    ///
    /// Errors: [`OpenError::NotInXenDomain`] when a device is missing (not a Xen domain,
    /// or the module is not loaded), [`OpenError::PermissionDenied`] (not root), and
    /// [`OpenError::NoRuntime`].
    pub fn open() -> Result<LinuxPlatform, OpenError> {
        if let Err(e) = tokio::runtime::Handle::try_current() {
            return Err(OpenError::NoRuntime {
                source: io::Error::other(e),
            });
        }
        let evtchn = open_device(EVTCHN_DEVICE, libc::O_NONBLOCK)?;
        let gntdev = open_device(GNTDEV_DEVICE, 0)?;
        let gntalloc = open_device(GNTALLOC_DEVICE, 0)?;
        let evtchn = Demux::start(evtchn, EvtchnDevice).map_err(|source| OpenError::NoRuntime {
            source: io::Error::other(format!("registering {EVTCHN_DEVICE}: {source}")),
        })?;
        Ok(LinuxPlatform {
            evtchn,
            gntdev: Arc::new(gntdev),
            gntalloc: Arc::new(gntalloc),
        })
    }

    fn bound(&self, port: Port) -> Result<(), Error> {
        if self.evtchn.is_registered(port.0) {
            Ok(())
        } else {
            Err(Error::PortNotBound { port })
        }
    }
}

/// What the kernel does when shared pages go away, for peer-death detection (libxenvchan's
/// `cli_live`/`srv_live` bytes): clear one byte of the pages and/or notify an event channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnmapNotify {
    /// Byte offset (within the pages) to set to zero.
    pub clear_byte: Option<usize>,
    /// A port bound through the same [`LinuxPlatform`] to notify.
    pub event: Option<Port>,
}

impl UnmapNotify {
    fn request(&self, index: u64, pages: usize, op: Op) -> Result<crate::abi::UnmapNotify, Error> {
        let offset = self.clear_byte.unwrap_or(0);
        if offset >= pages * PAGE_SIZE {
            return Err(Error::InvalidArgument { op });
        }
        let mut action = 0;
        if self.clear_byte.is_some() {
            action |= UNMAP_NOTIFY_CLEAR_BYTE;
        }
        if self.event.is_some() {
            action |= UNMAP_NOTIFY_SEND_EVENT;
        }
        Ok(crate::abi::UnmapNotify {
            index: index + offset as u64,
            action,
            event_channel_port: self.event.map_or(0, |p| p.0),
        })
    }
}

// ---- pages -------------------------------------------------------------------------------

/// Zeroed, page-aligned anonymous memory of this process; see [`PageAlloc`].
#[derive(Debug)]
pub struct LinuxPages {
    region: MappedRegion,
    count: usize,
}

impl PageMemory for LinuxPages {
    fn page_count(&self) -> usize {
        self.count
    }

    fn mem(&self) -> SharedMem<'_> {
        self.region.shared().expect("anonymous pages are writable")
    }
}

impl PageAlloc for LinuxPlatform {
    type Pages = LinuxPages;

    fn alloc_pages(&self, count: usize) -> Result<LinuxPages, Error> {
        let len = count
            .checked_mul(PAGE_SIZE)
            .filter(|&l| l > 0)
            .ok_or(Error::InvalidArgument { op: Op::AllocPages })?;
        let region = MappedRegion::anonymous(len).map_err(|e| io_error(Op::AllocPages, &e))?;
        Ok(LinuxPages { region, count })
    }
}

// ---- sharing (gntalloc) ------------------------------------------------------------------

/// Pages allocated and granted by `/dev/xen/gntalloc`; see [`GrantShare`].
#[derive(Debug)]
pub struct LinuxGranted {
    gntalloc: Arc<File>,
    region: Option<MappedRegion>,
    index: u64,
    refs: Vec<GrantRef>,
    domid: DomId,
    access: Access,
}

impl LinuxGranted {
    /// Asks the kernel to clear a byte and/or notify a port when these pages are freed:
    /// when they are dropped or revoked, or when this process dies. libxenvchan's server
    /// sets it on `srv_live` so that the client learns of its death.
    pub fn set_unmap_notify(&self, notify: UnmapNotify) -> Result<(), Error> {
        let mut arg = notify.request(self.index, self.refs.len(), Op::Grant)?;
        sys::ioctl_fixed(
            self.gntalloc.as_fd(),
            IOCTL_GNTALLOC_SET_UNMAP_NOTIFY,
            &mut arg,
        )
        .map(drop)
        .map_err(|e| io_error(Op::Grant, &e))
    }

    fn region(&self) -> &MappedRegion {
        self.region.as_ref().expect("mapped until dropped")
    }

    /// Unmaps and frees the grant references. The kernel ends the peer's access; a page the
    /// peer still maps is kept (not reused) until it unmaps it.
    fn release(&mut self) -> io::Result<()> {
        let Some(region) = self.region.take() else {
            return Ok(());
        };
        let unmapped = region.unmap();
        let mut arg = GntallocDeallocGref {
            index: self.index,
            count: self.refs.len() as u32,
            pad: 0,
        };
        let freed = sys::ioctl_fixed(self.gntalloc.as_fd(), IOCTL_GNTALLOC_DEALLOC_GREF, &mut arg);
        unmapped.and(freed.map(drop))
    }
}

impl PageMemory for LinuxGranted {
    fn page_count(&self) -> usize {
        self.refs.len()
    }

    fn mem(&self) -> SharedMem<'_> {
        self.region()
            .shared()
            .expect("gntalloc pages are mapped writable")
    }
}

impl Granted for LinuxGranted {
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

impl Drop for LinuxGranted {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

impl GrantShare for LinuxPlatform {
    type Granted = LinuxGranted;

    /// gntalloc cannot grant existing memory: it allocates new pages and grants them in one
    /// step. So this allocates gntalloc pages, copies `pages` into them and frees `pages`.
    /// Use [`share_pages`](GrantShare::share_pages), which does no copy, where possible.
    fn grant(
        &self,
        pages: LinuxPages,
        domid: DomId,
        access: Access,
    ) -> Result<LinuxGranted, Refused<LinuxPages>> {
        let granted = match self.share_pages(pages.count, domid, access) {
            Ok(g) => g,
            Err(error) => {
                return Err(Refused {
                    value: pages,
                    error,
                });
            }
        };
        let (src, dst) = (pages.mem(), granted.mem());
        copy_mem(&src, &dst);
        Ok(granted)
    }

    fn share_pages(
        &self,
        count: usize,
        domid: DomId,
        access: Access,
    ) -> Result<LinuxGranted, Error> {
        let len = count
            .checked_mul(PAGE_SIZE)
            .filter(|&l| l > 0 && count <= u32::MAX as usize)
            .ok_or(Error::InvalidArgument { op: Op::Grant })?;
        let flags = match access {
            Access::ReadWrite => GNTALLOC_FLAG_WRITABLE,
            Access::ReadOnly => 0,
        };
        let (index, refs) = sys::gntalloc_alloc_gref(self.gntalloc.as_fd(), domid.0, flags, count)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ESRCH) => Error::NoSuchDomain { domid },
                _ => io_error(Op::Grant, &e),
            })?;
        let mut granted = LinuxGranted {
            gntalloc: self.gntalloc.clone(),
            region: None,
            index,
            refs: refs.into_iter().map(GrantRef).collect(),
            domid,
            access,
        };
        // Our own mapping is always writable: the access restricts the peer only.
        match MappedRegion::device(self.gntalloc.as_fd(), len, index, true) {
            Ok(region) => {
                granted.region = Some(region);
                Ok(granted)
            }
            Err(e) => {
                // Free the references (nothing is mapped, so `release` would skip it).
                let mut arg = GntallocDeallocGref {
                    index,
                    count: count as u32,
                    pad: 0,
                };
                let _ =
                    sys::ioctl_fixed(self.gntalloc.as_fd(), IOCTL_GNTALLOC_DEALLOC_GREF, &mut arg);
                Err(io_error(Op::Grant, &e))
            }
        }
    }

    /// Ends the peer's access and returns the pages' contents in fresh [`LinuxPages`].
    ///
    /// gntalloc does not tell whether the peer still has a page mapped, so this never
    /// refuses with [`Error::GrantBusy`]: the kernel ends access lazily and keeps a page the
    /// peer still maps out of reuse until the peer unmaps it. Memory safety holds; what a
    /// peer writes after the copy is lost.
    fn revoke(&self, mut granted: LinuxGranted) -> Result<LinuxPages, Refused<LinuxGranted>> {
        let pages = match self.alloc_pages(granted.refs.len()) {
            Ok(p) => p,
            Err(error) => {
                return Err(Refused {
                    value: granted,
                    error,
                });
            }
        };
        copy_mem(&granted.mem(), &pages.mem());
        // The copy is taken; an error unmapping/freeing leaves nothing to hand back.
        let _ = granted.release();
        Ok(pages)
    }
}

fn copy_mem(src: &SharedMem<'_>, dst: &SharedMem<'_>) {
    let mut buf = [0u8; 4096];
    let len = src.len().min(dst.len());
    let mut off = 0;
    while off < len {
        let n = buf.len().min(len - off);
        // In bounds: off + n <= len <= both lengths.
        let _ = src.read(off, &mut buf[..n]);
        let _ = dst.write(off, &buf[..n]);
        off += n;
    }
}

// ---- mapping (gntdev) --------------------------------------------------------------------

/// Pages of another domain mapped through `/dev/xen/gntdev`; unmapped on drop.
#[derive(Debug)]
pub struct LinuxMapping {
    gntdev: Arc<File>,
    region: Option<MappedRegion>,
    index: u64,
    count: usize,
    access: Access,
}

impl LinuxMapping {
    /// Asks the kernel to clear a byte of the mapped pages and/or notify a port when this
    /// mapping goes away (unmap, drop, or this process dying). libxenvchan's client sets it
    /// on `cli_live`.
    pub fn set_unmap_notify(&self, notify: UnmapNotify) -> Result<(), Error> {
        if notify.clear_byte.is_some() && self.access == Access::ReadOnly {
            // The kernel would write into a page the peer granted read-only.
            return Err(Error::InvalidArgument { op: Op::Map });
        }
        let mut arg = notify.request(self.index, self.count, Op::Map)?;
        sys::ioctl_fixed(self.gntdev.as_fd(), IOCTL_GNTDEV_SET_UNMAP_NOTIFY, &mut arg)
            .map(drop)
            .map_err(|e| io_error(Op::Map, &e))
    }

    fn region(&self) -> &MappedRegion {
        self.region.as_ref().expect("mapped until unmapped")
    }

    fn unmap_all(&mut self) -> Result<(), Error> {
        let Some(region) = self.region.take() else {
            return Ok(());
        };
        // munmap unmaps the grants; the ioctl then frees the file range.
        let unmapped = region.unmap();
        let released = release_gntdev_range(&self.gntdev, self.index, self.count);
        unmapped.and(released).map_err(|e| io_error(Op::Unmap, &e))
    }
}

fn release_gntdev_range(gntdev: &File, index: u64, count: usize) -> io::Result<()> {
    let mut arg = GntdevUnmapGrantRef {
        index,
        count: count as u32,
        pad: 0,
    };
    sys::ioctl_fixed(gntdev.as_fd(), IOCTL_GNTDEV_UNMAP_GRANT_REF, &mut arg).map(drop)
}

impl Mapping for LinuxMapping {
    fn page_count(&self) -> usize {
        self.count
    }

    fn access(&self) -> Access {
        self.access
    }

    fn mem(&self) -> Option<SharedMem<'_>> {
        self.region().shared()
    }

    fn mem_ro(&self) -> ReadOnlyMem<'_> {
        self.region().read_only()
    }
}

impl Drop for LinuxMapping {
    fn drop(&mut self) {
        let _ = self.unmap_all();
    }
}

impl GrantMap for LinuxPlatform {
    type Mapping = LinuxMapping;

    /// Errors: gntdev reports a refused `GNTTABOP_map_grant_ref` (bad domain, bad reference,
    /// writable map of a read-only grant) only as `EINVAL` from `mmap`, so these come back as
    /// [`Error::Xen`] with `EINVAL`, not as [`Error::Grant`] with Xen's status.
    fn map(&self, domid: DomId, refs: &[GrantRef], access: Access) -> Result<LinuxMapping, Error> {
        let len = refs
            .len()
            .checked_mul(PAGE_SIZE)
            .filter(|&l| l > 0 && refs.len() <= u32::MAX as usize)
            .ok_or(Error::InvalidArgument { op: Op::Map })?;
        let list: Vec<GntdevGrantRef> = refs
            .iter()
            .map(|r| GntdevGrantRef {
                domid: domid.0.into(),
                gref: r.0,
            })
            .collect();
        let index = sys::gntdev_map_grant_ref(self.gntdev.as_fd(), &list)
            .map_err(|e| io_error(Op::Map, &e))?;
        let writable = access == Access::ReadWrite;
        match MappedRegion::device(self.gntdev.as_fd(), len, index, writable) {
            Ok(region) => Ok(LinuxMapping {
                gntdev: self.gntdev.clone(),
                region: Some(region),
                index,
                count: refs.len(),
                access,
            }),
            Err(e) => {
                let _ = release_gntdev_range(&self.gntdev, index, refs.len());
                Err(io_error(Op::Map, &e))
            }
        }
    }

    fn unmap(&self, mut mapping: LinuxMapping) -> Result<(), Error> {
        mapping.unmap_all()
    }
}

// ---- grant copy (gntdev) -----------------------------------------------------------------

fn bad_copy() -> Error {
    Error::Grant {
        op: Op::Copy,
        status: GrantStatus::BadCopyArg,
    }
}

/// Checks one side of a copy and turns it into what the ioctl takes.
fn copy_end<'a>(side: &CopyPtr<'a, LinuxPages>, len: u16) -> Result<CopyEnd<'a>, Error> {
    let len = usize::from(len);
    match *side {
        CopyPtr::Local { pages, offset } => {
            let mem = pages.mem();
            let end = offset
                .checked_add(len)
                .ok_or(Error::InvalidArgument { op: Op::Copy })?;
            if end > mem.len() {
                return Err(Error::InvalidArgument { op: Op::Copy });
            }
            if offset % PAGE_SIZE + len > PAGE_SIZE {
                return Err(bad_copy());
            }
            let view = mem
                .sub(offset, len)
                .map_err(|_| Error::InvalidArgument { op: Op::Copy })?;
            Ok(CopyEnd::Local(view))
        }
        CopyPtr::Foreign {
            domid,
            gref,
            offset,
        } => {
            if usize::from(offset) + len > PAGE_SIZE {
                return Err(bad_copy());
            }
            Ok(CopyEnd::Foreign {
                domid: domid.0,
                gref: gref.0,
                offset,
            })
        }
    }
}

impl GrantCopy for LinuxPlatform {
    fn copy(&self, op: &CopyOp<'_, LinuxPages>) -> Result<(), Error> {
        let mut result = [Ok(())];
        self.copy_batch(std::slice::from_ref(op), &mut result)?;
        result[0]
    }

    /// One `IOCTL_GNTDEV_GRANT_COPY` for all valid operations; a copy between two local
    /// sides is done here (the kernel refuses those).
    fn copy_batch(
        &self,
        ops: &[CopyOp<'_, LinuxPages>],
        results: &mut [Result<(), Error>],
    ) -> Result<(), Error> {
        if ops.len() != results.len() {
            return Err(Error::InvalidArgument { op: Op::Copy });
        }
        let mut requests = Vec::new();
        let mut slots = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let ends = copy_end(&op.src, op.len).and_then(|s| Ok((s, copy_end(&op.dst, op.len)?)));
            results[i] = match ends {
                Err(e) => Err(e),
                Ok((CopyEnd::Local(src), CopyEnd::Local(dst))) => {
                    copy_mem(&src, &dst);
                    Ok(())
                }
                Ok((src, dst)) => {
                    requests.push(CopyRequest {
                        src,
                        dst,
                        len: op.len,
                    });
                    slots.push(i);
                    Ok(())
                }
            };
        }
        let mut status = vec![0i16; requests.len()];
        if let Err(e) = sys::gntdev_grant_copy(self.gntdev.as_fd(), &requests, &mut status) {
            let error = io_error(Op::Copy, &e);
            for &i in &slots {
                results[i] = Err(error);
            }
            return Err(error);
        }
        for (&i, &s) in slots.iter().zip(&status) {
            results[i] = match GrantStatus::from_code(s) {
                Ok(()) => Ok(()),
                Err(status) => Err(Error::Grant {
                    op: Op::Copy,
                    status: status.unwrap_or(GrantStatus::GeneralError),
                }),
            };
        }
        Ok(())
    }
}

// ---- event channels ----------------------------------------------------------------------

impl EventChannels for LinuxPlatform {
    fn alloc_unbound(&self, remote: DomId) -> Result<Port, Error> {
        let port = self
            .evtchn
            .bind(|f| evtchn_ioctl::bind_unbound_port(f, remote.0))
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ESRCH) => Error::NoSuchDomain { domid: remote },
                _ => io_error(Op::AllocUnbound, &e),
            })?;
        Ok(Port(port))
    }

    fn bind_interdomain(&self, remote: DomId, remote_port: Port) -> Result<Port, Error> {
        let port = self
            .evtchn
            .bind(|f| evtchn_ioctl::bind_interdomain(f, remote.0, remote_port.0))
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ESRCH) => Error::NoSuchDomain { domid: remote },
                _ => io_error(Op::BindInterdomain, &e),
            })?;
        Ok(Port(port))
    }

    fn bind_virq(&self, virq: Virq) -> Result<Port, Error> {
        if virq.0 >= Virq::COUNT {
            return Err(Error::InvalidArgument { op: Op::BindVirq });
        }
        let port = self
            .evtchn
            .bind(|f| evtchn_ioctl::bind_virq(f, virq.0))
            .map_err(|e| io_error(Op::BindVirq, &e))?;
        Ok(Port(port))
    }

    fn notify(&self, port: Port) -> Result<(), Error> {
        self.bound(port)?;
        evtchn_ioctl::notify(self.evtchn.file(), port.0).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOTCONN) => Error::PortNotBound { port },
            _ => io_error(Op::Notify, &e),
        })
    }

    fn mask(&self, port: Port) -> Result<(), Error> {
        self.evtchn.mask(port)
    }

    fn unmask(&self, port: Port) -> Result<(), Error> {
        self.evtchn.unmask(port)
    }

    fn close(&self, port: Port) -> Result<(), Error> {
        self.bound(port)?;
        let r = evtchn_ioctl::unbind(self.evtchn.file(), port.0);
        // Whatever the kernel said, the port is no longer usable through us.
        self.evtchn.unregister(port.0);
        r.map_err(|e| match e.raw_os_error() {
            Some(libc::ENOTCONN) => Error::PortNotBound { port },
            _ => io_error(Op::Close, &e),
        })
    }

    fn wait(&self, port: Port) -> impl Future<Output = Result<(), Error>> + '_ {
        self.evtchn.wait(port)
    }
}

// ---- time --------------------------------------------------------------------------------

impl Clock for LinuxPlatform {
    /// `CLOCK_MONOTONIC`, the clock tokio's timers run on.
    fn now(&self) -> Instant {
        Instant(sys::monotonic_nanos())
    }

    fn wall_time(&self) -> WallTime {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        WallTime {
            secs: d.as_secs(),
            nanos: d.subsec_nanos(),
        }
    }
}

impl Timers for LinuxPlatform {
    async fn sleep_until(&self, deadline: Instant) {
        // tokio rounds sleeps up to its millisecond tick; the loop makes "never early"
        // independent of that.
        loop {
            let now = self.now();
            if now >= deadline {
                return;
            }
            tokio::time::sleep(deadline - now).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<LinuxPlatform>();
        check::<LinuxGranted>();
        check::<LinuxMapping>();
        check::<LinuxPages>();
    }

    #[test]
    fn unmap_notify_request_checks_the_offset() {
        let n = UnmapNotify {
            clear_byte: Some(4097),
            event: Some(Port(9)),
        };
        let r = n.request(0x10000, 2, Op::Grant).unwrap();
        assert_eq!(r.index, 0x10000 + 4097);
        assert_eq!(r.action, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT);
        assert_eq!(r.event_channel_port, 9);
        let out = UnmapNotify {
            clear_byte: Some(8192),
            event: None,
        };
        assert_eq!(
            out.request(0, 2, Op::Map),
            Err(Error::InvalidArgument { op: Op::Map })
        );
        let event_only = UnmapNotify {
            clear_byte: None,
            event: Some(Port(3)),
        };
        let r = event_only.request(4096, 1, Op::Map).unwrap();
        assert_eq!((r.index, r.action), (4096, UNMAP_NOTIFY_SEND_EVENT));
    }

    #[test]
    fn copy_sides_are_validated_like_xen() {
        let pages = LinuxPages {
            region: MappedRegion::anonymous(2 * PAGE_SIZE).unwrap(),
            count: 2,
        };
        let local = |offset| CopyPtr::Local {
            pages: &pages,
            offset,
        };
        assert!(copy_end(&local(PAGE_SIZE), 4096).is_ok());
        assert_eq!(copy_end(&local(4000), 200).unwrap_err(), bad_copy());
        assert_eq!(
            copy_end(&local(2 * PAGE_SIZE - 10), 11).unwrap_err(),
            Error::InvalidArgument { op: Op::Copy }
        );
        assert_eq!(
            copy_end(&local(usize::MAX), 1).unwrap_err(),
            Error::InvalidArgument { op: Op::Copy }
        );
        let foreign = |offset| CopyPtr::Foreign::<'_, LinuxPages> {
            domid: DomId(1),
            gref: GrantRef(8),
            offset,
        };
        assert!(copy_end(&foreign(96), 4000).is_ok());
        assert_eq!(copy_end(&foreign(4000), 200).unwrap_err(), bad_copy());
    }
}
