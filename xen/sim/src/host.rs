//! The simulated hypervisor state: domains, grant tables, event channels, time, faults.
//! Xen's rules are enforced here, with Xen's error numbers and grant statuses.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use xen_platform::{Access, DomId, Errno, Error, GrantRef, GrantStatus, Instant, Op, Port, Virq};

use crate::frames::{FRAME_SIZE, FrameId, FrameStore, Region};
use crate::rng::SplitMix64;

/// Sizes of the simulated host.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// Grant-table entries per domain (references 0..8 are reserved, as in Linux).
    pub grant_entries: u32,
    /// Event-channel ports per domain (port 0 is never allocated, as in Xen).
    pub max_ports: u32,
    /// Frames of simulated machine memory.
    pub max_frames: u32,
    /// Virtual time one task poll takes.
    pub poll_cost: Duration,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            grant_entries: 512,
            max_ports: 1024,
            max_frames: 1 << 16,
            poll_cost: Duration::from_micros(1),
        }
    }
}

/// The first grant reference handed out (0..8 are reserved for the console and xenstore
/// pages the toolstack grants, as `GNTTAB_NR_RESERVED_ENTRIES` in Linux).
pub const FIRST_FREE_GREF: u32 = 8;

/// Notification faults and hostile peers; see [`crate::Sim::faults`].
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Probability that a notification is lost.
    pub drop_notify: f64,
    /// Probability that a notification is delivered twice (the copy after a random delay).
    pub duplicate_notify: f64,
    /// Probability that a notification is delayed by up to `max_delay`.
    pub delay_notify: f64,
    /// Upper bound of injected delays.
    pub max_delay: Duration,
    /// Pages into which a "hostile peer" writes random 32-bit values at random steps.
    pub hostile: Vec<HostileTarget>,
}

/// A granted page that the fault injector scribbles on, like a malicious or buggy peer.
#[derive(Clone, Debug)]
pub struct HostileTarget {
    /// The granting domain.
    pub granter: DomId,
    /// Its grant reference.
    pub gref: GrantRef,
    /// 4-aligned byte offsets to overwrite (e.g. the peer's ring indices).
    pub offsets: Vec<usize>,
    /// Probability per scheduler step of one write.
    pub per_step: f64,
}

/// What the fault injector did (for tests to assert that faults really happened).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Notifications sent on interdomain channels.
    pub notifications: u64,
    /// Dropped.
    pub dropped: u64,
    /// Duplicated.
    pub duplicated: u64,
    /// Delayed.
    pub delayed: u64,
    /// Hostile writes done.
    pub hostile_writes: u64,
}

/// An event-channel port's binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortState {
    /// Not allocated (or closed).
    Free,
    /// Allocated for `remote` to bind to.
    Unbound {
        /// Who may bind.
        remote: DomId,
    },
    /// Connected.
    Interdomain {
        /// The peer domain.
        remote: DomId,
        /// The peer's port.
        remote_port: Port,
    },
    /// Bound to a virtual IRQ.
    Virq(Virq),
}

#[derive(Clone, Copy, Debug)]
struct PortEntry {
    state: PortState,
    pending: bool,
    masked: bool,
}

#[derive(Debug)]
struct GrantEntry {
    grantee: DomId,
    frame: FrameId,
    access: Access,
    /// Active mappings by the grantee.
    maps: u32,
    /// The granter gave up the page while it was mapped; freed at the last unmap.
    orphaned: bool,
}

#[derive(Debug)]
struct MapEntry {
    granter: DomId,
    grefs: Vec<GrantRef>,
    frames: Vec<FrameId>,
}

struct DomainState {
    alive: bool,
    grants: Vec<Option<GrantEntry>>,
    free_grefs: VecDeque<u32>,
    maptrack: BTreeMap<u32, MapEntry>,
    next_handle: u32,
    ports: Vec<PortEntry>,
}

