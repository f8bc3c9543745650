//! The generic request/response ring of Xen's `io/ring.h`.
//!
//! One shared region (usually one page, or several contiguous pages for multi-page rings):
//!
//! ```text
//! offset 0   req_prod   written by the front end
//!        4   req_event  written by the back end: "notify me when req_prod passes this"
//!        8   rsp_prod   written by the back end
//!       12   rsp_event  written by the front end
//!       16   pvt[4], __pad[44]
//!       64   entries: a power of two of max(sizeof req, sizeof rsp) slots
//! ```
//!
//! Each end keeps its own indices private ([`FrontRing`], [`BackRing`]) and only publishes
//! them; it never re-reads its own index from the page, so a peer scribbling on it cannot
//! confuse us. Every index read from the peer is validated before use.
//!
//! # Memory ordering
//!
//! Xen's macros use `wmb`, `rmb` and `mb`. The equivalents here:
//!
//! * `wmb(); sring->req_prod = x` (entries visible before the index) is a `Release` store of
//!   the index.
//! * reading the peer's producer index and then the entries (`rmb` between them) is an
//!   `Acquire` load of the index.
//! * consuming entries before the peer may reuse the slots needs no fence: a slot is reused
//!   only after a response (front) was consumed, which is ordered by the same
//!   acquire/release pairs.
//! * the notification check, "publish `req_prod`, then read `req_event`", and the final
//!   check, "write `rsp_event`, then re-read `rsp_prod`", order a *store before a later
//!   load*. Acquire/release cannot do that (x86 itself reorders a store with a later load
//!   from its store buffer), so these use a full fence (`fence(SeqCst)`, `mfence` or a locked
//!   op), Xen's `mb()`. Without it both sides can miss each other and a notification is lost.
//!
//! On x86 (TSO) the acquire/release accesses compile to plain moves plus compiler barriers,
//! which is exactly what Xen's `rmb`/`wmb` are there.

use core::marker::PhantomData;
use core::sync::atomic::Ordering;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::error::{Latch, RingError};
use crate::mem::{OutOfBounds, SharedMem, full_fence};

/// Size of the shared ring header; entries start here.
pub const HEADER_SIZE: usize = 64;
/// Offset of `req_prod`.
pub const REQ_PROD: usize = 0;
/// Offset of `req_event`.
pub const REQ_EVENT: usize = 4;
/// Offset of `rsp_prod`.
pub const RSP_PROD: usize = 8;
/// Offset of `rsp_event`.
pub const RSP_EVENT: usize = 12;
/// Offset of the 4-byte private union (`netif.smartpoll_active`, ...).
pub const PVT: usize = 16;

/// Size of one ring slot: the C union of request and response, i.e. the larger size rounded
/// up to the larger alignment.
pub const fn entry_size<Req, Rsp>() -> usize {
    let size = max(size_of::<Req>(), size_of::<Rsp>());
    let align = max(align_of::<Req>(), align_of::<Rsp>());
    size.div_ceil(align) * align
}

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// Number of slots of a ring over `region_len` bytes with `entry_size`-byte slots, as
/// `__RING_SIZE` computes it: the largest power of two that fits after the header (0 if not
/// even one fits).
pub const fn ring_size(region_len: usize, entry_size: usize) -> u32 {
    if entry_size == 0 || region_len < HEADER_SIZE + entry_size {
        return 0;
    }
    let n = (region_len - HEADER_SIZE) / entry_size;
    let n = if n > (1 << 31) { 1 << 31 } else { n };
    let n = n as u32;
    1 << (31 - n.leading_zeros())
}

/// Initialises the shared header (`SHARED_RING_INIT`): producers 0, events 1, padding zero.
/// The front end does this before advertising the ring.
pub fn init_shared(mem: &SharedMem<'_>) -> Result<(), RingError> {
    mem.store_u32(REQ_PROD, 0, Ordering::Relaxed)?;
    mem.store_u32(RSP_PROD, 0, Ordering::Relaxed)?;
    mem.store_u32(REQ_EVENT, 1, Ordering::Relaxed)?;
    mem.store_u32(RSP_EVENT, 1, Ordering::Relaxed)?;
    mem.fill(PVT, HEADER_SIZE - PVT, 0)?;
    Ok(())
}

/// Geometry shared by both ends.
#[derive(Clone, Copy, Debug)]
struct Slots<'a> {
    mem: SharedMem<'a>,
    size: u32,
    entry: usize,
}

impl<'a> Slots<'a> {
    fn new(mem: SharedMem<'a>, entry: usize) -> Result<Self, RingError> {
        let size = ring_size(mem.len(), entry);
        if size == 0 || mem.as_ptr() as usize % 4 != 0 {
            return Err(RingError::Layout(OutOfBounds {
                offset: HEADER_SIZE,
                len: entry,
                region_len: mem.len(),
            }));
        }
        Ok(Slots { mem, size, entry })
    }

