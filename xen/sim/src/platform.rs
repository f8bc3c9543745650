//! The platform traits for one simulated domain.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use xen_platform::executor::Reactor;
use xen_platform::{
    Access, Clock, CopyOp, CopyPtr, DomId, Error, EventChannels, GrantCopy, GrantMap, GrantRef,
    GrantShare, GrantStatus, Granted, Instant, Mapping, Op, PAGE_SIZE, PageAlloc, PageMemory, Port,
    ReadOnlyMem, Refused, SharedMem, Timers, Virq, WallTime,
};

use crate::frames::{FrameId, Region};
use crate::host::{Host, PortState};

/// Wall-clock time of the simulated host at virtual time zero (2024-01-01T00:00:00Z).
pub const SIM_EPOCH_SECS: u64 = 1_704_067_200;

/// One simulated domain's view of the host: implements every `xen-platform` trait.
///
/// Cheap to clone; all clones are the same domain. Not `Send`: the sim is single-threaded
/// and deterministic.
#[derive(Clone)]
pub struct SimDomain {
    pub(crate) domid: DomId,
    pub(crate) host: Rc<RefCell<Host>>,
    pub(crate) reactor: Reactor,
}

impl std::fmt::Debug for SimDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDomain")
            .field("domid", &self.domid)
            .finish()
    }
}

impl SimDomain {
    /// This domain's id.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// The reactor of this domain's executor.
    pub fn reactor(&self) -> &Reactor {
        &self.reactor
    }

    /// Whether the domain still exists.
    pub fn is_alive(&self) -> bool {
        self.host.borrow().is_alive(self.domid)
    }

    /// The binding of one of our ports (for tests).
    pub fn port_state(&self, port: Port) -> PortState {
        self.host.borrow().port_state(self.domid, port)
    }

    /// Whether one of our ports has an undelivered event (for tests).
    pub fn is_pending(&self, port: Port) -> bool {
        self.host.borrow().is_pending(self.domid, port)
    }

    /// The state of one of our grant entries: (grantee, access, active mappings), `None` if
    /// the reference is free.
    pub fn grant_entry(&self, gref: GrantRef) -> Option<(DomId, Access, u32)> {
        self.host.borrow().grant_in_use(self.domid, gref)
    }

    /// Free references in our grant table.
    pub fn free_grant_refs(&self) -> usize {
        self.host.borrow().free_grant_count(self.domid)
    }

    /// `GNTTABOP_unmap_grant_ref` on a raw maptrack handle, the way a PV guest can issue it
    /// twice: the second time is `GNTST_bad_handle`. The virtual range of the mapping is made
    /// inaccessible (as on Xen); the [`SimMapping`] stays an inert owner of it.
    ///
    /// # Safety
    ///
    /// No view obtained from the mapping may be used afterwards: it would fault.
    pub unsafe fn unmap_handle(&self, mapping: &SimMapping, handle: u32) -> Result<(), Error> {
        self.host.borrow_mut().unmap(self.domid, handle)?;
        if handle == mapping.handle {
            // SAFETY: our caller guarantees the mapping's views are not used any more.
            unsafe { mapping.region.revoke_access() };
        }
        Ok(())
    }

    /// `DOMID_SELF` means us, as in Xen's event-channel and grant-table hypercalls.
    fn resolve(&self, domid: DomId) -> DomId {
        if domid == DomId::SELF {
            self.domid
        } else {
            domid
        }
    }

    fn host_op<T>(&self, f: impl FnOnce(&mut Host) -> Result<T, Error>) -> Result<T, Error> {
        f(&mut self.host.borrow_mut())
    }
}

/// Pages allocated by a simulated domain.
pub struct SimPages {
    owner: DomId,
    frames: Vec<FrameId>,
    region: Region,
    host: Rc<RefCell<Host>>,
}

impl std::fmt::Debug for SimPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPages")
            .field("owner", &self.owner)
            .field("frames", &self.frames)
            .finish()
    }
}

impl PageMemory for SimPages {
    fn page_count(&self) -> usize {
        self.frames.len()
    }

    fn mem(&self) -> SharedMem<'_> {
        self.region.mem()
    }
}