/// The simulated hypervisor.
pub struct Host {
    pub(crate) frames: FrameStore,
    domains: BTreeMap<DomId, DomainState>,
    next_domid: u16,
    pub(crate) now: Instant,
    pub(crate) rng: SplitMix64,
    pub(crate) faults: Faults,
    pub(crate) stats: FaultStats,
    /// Delayed notifications: (due, sequence) -> (domain, port).
    in_flight: BTreeMap<(Instant, u64), (DomId, Port)>,
    seq: u64,
    pub(crate) config: HostConfig,
}

fn xen(op: Op, errno: Errno) -> Error {
    Error::Xen { op, errno }
}

fn gnt(op: Op, status: GrantStatus) -> Error {
    Error::Grant { op, status }
}

impl Host {
    pub(crate) fn new(seed: u64, config: HostConfig) -> std::io::Result<Self> {
        Ok(Host {
            frames: FrameStore::new(config.max_frames)?,
            domains: BTreeMap::new(),
            next_domid: 0,
            now: Instant::ZERO,
            rng: SplitMix64::new(seed ^ 0x0005_EED0_F4E4),
            faults: Faults::default(),
            stats: FaultStats::default(),
            in_flight: BTreeMap::new(),
            seq: 0,
            config,
        })
    }

    pub(crate) fn create_domain(&mut self) -> DomId {
        let domid = DomId(self.next_domid);
        self.next_domid += 1;
        let n = self.config.grant_entries;
        self.domains.insert(
            domid,
            DomainState {
                alive: true,
                grants: (0..n).map(|_| None).collect(),
                free_grefs: (FIRST_FREE_GREF.min(n)..n).collect(),
                maptrack: BTreeMap::new(),
                next_handle: 0,
                ports: vec![
                    PortEntry {
                        state: PortState::Free,
                        pending: false,
                        masked: false,
                    };
                    1
                ],
            },
        );
        domid
    }

    pub(crate) fn is_alive(&self, domid: DomId) -> bool {
        self.domains.get(&domid).is_some_and(|d| d.alive)
    }

    fn live(&mut self, domid: DomId) -> Result<&mut DomainState, Error> {
        match self.domains.get_mut(&domid) {
            Some(d) if d.alive => Ok(d),
            _ => Err(Error::NoSuchDomain { domid }),
        }
    }

    // ---- memory ----------------------------------------------------------------------

    pub(crate) fn alloc_frames(&mut self, count: usize) -> Result<(Vec<FrameId>, Region), Error> {
        if count == 0 {
            return Err(Error::InvalidArgument { op: Op::AllocPages });
        }
        let frames = self.frames.alloc(count).ok_or(Error::OutOfMemory)?;
        match self.frames.map(&frames, true) {
            Ok(region) => Ok((frames, region)),
            Err(_) => {
                for f in &frames {
                    self.frames.release(*f);
                }
                Err(Error::OutOfMemory)
            }
        }
    }

    pub(crate) fn release_frames(&mut self, frames: &[FrameId]) {
        for f in frames {
            self.frames.release(*f);
        }
    }

    // ---- grant tables ----------------------------------------------------------------

    /// Grants `frames` of `me` to `to`; all or nothing.
    pub(crate) fn grant(
        &mut self,
        me: DomId,
        frames: &[FrameId],
        to: DomId,
        access: Access,
    ) -> Result<Vec<GrantRef>, Error> {
        let d = self.live(me)?;
        if d.free_grefs.len() < frames.len() {
            return Err(Error::GrantTableFull);
        }
        let mut refs = Vec::with_capacity(frames.len());
        for &frame in frames {
            let gref = d.free_grefs.pop_front().expect("checked above");
            d.grants[gref as usize] = Some(GrantEntry {
                grantee: to,
                frame,
                access,
                maps: 0,
                orphaned: false,
            });
            refs.push(GrantRef(gref));
        }
        Ok(refs)
    }

