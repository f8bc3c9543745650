//! The `xen-platform` traits on a PV guest, and the guest's async [`Runtime`].
//!
//! Pages come from the frame allocator (identity-mapped), grants from the v1 grant table,
//! mappings of other domains' grants go to the map area, event channels are hypercalls,
//! and waiting goes through the executor's reactor: the executor's idle step blocks in
//! `SCHEDOP_poll` on every port a task waits for, with the next timer deadline as timeout.
//! No upcalls, so nothing here runs in interrupt context.

use alloc::collections::BTreeSet;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::Future;
use core::ptr::NonNull;

use xen_abi::PAGE_SIZE;
use xen_platform::executor::{Executor, Idle, Reactor, Spawner, Stalled};
use xen_platform::{
    Access, Clock, CopyOp, CopyPtr, DomId, Error, EventChannels, GrantCopy, GrantMap, GrantRef,
    GrantShare, Granted, Instant, Mapping, Op, PageAlloc, PageMemory, Port, Refused, Timers, Virq,
    WallTime,
};
use xen_ring::{ReadOnlyMem, SharedMem};

use super::{evtchn, gnttab, mm, sched, shared_info, time};

fn xen(op: Op, e: xen_abi::errno::Errno) -> Error {
    Error::Xen { op, errno: e }
}

/// Zeroed pages of our own RAM, freed on drop.
#[derive(Debug)]
pub struct PvPages {
    pfn: u64,
    count: usize,
}

impl PvPages {
    fn addr(&self) -> *mut u8 {
        mm::pfn_to_virt(self.pfn)
    }

    /// Machine frame of page `i`.
    pub fn mfn(&self, i: usize) -> Option<u64> {
        (i < self.count)
            .then(|| mm::pfn_to_mfn(self.pfn + i as u64))
            .flatten()
    }
}

impl PageMemory for PvPages {
    fn page_count(&self) -> usize {
        self.count
    }

    fn mem(&self) -> SharedMem<'_> {
        // SAFETY: the frames are ours, mapped writable in the identity map, and live as
        // long as `self`; SharedMem only does volatile/atomic accesses.
        unsafe {
            SharedMem::from_raw_parts(
                NonNull::new(self.addr()).expect("pfn 0 is the kernel"),
                self.count * PAGE_SIZE,
            )
        }
    }
}

impl Drop for PvPages {
    fn drop(&mut self) {
        if let Err(e) = mm::free_frames(self.pfn, self.count as u64) {
            log::error!("freeing shared pages at pfn {:#x}: {e:?}", self.pfn);
        }
    }
}

/// Pages granted to another domain.
#[derive(Debug)]
pub struct PvGranted {
    pages: Option<PvPages>,
    refs: Vec<GrantRef>,
    domid: DomId,
    access: Access,
}

impl PageMemory for PvGranted {
    fn page_count(&self) -> usize {
        self.refs.len()
    }

    fn mem(&self) -> SharedMem<'_> {
        self.pages
            .as_ref()
            .expect("granted pages present until revoked")
            .mem()
    }
}