    fn offset(&self, idx: u32) -> usize {
        // In bounds by construction: (size - 1) * entry + entry + 64 <= mem.len().
        HEADER_SIZE + (idx & (self.size - 1)) as usize * self.entry
    }

    /// `(new - event) < (new - old)`: the peer asked to be notified at an index in
    /// `(old, new]`. Any value the peer wrote into `event` is harmless here: at worst it
    /// causes an extra or a missing notification *for the peer itself*.
    fn push_and_check(
        &self,
        prod_off: usize,
        event_off: usize,
        old: u32,
        new: u32,
    ) -> Result<bool, RingError> {
        self.mem.store_u32(prod_off, new, Ordering::Release)?;
        full_fence();
        let event = self.mem.load_u32(event_off, Ordering::Relaxed)?;
        Ok(new.wrapping_sub(event) < new.wrapping_sub(old))
    }
}

/// The front end of a ring: produces requests, consumes responses (`*_front_ring`).
pub struct FrontRing<'a, Req, Rsp> {
    slots: Slots<'a>,
    req_prod_pvt: u32,
    /// The request producer index we last published.
    req_prod_pub: u32,
    rsp_cons: u32,
    /// The last validated `rsp_prod` read from the peer.
    rsp_prod_seen: u32,
    broken: Latch,
    _types: PhantomData<fn(Req) -> Rsp>,
}

impl<Req, Rsp> core::fmt::Debug for FrontRing<'_, Req, Rsp> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrontRing")
            .field("size", &self.slots.size)
            .field("req_prod_pvt", &self.req_prod_pvt)
            .field("req_prod_pub", &self.req_prod_pub)
            .field("rsp_cons", &self.rsp_cons)
            .field("broken", &self.broken)
            .finish()
    }
}

impl<'a, Req, Rsp> FrontRing<'a, Req, Rsp>
where
    Req: IntoBytes + Immutable,
    Rsp: FromBytes,
{
    /// Initialises the shared header and attaches at index 0 (`XEN_FRONT_RING_INIT`).
    pub fn init(mem: SharedMem<'a>) -> Result<Self, RingError> {
        let ring = Self::attach(mem, 0)?;
        init_shared(&mem)?;
        Ok(ring)
    }

    /// Attaches to an initialised shared ring with both private indices at `index`
    /// (`FRONT_RING_ATTACH`), e.g. to resume after a reconnect.
    pub fn attach(mem: SharedMem<'a>, index: u32) -> Result<Self, RingError> {
        Ok(FrontRing {
            slots: Slots::new(mem, entry_size::<Req, Rsp>())?,
            req_prod_pvt: index,
            req_prod_pub: index,
            rsp_cons: index,
            rsp_prod_seen: index,
            broken: Latch::default(),
            _types: PhantomData,
        })
    }

    /// Number of slots.
    pub fn size(&self) -> u32 {
        self.slots.size
    }

    /// The error that broke the ring, if the peer misbehaved.
    pub fn broken(&self) -> Option<RingError> {
        self.broken.get()
    }

    fn check(&self) -> Result<(), RingError> {
        self.broken.check()
    }

    fn fail(&mut self, e: RingError) -> RingError {
        self.broken.fail(e)
    }

    /// Our private request producer index (`req_prod_pvt`).
    pub fn req_prod_pvt(&self) -> u32 {
        self.req_prod_pvt
    }

    /// Our response consumer index (`rsp_cons`).
    pub fn rsp_cons(&self) -> u32 {
        self.rsp_cons
    }

    /// Free request slots (`RING_FREE_REQUESTS`).
    pub fn free_requests(&self) -> u32 {
        self.slots.size - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Whether no request slot is free (`RING_FULL`).
    pub fn is_full(&self) -> bool {
        self.free_requests() == 0
    }

    /// Writes `req` into the next slot, unpublished until a push. [`RingError::Full`] if no
    /// slot is free.
    pub fn queue_request(&mut self, req: &Req) -> Result<(), RingError> {
        self.check()?;
        if self.is_full() {
            return Err(RingError::Full);
        }
        self.slots
            .mem
            .write_obj(self.slots.offset(self.req_prod_pvt), req)?;
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publishes queued requests without checking for a notification (`RING_PUSH_REQUESTS`).
    pub fn push_requests(&mut self) -> Result<(), RingError> {
        self.check()?;
        self.slots
            .mem
            .store_u32(REQ_PROD, self.req_prod_pvt, Ordering::Release)?;
        self.req_prod_pub = self.req_prod_pvt;
        Ok(())
    }

    /// Publishes queued requests and says whether the back end asked to be notified
    /// (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`).
    pub fn push_requests_and_check_notify(&mut self) -> Result<bool, RingError> {
        self.check()?;
        let (old, new) = (self.req_prod_pub, self.req_prod_pvt);
        let notify = self.slots.push_and_check(REQ_PROD, REQ_EVENT, old, new)?;
        self.req_prod_pub = new;
        Ok(notify)
    }

    fn refresh_responses(&mut self) -> Result<(), RingError> {
        let prod = self.slots.mem.load_u32(RSP_PROD, Ordering::Acquire)?;
        let outstanding = self.req_prod_pub.wrapping_sub(self.rsp_cons);
        if prod.wrapping_sub(self.rsp_cons) > outstanding {
            return Err(self.fail(RingError::ResponsesBeyondRequests {
                rsp_prod: prod,
                rsp_cons: self.rsp_cons,
                req_prod: self.req_prod_pub,
            }));
        }
        self.rsp_prod_seen = prod;
        Ok(())
    }

    /// Responses published and not consumed yet (`RING_HAS_UNCONSUMED_RESPONSES`), after
    /// validating the peer's `rsp_prod`.
    pub fn unconsumed_responses(&mut self) -> Result<u32, RingError> {
        self.check()?;
        self.refresh_responses()?;
        Ok(self.rsp_prod_seen.wrapping_sub(self.rsp_cons))
    }

    /// Takes the next response, `None` if there is none.
    pub fn take_response(&mut self) -> Result<Option<Rsp>, RingError> {
        self.check()?;
        if self.rsp_cons == self.rsp_prod_seen {
            self.refresh_responses()?;
            if self.rsp_cons == self.rsp_prod_seen {
                return Ok(None);
            }
        }
        let rsp = self.slots.mem.read_obj(self.slots.offset(self.rsp_cons))?;
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(rsp))
    }

    /// Before sleeping: `true` if responses are pending; otherwise asks to be notified of the
    /// next response and re-checks, so a response published meanwhile is not missed
    /// (`RING_FINAL_CHECK_FOR_RESPONSES`).
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_responses()? > 0 {
            return Ok(true);
        }
        self.slots
            .mem
            .store_u32(RSP_EVENT, self.rsp_cons.wrapping_add(1), Ordering::Relaxed)?;
        full_fence();
        Ok(self.unconsumed_responses()? > 0)
    }
}