    /// Ends access to every reference, or to none if any is still mapped (`GrantBusy`).
    pub(crate) fn end_access(&mut self, me: DomId, refs: &[GrantRef]) -> Result<(), Error> {
        let Some(d) = self.domains.get_mut(&me) else {
            return Err(Error::NoSuchDomain { domid: me });
        };
        for &gref in refs {
            match d.grants.get(gref.0 as usize) {
                Some(Some(e)) if e.maps > 0 => return Err(Error::GrantBusy { gref }),
                Some(Some(_)) => {}
                _ => return Err(gnt(Op::Revoke, GrantStatus::BadGntref)),
            }
        }
        for &gref in refs {
            d.grants[gref.0 as usize] = None;
            d.free_grefs.push_back(gref.0);
        }
        Ok(())
    }

    /// Ends access where possible; mapped entries are orphaned (freed at their last unmap).
    pub(crate) fn end_access_or_orphan(&mut self, me: DomId, refs: &[GrantRef]) {
        let Some(d) = self.domains.get_mut(&me) else {
            return;
        };
        for &gref in refs {
            if let Some(slot) = d.grants.get_mut(gref.0 as usize) {
                match slot {
                    Some(e) if e.maps > 0 => e.orphaned = true,
                    Some(_) => {
                        *slot = None;
                        d.free_grefs.push_back(gref.0);
                    }
                    None => {}
                }
            }
        }
    }

    /// Checks that `gref` of `granter` is granted to `me` with at least `access`.
    fn check_grant(
        &self,
        op: Op,
        me: DomId,
        granter: DomId,
        gref: GrantRef,
        access: Access,
    ) -> Result<FrameId, Error> {
        let d = match self.domains.get(&granter) {
            Some(d) if d.alive => d,
            _ => return Err(gnt(op, GrantStatus::BadDomain)),
        };
        let e = match d.grants.get(gref.0 as usize) {
            Some(Some(e)) if !e.orphaned => e,
            _ => return Err(gnt(op, GrantStatus::BadGntref)),
        };
        if e.grantee != me {
            return Err(gnt(op, GrantStatus::PermissionDenied));
        }
        if access == Access::ReadWrite && e.access == Access::ReadOnly {
            return Err(gnt(op, GrantStatus::PermissionDenied));
        }
        Ok(e.frame)
    }

    /// Maps `refs` of `granter` into `me`; all or nothing. Returns the maptrack handle and
    /// the virtual range.
    pub(crate) fn map(
        &mut self,
        me: DomId,
        granter: DomId,
        refs: &[GrantRef],
        access: Access,
    ) -> Result<(u32, Region), Error> {
        self.live(me)?;
        if refs.is_empty() {
            return Err(Error::InvalidArgument { op: Op::Map });
        }
        let frames = refs
            .iter()
            .map(|&gref| self.check_grant(Op::Map, me, granter, gref, access))
            .collect::<Result<Vec<_>, _>>()?;
        let region = self
            .frames
            .map(&frames, access == Access::ReadWrite)
            .map_err(|_| gnt(Op::Map, GrantStatus::NoSpace))?;
        for (&gref, &frame) in refs.iter().zip(&frames) {
            self.frames.add_ref(frame);
            let e = self.domains.get_mut(&granter).expect("checked").grants[gref.0 as usize]
                .as_mut()
                .expect("checked");
            e.maps += 1;
        }
        let d = self.live(me)?;
        let handle = d.next_handle;
        d.next_handle = d.next_handle.wrapping_add(1);
        d.maptrack.insert(
            handle,
            MapEntry {
                granter,
                grefs: refs.to_vec(),
                frames,
            },
        );
        Ok((handle, region))
    }

    /// Unmaps a maptrack handle: `GNTST_bad_handle` if it is not mapped (double unmap).
    pub(crate) fn unmap(&mut self, me: DomId, handle: u32) -> Result<(), Error> {
        let entry = self
            .domains
            .get_mut(&me)
            .ok_or(Error::NoSuchDomain { domid: me })?
            .maptrack
            .remove(&handle)
            .ok_or(gnt(Op::Unmap, GrantStatus::BadHandle))?;
        self.release_mapping(entry);
        Ok(())
    }