impl Drop for SimPages {
    fn drop(&mut self) {
        if let Ok(mut h) = self.host.try_borrow_mut() {
            h.release_frames(&self.frames);
        }
    }
}

/// Pages granted to another domain; see [`GrantShare`].
pub struct SimGranted {
    pages: Option<SimPages>,
    refs: Vec<GrantRef>,
    domid: DomId,
    access: Access,
}

impl std::fmt::Debug for SimGranted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimGranted")
            .field("refs", &self.refs)
            .field("to", &self.domid)
            .field("access", &self.access)
            .finish()
    }
}

impl PageMemory for SimGranted {
    fn page_count(&self) -> usize {
        self.refs.len()
    }

    fn mem(&self) -> SharedMem<'_> {
        self.pages.as_ref().expect("present until revoked").mem()
    }
}

impl Granted for SimGranted {
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

impl Drop for SimGranted {
    fn drop(&mut self) {
        if let Some(pages) = &self.pages {
            // Dropped while granted: end access where possible; a page the peer still maps
            // is quarantined by the host (its frame lives on until the last unmap).
            if let Ok(mut h) = pages.host.try_borrow_mut() {
                h.end_access_or_orphan(pages.owner, &self.refs);
            }
        }
    }
}

/// A mapping of pages granted to a simulated domain; unmapped on drop.
pub struct SimMapping {
    owner: DomId,
    handle: u32,
    pages: usize,
    access: Access,
    region: Region,
    host: Rc<RefCell<Host>>,
}

impl std::fmt::Debug for SimMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimMapping")
            .field("handle", &self.handle)
            .field("pages", &self.pages)
            .field("access", &self.access)
            .finish()
    }
}

impl SimMapping {
    /// The maptrack handle (`grant_handle_t`).
    pub fn handle(&self) -> u32 {
        self.handle
    }
}

impl Mapping for SimMapping {
    fn page_count(&self) -> usize {
        self.pages
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

impl Drop for SimMapping {
    fn drop(&mut self) {
        if let Ok(mut h) = self.host.try_borrow_mut() {
            // Already unmapped through `unmap_handle`, or the domain died: nothing to do.
            let _ = h.unmap(self.owner, self.handle);
        }
    }
}

impl PageAlloc for SimDomain {
    type Pages = SimPages;

    fn alloc_pages(&self, count: usize) -> Result<SimPages, Error> {
        let (frames, region) = self.host_op(|h| {
            if !h.is_alive(self.domid) {
                return Err(Error::NoSuchDomain { domid: self.domid });
            }
            h.alloc_frames(count)
        })?;
        Ok(SimPages {
            owner: self.domid,
            frames,
            region,
            host: self.host.clone(),
        })
    }
}

impl GrantShare for SimDomain {
    type Granted = SimGranted;

    fn grant(
        &self,
        pages: SimPages,
        domid: DomId,
        access: Access,
    ) -> Result<SimGranted, Refused<SimPages>> {
        if pages.owner != self.domid {
            return Err(Refused {
                value: pages,
                error: Error::InvalidArgument { op: Op::Grant },
            });
        }
        let refs = self
            .host
            .borrow_mut()
            .grant(self.domid, &pages.frames, domid, access);
        match refs {
            Ok(refs) => Ok(SimGranted {
                pages: Some(pages),
                refs,
                domid,
                access,
            }),
            Err(error) => Err(Refused {
                value: pages,
                error,
            }),
        }
    }

    fn revoke(&self, mut granted: SimGranted) -> Result<SimPages, Refused<SimGranted>> {
        let result = self.host.borrow_mut().end_access(self.domid, &granted.refs);
        match result {
            Ok(()) => Ok(granted.pages.take().expect("present until revoked")),
            Err(error) => Err(Refused {
                value: granted,
                error,
            }),
        }
    }
}

impl GrantMap for SimDomain {
    type Mapping = SimMapping;

    fn map(&self, domid: DomId, refs: &[GrantRef], access: Access) -> Result<SimMapping, Error> {
        let (handle, region) = self
            .host
            .borrow_mut()
            .map(self.domid, domid, refs, access)?;
        Ok(SimMapping {
            owner: self.domid,
            handle,
            pages: refs.len(),
            access,
            region,
            host: self.host.clone(),
        })
    }

    fn unmap(&self, mapping: SimMapping) -> Result<(), Error> {
        let r = self.host.borrow_mut().unmap(mapping.owner, mapping.handle);
        drop(mapping); // its own unmap now finds nothing to do
        r
    }
}

impl GrantCopy for SimDomain {
    fn copy(&self, op: &CopyOp<'_, SimPages>) -> Result<(), Error> {
        let len = op.len as usize;
        let mut h = self.host.borrow_mut();
        if !h.is_alive(self.domid) {
            return Err(Error::NoSuchDomain { domid: self.domid });
        }
        let resolve = |h: &Host, side: &CopyPtr<'_, SimPages>, access: Access| match *side {
            CopyPtr::Local { pages, offset } => {
                if pages.owner != self.domid {
                    return Err(Error::InvalidArgument { op: Op::Copy });
                }
                let page = offset / PAGE_SIZE;
                let within = offset % PAGE_SIZE;
                if page >= pages.frames.len() || within + len > PAGE_SIZE {
                    return Err(Error::Grant {
                        op: Op::Copy,
                        status: GrantStatus::BadCopyArg,
                    });
                }
                Ok((pages.frames[page], within))
            }
            CopyPtr::Foreign {
                domid,
                gref,
                offset,
            } => h.copy_foreign(
                self.domid,
                self.resolve(domid),
                gref,
                offset,
                op.len,
                access,
            ),
        };
        let src = resolve(&h, &op.src, Access::ReadOnly)?;
        let dst = resolve(&h, &op.dst, Access::ReadWrite)?;
        h.copy_frames(src, dst, len)
    }
}

impl EventChannels for SimDomain {
    fn alloc_unbound(&self, remote: DomId) -> Result<Port, Error> {
        self.host_op(|h| h.alloc_unbound(self.domid, self.resolve(remote)))
    }