impl Granted for PvGranted {
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

/// Grants whose pages a peer still had mapped when their owner dropped them: retried on
/// every later grant, never freed while mapped.
static QUARANTINE: spin::Mutex<Vec<(GrantRef, u64)>> = spin::Mutex::new(Vec::new());

fn retry_quarantine() {
    let mut q = QUARANTINE.lock();
    q.retain(|&(r, pfn)| match gnttab::end_access(r.0) {
        Ok(()) => {
            let _ = mm::free_frames(pfn, 1);
            false
        }
        Err(_) => true,
    });
}

impl Drop for PvGranted {
    fn drop(&mut self) {
        let Some(pages) = self.pages.take() else {
            return;
        };
        let base = pages.pfn;
        // Each page is freed individually once its grant ends; forget the run.
        core::mem::forget(pages);
        for (i, r) in self.refs.iter().enumerate() {
            let pfn = base + i as u64;
            match gnttab::end_access(r.0) {
                Ok(()) => {
                    let _ = mm::free_frames(pfn, 1);
                }
                Err(_) => QUARANTINE.lock().push((*r, pfn)),
            }
        }
    }
}

/// Pages another domain granted to us, mapped contiguously in the map area.
#[derive(Debug)]
pub struct PvMapping {
    range: Option<mm::VirtRange>,
    handles: Vec<u32>,
    access: Access,
}

impl PvMapping {
    fn unmap_all(&mut self) -> Result<(), Error> {
        let Some(range) = self.range.take() else {
            return Ok(());
        };
        let mut first_error = None;
        for (i, &h) in self.handles.iter().enumerate() {
            if let Err(e) = gnttab::unmap_at(range.page(i as u64), h) {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            // The VA range stays reserved if Xen kept a mapping in it.
            Some(e) => Err(e),
            None => {
                mm::release_virt(range);
                Ok(())
            }
        }
    }

    fn shared(&self) -> SharedMem<'_> {
        let range = self.range.as_ref().expect("mapped until dropped");
        // SAFETY: Xen mapped every page of the range for us; it stays mapped until
        // unmap_all, which needs `&mut self`, so not while this borrow lives.
        unsafe {
            SharedMem::from_raw_parts(
                NonNull::new(range.addr() as *mut u8).expect("map area is not at 0"),
                self.handles.len() * PAGE_SIZE,
            )
        }
    }
}

impl Mapping for PvMapping {
    fn page_count(&self) -> usize {
        self.handles.len()
    }

    fn access(&self) -> Access {
        self.access
    }

    fn mem(&self) -> Option<SharedMem<'_>> {
        (self.access == Access::ReadWrite).then(|| self.shared())
    }

    fn mem_ro(&self) -> ReadOnlyMem<'_> {
        ReadOnlyMem::new(self.shared())
    }
}

impl Drop for PvMapping {
    fn drop(&mut self) {
        if let Err(e) = self.unmap_all() {
            log::error!("unmapping a grant mapping on drop: {e}");
        }
    }
}

/// The PV platform: cheap to clone, one per guest, bound to the runtime's reactor.
#[derive(Clone)]
pub struct PvPlatform {
    reactor: Reactor,
    bound: Rc<RefCell<BTreeSet<u32>>>,
}

impl PvPlatform {
    /// `port`, if this platform bound it and has not closed it.
    fn bound_port(&self, port: Port) -> Result<u32, Error> {
        if self.bound.borrow().contains(&port.0) {
            Ok(port.0)
        } else {
            Err(Error::PortNotBound { port })
        }
    }

    fn track(&self, port: u32) -> Port {
        self.bound.borrow_mut().insert(port);
        Port(port)
    }

    /// Our own domain id, learnt from Xen (the remote end Xen records for an unbound port
    /// allocated for DOMID_SELF).
    pub fn own_domid(&self) -> Result<DomId, Error> {
        let port =
            evtchn::alloc_unbound(xen_abi::DOMID_SELF).map_err(|e| xen(Op::AllocUnbound, e))?;
        let status = evtchn::status(port);
        let _ = evtchn::close(port);
        match status.map_err(|e| xen(Op::AllocUnbound, e))? {
            evtchn::PortStatus::Unbound { remote } => Ok(DomId(remote)),
            _ => Err(Error::InvalidArgument {
                op: Op::AllocUnbound,
            }),
        }
    }
}

impl PageAlloc for PvPlatform {
    type Pages = PvPages;

    fn alloc_pages(&self, count: usize) -> Result<PvPages, Error> {
        if count == 0 {
            return Err(Error::InvalidArgument { op: Op::AllocPages });
        }
        let pfn = mm::alloc_frames(count as u64).ok_or(Error::OutOfMemory)?;
        Ok(PvPages { pfn, count })
    }
}