    fn release_mapping(&mut self, entry: MapEntry) {
        for (&gref, &frame) in entry.grefs.iter().zip(&entry.frames) {
            self.frames.release(frame);
            if let Some(d) = self.domains.get_mut(&entry.granter) {
                if let Some(slot) = d.grants.get_mut(gref.0 as usize) {
                    if let Some(e) = slot {
                        e.maps = e.maps.saturating_sub(1);
                        if e.maps == 0 && e.orphaned {
                            *slot = None;
                            d.free_grefs.push_back(gref.0);
                        }
                    }
                }
            }
        }
    }

    /// Resolves a foreign side of a copy to (frame, offset).
    pub(crate) fn copy_foreign(
        &self,
        me: DomId,
        granter: DomId,
        gref: GrantRef,
        offset: u16,
        len: u16,
        access: Access,
    ) -> Result<(FrameId, usize), Error> {
        if offset as usize + len as usize > FRAME_SIZE {
            return Err(gnt(Op::Copy, GrantStatus::BadCopyArg));
        }
        Ok((
            self.check_grant(Op::Copy, me, granter, gref, access)?,
            offset as usize,
        ))
    }

    /// Copies between frames.
    pub(crate) fn copy_frames(
        &mut self,
        src: (FrameId, usize),
        dst: (FrameId, usize),
        len: usize,
    ) -> Result<(), Error> {
        let mut buf = vec![0u8; len];
        self.frames
            .read(src.0, src.1, &mut buf)
            .and_then(|_| self.frames.write(dst.0, dst.1, &buf))
            .map_err(|_| gnt(Op::Copy, GrantStatus::BadCopyArg))
    }

    /// Writes into the frame behind `granter`'s `gref` (the fault injector's hostile peer).
    pub(crate) fn scribble(
        &mut self,
        granter: DomId,
        gref: GrantRef,
        offset: usize,
        value: u32,
    ) -> bool {
        let frame = match self
            .domains
            .get(&granter)
            .and_then(|d| d.grants.get(gref.0 as usize))
        {
            Some(Some(e)) => e.frame,
            _ => return false,
        };
        self.frames
            .write(frame, offset, &value.to_le_bytes())
            .is_ok()
    }

    /// Reads a 32-bit word behind `granter`'s `gref`.
    pub(crate) fn peek(&self, granter: DomId, gref: GrantRef, offset: usize) -> Option<u32> {
        let frame = match self
            .domains
            .get(&granter)
            .and_then(|d| d.grants.get(gref.0 as usize))
        {
            Some(Some(e)) => e.frame,
            _ => return None,
        };
        let mut b = [0u8; 4];
        self.frames.read(frame, offset, &mut b).ok()?;
        Some(u32::from_le_bytes(b))
    }

    pub(crate) fn grant_in_use(
        &self,
        granter: DomId,
        gref: GrantRef,
    ) -> Option<(DomId, Access, u32)> {
        self.domains
            .get(&granter)?
            .grants
            .get(gref.0 as usize)?
            .as_ref()
            .map(|e| (e.grantee, e.access, e.maps))
    }

    pub(crate) fn free_grant_count(&self, domid: DomId) -> usize {
        self.domains.get(&domid).map_or(0, |d| d.free_grefs.len())
    }

    // ---- event channels --------------------------------------------------------------

    fn alloc_port(&mut self, me: DomId, op: Op, state: PortState) -> Result<Port, Error> {
        let max = self.config.max_ports as usize;
        let d = self.live(me)?;
        let free = (1..d.ports.len()).find(|&p| d.ports[p].state == PortState::Free);
        let p = match free {
            Some(p) => p,
            None if d.ports.len() < max => {
                d.ports.push(PortEntry {
                    state: PortState::Free,
                    pending: false,
                    masked: false,
                });
                d.ports.len() - 1
            }
            None => return Err(xen(op, Errno::ENOSPC)),
        };
        d.ports[p] = PortEntry {
            state,
            pending: false,
            masked: false,
        };
        Ok(Port(p as u32))
    }

    fn port_mut(&mut self, me: DomId, port: Port) -> Result<&mut PortEntry, Error> {
        self.live(me)?
            .ports
            .get_mut(port.0 as usize)
            .filter(|_| port.0 != 0)
            .ok_or(Error::PortNotBound { port })
    }

