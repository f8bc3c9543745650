//! Small identifier types shared by every platform.

use core::fmt;
use core::ops::{Add, Sub};
use core::time::Duration;

/// A domain id (`domid_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomId(pub u16);

impl DomId {
    /// Domain 0, the control domain.
    pub const DOM0: DomId = DomId(0);
    /// `DOMID_SELF` (0x7FF0): "the calling domain" in hypercall arguments.
    pub const SELF: DomId = DomId(0x7FF0);
    /// Ids from here on are reserved by Xen and never name an ordinary domain.
    pub const FIRST_RESERVED: u16 = 0x7FF0;
}

impl fmt::Display for DomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dom{}", self.0)
    }
}

/// An event-channel port number (`evtchn_port_t`), local to the domain that owns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(pub u32);

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port {}", self.0)
    }
}

/// A grant reference (`grant_ref_t`), an index into the granting domain's grant table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantRef(pub u32);

impl fmt::Display for GrantRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gref {}", self.0)
    }
}

/// A virtual IRQ number (`VIRQ_*` in `public/xen.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Virq(pub u32);

impl Virq {
    /// `VIRQ_TIMER`: the per-vCPU timer.
    pub const TIMER: Virq = Virq(0);
    /// `VIRQ_DEBUG`: request to dump debug info.
    pub const DEBUG: Virq = Virq(1);
    /// `VIRQ_CONSOLE`: bytes on the emergency console (dom0).
    pub const CONSOLE: Virq = Virq(2);
    /// `VIRQ_DOM_EXC`: exceptional event for some domain (dom0), e.g. one died.
    pub const DOM_EXC: Virq = Virq(3);
    /// One past the highest VIRQ number (`NR_VIRQS`).
    pub const COUNT: u32 = 24;
}

/// How a peer may access a page we grant, or how we map a page granted to us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Read only (`GTF_readonly` / `GNTMAP_readonly`).
    ReadOnly,
    /// Read and write.
    ReadWrite,
}

/// A point on the monotonic clock, in nanoseconds since an arbitrary origin (on Xen: the
/// domain's system time, `vcpu_time_info` extrapolated with the TSC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(pub u64);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(0);

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the end of time instead of wrapping.
    pub fn saturating_add(self, d: Duration) -> Instant {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ns))
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// Wall-clock time: seconds and nanoseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WallTime {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    pub secs: u64,
    /// Nanoseconds within the second (< 1e9).
    pub nanos: u32,
}