impl GrantShare for PvPlatform {
    type Granted = PvGranted;

    fn grant(
        &self,
        pages: PvPages,
        domid: DomId,
        access: Access,
    ) -> Result<PvGranted, Refused<PvPages>> {
        retry_quarantine();
        let mut refs = Vec::with_capacity(pages.count);
        for i in 0..pages.count {
            let Some(mfn) = pages.mfn(i) else {
                return Err(undo_grants(
                    refs,
                    pages,
                    Error::InvalidArgument { op: Op::Grant },
                ));
            };
            match gnttab::grant_access(domid.0, mfn, access == Access::ReadOnly) {
                Ok(r) => refs.push(GrantRef(r)),
                Err(error) => return Err(undo_grants(refs, pages, error)),
            }
        }
        Ok(PvGranted {
            pages: Some(pages),
            refs,
            domid,
            access,
        })
    }

    fn revoke(&self, mut granted: PvGranted) -> Result<PvPages, Refused<PvGranted>> {
        // All or nothing: refuse, changing nothing, if any page is mapped now.
        let busy = granted
            .refs
            .iter()
            .find_map(|r| match gnttab::is_mapped(r.0) {
                Ok(false) => None,
                Ok(true) => Some(Error::GrantBusy { gref: *r }),
                Err(error) => Some(error),
            });
        if let Some(error) = busy {
            return Err(Refused {
                value: granted,
                error,
            });
        }
        for (i, r) in granted.refs.iter().enumerate() {
            if let Err(error) = gnttab::end_access(r.0) {
                // The peer mapped a page between the check and here. Re-publish the pages
                // already ended so the grant stays whole; their references may change.
                let pages = granted.pages.as_ref().expect("present");
                for (j, earlier) in granted.refs[..i].iter_mut().enumerate() {
                    if let Some(mfn) = pages.mfn(j)
                        && let Ok(again) = gnttab::grant_access(
                            granted.domid.0,
                            mfn,
                            granted.access == Access::ReadOnly,
                        )
                    {
                        *earlier = GrantRef(again);
                    }
                }
                return Err(Refused {
                    value: granted,
                    error,
                });
            }
        }
        granted.refs.clear();
        Ok(granted.pages.take().expect("present"))
    }
}

fn undo_grants(refs: Vec<GrantRef>, pages: PvPages, error: Error) -> Refused<PvPages> {
    for r in refs {
        // Just granted, never advertised: nobody can have mapped them.
        let _ = gnttab::end_access(r.0);
    }
    Refused {
        value: pages,
        error,
    }
}

impl GrantMap for PvPlatform {
    type Mapping = PvMapping;

    fn map(&self, domid: DomId, refs: &[GrantRef], access: Access) -> Result<PvMapping, Error> {
        if refs.is_empty() {
            return Err(Error::InvalidArgument { op: Op::Map });
        }
        let range = mm::reserve_virt(refs.len() as u64).map_err(|_| Error::OutOfMemory)?;
        let mut mapping = PvMapping {
            range: Some(range),
            handles: Vec::with_capacity(refs.len()),
            access,
        };
        for (i, r) in refs.iter().enumerate() {
            let va = mapping.range.as_ref().expect("set").page(i as u64);
            // On error, dropping `mapping` unmaps the pages mapped so far.
            let handle = gnttab::map_at(va, domid.0, r.0, access == Access::ReadOnly)?;
            mapping.handles.push(handle);
        }
        Ok(mapping)
    }

    fn unmap(&self, mut mapping: PvMapping) -> Result<(), Error> {
        mapping.unmap_all()
    }
}