    /// The binding of `port` in `me` (`Free` for invalid ports).
    pub(crate) fn port_state(&self, me: DomId, port: Port) -> PortState {
        self.domains
            .get(&me)
            .and_then(|d| d.ports.get(port.0 as usize))
            .filter(|_| port.0 != 0)
            .map_or(PortState::Free, |p| p.state)
    }

    pub(crate) fn is_pending(&self, me: DomId, port: Port) -> bool {
        self.domains
            .get(&me)
            .and_then(|d| d.ports.get(port.0 as usize))
            .is_some_and(|p| p.pending)
    }

    pub(crate) fn alloc_unbound(&mut self, me: DomId, remote: DomId) -> Result<Port, Error> {
        if !self.is_alive(remote) {
            return Err(xen(Op::AllocUnbound, Errno::ESRCH));
        }
        self.alloc_port(me, Op::AllocUnbound, PortState::Unbound { remote })
    }

    pub(crate) fn bind_interdomain(
        &mut self,
        me: DomId,
        remote: DomId,
        rport: Port,
    ) -> Result<Port, Error> {
        self.live(me)?;
        if !self.is_alive(remote) {
            return Err(xen(Op::BindInterdomain, Errno::ESRCH));
        }
        // Only a port the remote allocated unbound *for us* can be bound.
        if self.port_state(remote, rport) != (PortState::Unbound { remote: me }) {
            return Err(xen(Op::BindInterdomain, Errno::EINVAL));
        }
        let local = self.alloc_port(
            me,
            Op::BindInterdomain,
            PortState::Interdomain {
                remote,
                remote_port: rport,
            },
        )?;
        let r = self.port_mut(remote, rport).expect("checked above");
        r.state = PortState::Interdomain {
            remote: me,
            remote_port: local,
        };
        // Xen marks the new local port pending so the binder checks for missed work.
        self.port_mut(me, local).expect("just allocated").pending = true;
        Ok(local)
    }

    pub(crate) fn bind_virq(&mut self, me: DomId, virq: Virq) -> Result<Port, Error> {
        if virq.0 >= Virq::COUNT {
            return Err(xen(Op::BindVirq, Errno::EINVAL));
        }
        let d = self.live(me)?;
        if d.ports.iter().any(|p| p.state == PortState::Virq(virq)) {
            return Err(xen(Op::BindVirq, Errno::EEXIST));
        }
        self.alloc_port(me, Op::BindVirq, PortState::Virq(virq))
    }

    pub(crate) fn raise_virq(&mut self, domid: DomId, virq: Virq) -> bool {
        let Some(d) = self.domains.get_mut(&domid).filter(|d| d.alive) else {
            return false;
        };
        match d
            .ports
            .iter_mut()
            .find(|p| p.state == PortState::Virq(virq))
        {
            Some(p) => {
                p.pending = true;
                true
            }
            None => false,
        }
    }

    pub(crate) fn close(&mut self, me: DomId, port: Port) -> Result<(), Error> {
        let entry = self.port_mut(me, port)?;
        let state = entry.state;
        if state == PortState::Free {
            return Err(Error::PortNotBound { port });
        }
        *entry = PortEntry {
            state: PortState::Free,
            pending: false,
            masked: false,
        };
        if let PortState::Interdomain {
            remote,
            remote_port,
        } = state
        {
            // The peer's end reverts to unbound, bindable again by us (Xen's semantics).
            if let Some(d) = self.domains.get_mut(&remote) {
                if let Some(r) = d.ports.get_mut(remote_port.0 as usize) {
                    if r.state
                        == (PortState::Interdomain {
                            remote: me,
                            remote_port: port,
                        })
                    {
                        r.state = PortState::Unbound { remote: me };
                    }
                }
            }
        }
        Ok(())
    }

    pub(crate) fn set_mask(&mut self, me: DomId, port: Port, masked: bool) -> Result<(), Error> {
        let e = self.port_mut(me, port)?;
        if e.state == PortState::Free {
            return Err(Error::PortNotBound { port });
        }
        e.masked = masked;
        Ok(())
    }