    fn bind_interdomain(&self, remote: DomId, remote_port: Port) -> Result<Port, Error> {
        self.host_op(|h| h.bind_interdomain(self.domid, self.resolve(remote), remote_port))
    }

    fn bind_virq(&self, virq: Virq) -> Result<Port, Error> {
        self.host_op(|h| h.bind_virq(self.domid, virq))
    }

    fn notify(&self, port: Port) -> Result<(), Error> {
        self.host_op(|h| h.notify(self.domid, port))
    }

    fn mask(&self, port: Port) -> Result<(), Error> {
        self.host_op(|h| h.set_mask(self.domid, port, true))
    }

    fn unmask(&self, port: Port) -> Result<(), Error> {
        self.host_op(|h| h.set_mask(self.domid, port, false))
    }

    fn close(&self, port: Port) -> Result<(), Error> {
        self.host_op(|h| h.close(self.domid, port))?;
        // Wake waiters so they observe the closed port.
        self.reactor.forget_port(port);
        Ok(())
    }

    async fn wait(&self, port: Port) -> Result<(), Error> {
        self.check_bound(port)?;
        self.reactor.wait_port(port).await;
        self.check_bound(port)
    }
}

impl SimDomain {
    fn check_bound(&self, port: Port) -> Result<(), Error> {
        let h = self.host.borrow();
        if !h.is_alive(self.domid) {
            return Err(Error::NoSuchDomain { domid: self.domid });
        }
        match h.port_state(self.domid, port) {
            PortState::Free => Err(Error::PortNotBound { port }),
            _ => Ok(()),
        }
    }
}

impl Clock for SimDomain {
    fn now(&self) -> Instant {
        self.host.borrow().now
    }

    fn wall_time(&self) -> WallTime {
        let ns = self.now().as_nanos();
        WallTime {
            secs: SIM_EPOCH_SECS + ns / 1_000_000_000,
            nanos: (ns % 1_000_000_000) as u32,
        }
    }
}

impl Timers for SimDomain {
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + '_ {
        self.reactor.sleep_until(deadline)
    }
}