/// The back end of a ring: consumes requests, produces responses (`*_back_ring`).
pub struct BackRing<'a, Req, Rsp> {
    slots: Slots<'a>,
    rsp_prod_pvt: u32,
    /// The response producer index we last published.
    rsp_prod_pub: u32,
    req_cons: u32,
    /// The last validated `req_prod` read from the peer.
    req_prod_seen: u32,
    broken: Latch,
    _types: PhantomData<fn(Rsp) -> Req>,
}

impl<Req, Rsp> core::fmt::Debug for BackRing<'_, Req, Rsp> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BackRing")
            .field("size", &self.slots.size)
            .field("rsp_prod_pvt", &self.rsp_prod_pvt)
            .field("rsp_prod_pub", &self.rsp_prod_pub)
            .field("req_cons", &self.req_cons)
            .field("broken", &self.broken)
            .finish()
    }
}

impl<'a, Req, Rsp> BackRing<'a, Req, Rsp>
where
    Req: FromBytes,
    Rsp: IntoBytes + Immutable,
{
    /// Attaches at index 0 to a ring the front end initialised (`BACK_RING_INIT`).
    pub fn new(mem: SharedMem<'a>) -> Result<Self, RingError> {
        Self::attach(mem, 0)
    }

    /// Attaches with both private indices at `index` (`BACK_RING_ATTACH`).
    pub fn attach(mem: SharedMem<'a>, index: u32) -> Result<Self, RingError> {
        Ok(BackRing {
            slots: Slots::new(mem, entry_size::<Req, Rsp>())?,
            rsp_prod_pvt: index,
            rsp_prod_pub: index,
            req_cons: index,
            req_prod_seen: index,
            broken: Latch::default(),
            _types: PhantomData,
        })
    }

    /// Number of slots.
    pub fn size(&self) -> u32 {
        self.slots.size
    }

    /// The error that broke the ring, if the peer misbehaved.
    pub fn broken(&self) -> Option<RingError> {
        self.broken.get()
    }

    fn check(&self) -> Result<(), RingError> {
        self.broken.check()
    }

    fn fail(&mut self, e: RingError) -> RingError {
        self.broken.fail(e)
    }

    /// Our request consumer index (`req_cons`).
    pub fn req_cons(&self) -> u32 {
        self.req_cons
    }

    /// Our private response producer index (`rsp_prod_pvt`).
    pub fn rsp_prod_pvt(&self) -> u32 {
        self.rsp_prod_pvt
    }

    /// Consumed requests not answered yet.
    pub fn unanswered(&self) -> u32 {
        self.req_cons.wrapping_sub(self.rsp_prod_pvt)
    }

    /// Consumed requests whose responses are not published yet: their slots are still ours.
    fn unpublished(&self) -> u32 {
        self.req_cons.wrapping_sub(self.rsp_prod_pub)
    }

    fn refresh_requests(&mut self) -> Result<(), RingError> {
        let prod = self.slots.mem.load_u32(REQ_PROD, Ordering::Acquire)?;
        // The front end can have at most `size` requests beyond our last *published* response
        // (RING_REQUEST_PROD_OVERFLOW, made strict: a slot whose response we have not
        // published is not free); a prod behind req_cons wraps to a huge count.
        let available = prod.wrapping_sub(self.req_cons);
        let room = self.slots.size - self.unpublished();
        if available > room {
            return Err(self.fail(RingError::PeerOverrun {
                prod,
                cons: self.req_cons,
                size: self.slots.size,
            }));
        }
        self.req_prod_seen = prod;
        Ok(())
    }

    /// Requests published and not consumed yet (`RING_HAS_UNCONSUMED_REQUESTS`), after
    /// validating the peer's `req_prod`.
    pub fn unconsumed_requests(&mut self) -> Result<u32, RingError> {
        self.check()?;
        self.refresh_requests()?;
        Ok(self.req_prod_seen.wrapping_sub(self.req_cons))
    }

    /// Takes (copies out) the next request, `None` if there is none.
    pub fn take_request(&mut self) -> Result<Option<Req>, RingError> {
        self.check()?;
        if self.req_cons == self.req_prod_seen {
            self.refresh_requests()?;
            if self.req_cons == self.req_prod_seen {
                return Ok(None);
            }
        }
        let req = self.slots.mem.read_obj(self.slots.offset(self.req_cons))?;
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(req))
    }

    /// Writes `rsp` into the next response slot, unpublished until a push.
    /// [`RingError::NoRequestToAnswer`] if every consumed request was answered already.
    pub fn queue_response(&mut self, rsp: &Rsp) -> Result<(), RingError> {
        self.check()?;
        if self.unanswered() == 0 {
            return Err(RingError::NoRequestToAnswer);
        }
        self.slots
            .mem
            .write_obj(self.slots.offset(self.rsp_prod_pvt), rsp)?;
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publishes queued responses (`RING_PUSH_RESPONSES`).
    pub fn push_responses(&mut self) -> Result<(), RingError> {
        self.check()?;
        self.slots
            .mem
            .store_u32(RSP_PROD, self.rsp_prod_pvt, Ordering::Release)?;
        self.rsp_prod_pub = self.rsp_prod_pvt;
        Ok(())
    }

    /// Publishes queued responses and says whether the front end asked to be notified
    /// (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`).
    pub fn push_responses_and_check_notify(&mut self) -> Result<bool, RingError> {
        self.check()?;
        let (old, new) = (self.rsp_prod_pub, self.rsp_prod_pvt);
        let notify = self.slots.push_and_check(RSP_PROD, RSP_EVENT, old, new)?;
        self.rsp_prod_pub = new;
        Ok(notify)
    }

    /// Before sleeping: `true` if requests are pending; otherwise asks to be notified of the
    /// next request and re-checks (`RING_FINAL_CHECK_FOR_REQUESTS`).
    pub fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_requests()? > 0 {
            return Ok(true);
        }
        self.slots
            .mem
            .store_u32(REQ_EVENT, self.req_cons.wrapping_add(1), Ordering::Relaxed)?;
        full_fence();
        Ok(self.unconsumed_requests()? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_size_matches_ring_h() {
        // blkif: 112-byte requests in one page -> 32 slots; netif tx: 12-byte entries -> 256.
        assert_eq!(ring_size(4096, 112), 32);
        assert_eq!(ring_size(4096, 12), 256);
        assert_eq!(ring_size(4096, 8), 256);
        assert_eq!(ring_size(4096, 64), 32);
        assert_eq!(ring_size(4 * 4096, 112), 128);
        assert_eq!(ring_size(64, 8), 0);
        assert_eq!(ring_size(72, 8), 1);
        assert_eq!(ring_size(4096, 0), 0);
    }

    #[test]
    fn entry_size_is_the_c_union() {
        assert_eq!(entry_size::<[u8; 112], [u8; 12]>(), 112);
        assert_eq!(entry_size::<u64, [u8; 12]>(), 16);
        assert_eq!(entry_size::<[u32; 3], u16>(), 12);
    }
}