    /// `EVTCHNOP_send`, with the fault injector deciding the notification's fate.
    pub(crate) fn notify(&mut self, me: DomId, port: Port) -> Result<(), Error> {
        let state = self.port_mut(me, port)?.state;
        let (remote, remote_port) = match state {
            PortState::Interdomain {
                remote,
                remote_port,
            } => (remote, remote_port),
            PortState::Unbound { .. } => return Ok(()), // silently dropped, as in Xen
            PortState::Free | PortState::Virq(_) => return Err(Error::PortNotBound { port }),
        };
        self.stats.notifications += 1;
        let f = self.faults.clone();
        if self.rng.chance(f.drop_notify) {
            self.stats.dropped += 1;
            return Ok(());
        }
        if self.rng.chance(f.delay_notify) {
            self.stats.delayed += 1;
            self.send_later(remote, remote_port, f.max_delay);
        } else {
            self.set_pending(remote, remote_port);
        }
        if self.rng.chance(f.duplicate_notify) {
            self.stats.duplicated += 1;
            self.send_later(remote, remote_port, f.max_delay);
        }
        Ok(())
    }

    fn send_later(&mut self, to: DomId, port: Port, max_delay: Duration) {
        let max = max_delay.as_nanos().min(u64::MAX as u128) as u64;
        let due = Instant(self.now.0.saturating_add(1 + self.rng.below(max.max(1))));
        self.seq += 1;
        self.in_flight.insert((due, self.seq), (to, port));
    }

    fn set_pending(&mut self, to: DomId, port: Port) {
        if let Some(d) = self.domains.get_mut(&to).filter(|d| d.alive) {
            if let Some(p) = d.ports.get_mut(port.0 as usize) {
                if p.state != PortState::Free {
                    p.pending = true;
                }
            }
        }
    }

    /// Delivers delayed notifications that are due.
    pub(crate) fn deliver_due(&mut self) {
        while let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let (to, port) = entry.remove();
            self.set_pending(to, port);
        }
    }

    pub(crate) fn next_delivery(&self) -> Option<Instant> {
        self.in_flight.keys().next().map(|&(t, _)| t)
    }

    /// Test-and-clears the pending, unmasked ports of `domid` (what a PV guest does after
    /// `SCHEDOP_poll`), in port order.
    pub(crate) fn take_pending(&mut self, domid: DomId, out: &mut Vec<Port>) {
        if let Some(d) = self.domains.get_mut(&domid).filter(|d| d.alive) {
            for (i, p) in d.ports.iter_mut().enumerate() {
                if p.pending && !p.masked {
                    p.pending = false;
                    out.push(Port(i as u32));
                }
            }
        }
    }

    /// The domain disappears: its mappings of others' pages are released, its ports closed
    /// (peers' ends revert to unbound), its unmapped grants freed; grants others still map
    /// stay until they unmap.
    pub(crate) fn destroy_domain(&mut self, domid: DomId) {
        let Some(d) = self.domains.get_mut(&domid) else {
            return;
        };
        d.alive = false;
        let maps: Vec<MapEntry> = std::mem::take(&mut d.maptrack).into_values().collect();
        for m in maps {
            self.release_mapping(m);
        }
        let nports = self.domains[&domid].ports.len();
        for p in 1..nports {
            let port = Port(p as u32);
            let state = self.domains[&domid].ports[p].state;
            if let PortState::Interdomain {
                remote,
                remote_port,
            } = state
            {
                if let Some(r) = self
                    .domains
                    .get_mut(&remote)
                    .and_then(|rd| rd.ports.get_mut(remote_port.0 as usize))
                {
                    if r.state
                        == (PortState::Interdomain {
                            remote: domid,
                            remote_port: port,
                        })
                    {
                        r.state = PortState::Unbound { remote: domid };
                    }
                }
            }
            let d = self.domains.get_mut(&domid).expect("exists");
            d.ports[p].state = PortState::Free;
            d.ports[p].pending = false;
        }
        let all: Vec<GrantRef> = (0..self.config.grant_entries).map(GrantRef).collect();
        self.end_access_or_orphan(domid, &all);
    }
}