fn copy_end(ptr: &CopyPtr<'_, PvPages>, len: u16) -> Result<gnttab::CopyEnd, Error> {
    match *ptr {
        CopyPtr::Local { pages, offset } => {
            let page = offset / PAGE_SIZE;
            let in_page = offset % PAGE_SIZE;
            if in_page + len as usize > PAGE_SIZE {
                return Err(Error::InvalidArgument { op: Op::Copy });
            }
            let mfn = pages
                .mfn(page)
                .ok_or(Error::InvalidArgument { op: Op::Copy })?;
            Ok(gnttab::CopyEnd::Local {
                mfn,
                offset: in_page as u16,
            })
        }
        CopyPtr::Foreign {
            domid,
            gref,
            offset,
        } => Ok(gnttab::CopyEnd::Grant {
            dom: domid.0,
            r: gref.0,
            offset,
        }),
    }
}

impl GrantCopy for PvPlatform {
    fn copy(&self, op: &CopyOp<'_, PvPages>) -> Result<(), Error> {
        let src = copy_end(&op.src, op.len)?;
        let dst = copy_end(&op.dst, op.len)?;
        gnttab::copy(src, dst, op.len)
    }
}

impl EventChannels for PvPlatform {
    fn alloc_unbound(&self, remote: DomId) -> Result<Port, Error> {
        evtchn::alloc_unbound(remote.0)
            .map(|p| self.track(p))
            .map_err(|e| xen(Op::AllocUnbound, e))
    }

    fn bind_interdomain(&self, remote: DomId, remote_port: Port) -> Result<Port, Error> {
        evtchn::bind_interdomain(remote.0, remote_port.0)
            .map(|p| self.track(p))
            .map_err(|e| xen(Op::BindInterdomain, e))
    }

    fn bind_virq(&self, virq: Virq) -> Result<Port, Error> {
        evtchn::bind_virq(virq.0)
            .map(|p| self.track(p))
            .map_err(|e| xen(Op::BindVirq, e))
    }

    fn notify(&self, port: Port) -> Result<(), Error> {
        evtchn::send(port.0).map_err(|e| xen(Op::Notify, e))
    }

    fn mask(&self, port: Port) -> Result<(), Error> {
        evtchn::mask(self.bound_port(port)?);
        Ok(())
    }

    fn unmask(&self, port: Port) -> Result<(), Error> {
        evtchn::unmask(self.bound_port(port)?).map_err(|e| xen(Op::Unmask, e))
    }

    fn close(&self, port: Port) -> Result<(), Error> {
        evtchn::close(port.0).map_err(|e| xen(Op::Close, e))?;
        self.bound.borrow_mut().remove(&port.0);
        self.reactor.forget_port(port);
        Ok(())
    }

    fn wait(&self, port: Port) -> impl Future<Output = Result<(), Error>> + '_ {
        let bound = self.bound_port(port);
        let wait = self.reactor.wait_port(port);
        async move {
            bound?;
            wait.await;
            Ok(())
        }
    }
}

impl Clock for PvPlatform {
    fn now(&self) -> Instant {
        Instant(time::now_ns())
    }

    fn wall_time(&self) -> WallTime {
        let d = time::wall_clock();
        WallTime {
            secs: d.as_secs(),
            nanos: d.subsec_nanos(),
        }
    }
}

impl Timers for PvPlatform {
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + '_ {
        self.reactor.sleep_until(deadline)
    }
}

/// The executor's idle step on PV: `SCHEDOP_poll` on the waited ports until the next
/// deadline, then test-and-clear their pending bits.
struct PvIdle {
    ports: Vec<u32>,
}

impl PvIdle {
    fn collect(&self, fired: &mut dyn FnMut(Port)) {
        for &p in &self.ports {
            if shared_info::evtchn_test_and_clear_pending(p) {
                fired(Port(p));
            }
        }
    }
}

/// How long one poll may block when more ports are waited on than one `SCHEDOP_poll`
/// takes: the remainder is then polled round-robin.
const OVERFLOW_SLICE_NS: u64 = 1_000_000;

impl Idle for PvIdle {
    fn now(&mut self) -> Instant {
        Instant(time::now_ns())
    }

    fn block(&mut self, ports: &[Port], deadline: Option<Instant>, fired: &mut dyn FnMut(Port)) {
        self.ports.clear();
        self.ports.extend(ports.iter().map(|p| p.0));
        // SCHEDOP_poll treats a timeout of 0 as "none"; a deadline at 0 is in the past.
        let mut timeout = deadline.map_or(0, |d| d.0.max(1));
        let max = xen_abi::sched::SCHED_POLL_MAX_PORTS;
        if self.ports.len() > max {
            timeout = match timeout {
                0 => time::now_ns() + OVERFLOW_SLICE_NS,
                t => t.min(time::now_ns() + OVERFLOW_SLICE_NS),
            };
            // Rotate so every port gets its turn in the polled window.
            let shift = (time::now_ns() / OVERFLOW_SLICE_NS) as usize % self.ports.len();
            self.ports.rotate_left(shift);
        }
        let window = self.ports.len().min(max);
        log::trace!("idle: poll {:?} until {timeout}", &self.ports[..window]);
        let pending_now = self
            .ports
            .iter()
            .any(|&p| shared_info::evtchn_is_pending(p));
        if !pending_now && let Err(e) = sched::poll(&self.ports[..window], timeout) {
            log::error!("SCHEDOP_poll failed: {e}");
        }
        self.collect(fired);
    }

    fn poll(&mut self, ports: &[Port], fired: &mut dyn FnMut(Port)) {
        self.ports.clear();
        self.ports.extend(ports.iter().map(|p| p.0));
        self.collect(fired);
    }
}

static GRANT_TABLE_READY: spin::Once<Result<u32, Error>> = spin::Once::new();

/// A guest's async runtime: executor, PV platform, and the `SCHEDOP_poll` idle step.
pub struct Runtime {
    executor: Executor,
    platform: PvPlatform,
    idle: PvIdle,
}

impl Runtime {
    /// Set up the runtime (and, the first time, the grant table).
    pub fn new() -> Result<Runtime, Error> {
        (*GRANT_TABLE_READY.call_once(gnttab::init))?;
        let executor = Executor::new();
        let platform = PvPlatform {
            reactor: executor.reactor().clone(),
            bound: Rc::default(),
        };
        Ok(Runtime {
            executor,
            platform,
            idle: PvIdle { ports: Vec::new() },
        })
    }

    /// The platform, for drivers and protocol code.
    pub fn platform(&self) -> PvPlatform {
        self.platform.clone()
    }

    /// The xenstore ring page and its (already bound) event channel, from start_info, for
    /// `xenstore::transport::RingTransport`. The port is adopted by the platform.
    pub fn xenstore_ring(&self) -> Result<(SharedMem<'static>, Port), Error> {
        let si = super::runtime::start_info();
        let pfn = mm::mfn_to_pfn(si.store_mfn).ok_or(Error::InvalidArgument { op: Op::Map })?;
        let page =
            NonNull::new(mm::pfn_to_virt(pfn)).ok_or(Error::InvalidArgument { op: Op::Map })?;
        // SAFETY: the xenstore page is one of our frames (checked above), mapped in the
        // identity map for the guest's lifetime and never handed to the frame allocator
        // (it lies in the bootstrap region).
        let mem = unsafe { SharedMem::from_raw_parts(page, PAGE_SIZE) };
        Ok((mem, self.platform.track(si.store_evtchn)))
    }

    /// Spawns tasks from anywhere in the guest.
    pub fn spawner(&self) -> Spawner {
        self.executor.spawner()
    }

    /// Run `future` (and spawned tasks) to completion, blocking in Xen while idle.
    /// [`Stalled`] if it can never complete (no ready task, port or timer left).
    pub fn block_on<F: Future>(&mut self, future: F) -> Result<F::Output, Stalled> {
        self.executor.block_on(future, &mut self.idle)
    }
}
