//! The shared control page, exactly as `xen/io/libxenvchan.h` defines `struct vchan_interface`,
//! and the rules for where the two rings live.
//!
//! ```text
//! offset  field
//!   0     left  { cons u32, prod u32 }    client writes, server reads
//!   8     right { cons u32, prod u32 }    server writes, client reads
//!  16     left_order u16, 18 right_order u16
//!  20     cli_live u8, 21 srv_live u8, 22 cli_notify u8, 23 srv_notify u8
//!  24     grants[] u32: the left ring's pages, then the right ring's
//! ```
//!
//! A ring of order 10 lives at offset 1024 of the control page, order 11 at 2048 (so at most
//! one ring may use each slot), order 12..=20 in `2^(order-12)` separately granted pages
//! listed in `grants[]`. The grant list must end before the first in-page ring.
//!
//! This module is pure arithmetic: nothing here touches shared memory. [`VchanInterface`]
//! documents the layout and is checked against the C header (`tests/layout.rs`); the page
//! itself is only ever accessed through `SharedMem` at these offsets.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `struct ring_shared`: one ring's free-running indices.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct RingShared {
    /// Consumer index (written by the reader).
    pub cons: u32,
    /// Producer index (written by the writer).
    pub prod: u32,
}

/// `struct vchan_interface` without its flexible `grants[]` tail.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VchanInterface {
    /// Client writes, server reads.
    pub left: RingShared,
    /// Server writes, client reads.
    pub right: RingShared,
    /// log2 of the left ring's size.
    pub left_order: u16,
    /// log2 of the right ring's size.
    pub right_order: u16,
    /// Client liveness ([`LIVE_CLOSED`], [`LIVE`], [`LIVE_WAITING`]).
    pub cli_live: u8,
    /// Server liveness ([`LIVE_CLOSED`], [`LIVE`]).
    pub srv_live: u8,
    /// Notifications the server asked the client for (the client acts on these bits).
    pub cli_notify: u8,
    /// Notifications the client asked the server for (the server acts on these bits).
    pub srv_notify: u8,
}

/// Offset of `left`.
pub const LEFT: usize = core::mem::offset_of!(VchanInterface, left);
/// Offset of `right`.
pub const RIGHT: usize = core::mem::offset_of!(VchanInterface, right);
/// Offset of `cons` within a `ring_shared`.
pub const CONS: usize = core::mem::offset_of!(RingShared, cons);
/// Offset of `prod` within a `ring_shared`.
pub const PROD: usize = core::mem::offset_of!(RingShared, prod);
/// Offset of `left_order`.
pub const LEFT_ORDER: usize = core::mem::offset_of!(VchanInterface, left_order);
/// Offset of `right_order`.
pub const RIGHT_ORDER: usize = core::mem::offset_of!(VchanInterface, right_order);
/// Offset of `cli_live`.
pub const CLI_LIVE: usize = core::mem::offset_of!(VchanInterface, cli_live);
/// Offset of `srv_live`.
pub const SRV_LIVE: usize = core::mem::offset_of!(VchanInterface, srv_live);
/// Offset of `cli_notify`.
pub const CLI_NOTIFY: usize = core::mem::offset_of!(VchanInterface, cli_notify);
/// Offset of `srv_notify`.
pub const SRV_NOTIFY: usize = core::mem::offset_of!(VchanInterface, srv_notify);
/// Offset of `grants[]`.
pub const GRANTS: usize = core::mem::size_of::<VchanInterface>();

const _: () = assert!(GRANTS == 24);

/// `VCHAN_NOTIFY_WRITE`: notify the other side after writing data.
pub const NOTIFY_WRITE: u8 = 0x1;
/// `VCHAN_NOTIFY_READ`: notify the other side after consuming data.
pub const NOTIFY_READ: u8 = 0x2;

/// Live flag: this side has exited (or was never there, for `srv_live`).
pub const LIVE_CLOSED: u8 = 0;
/// Live flag: connected.
pub const LIVE: u8 = 1;
/// `cli_live` only: the client has not connected yet.
pub const LIVE_WAITING: u8 = 2;

/// Smallest ring order (1 KiB, in the control page at offset 1024).
pub const MIN_ORDER: u8 = 10;
/// Ring order that lives in the control page at offset 2048.
pub const LARGE_IN_PAGE_ORDER: u8 = 11;
/// Smallest order with separately granted pages.
pub const PAGE_ORDER: u8 = 12;
/// Largest order libxenvchan accepts (1 MiB, 256 grants).
pub const MAX_ORDER: u8 = 20;

const PAGE_SIZE: usize = 4096;

/// Where a ring's data lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// In the control page at this offset (order 10: 1024, order 11: 2048).
    InPage {
        /// Byte offset in the control page.
        offset: usize,
    },
    /// In `pages` separately granted pages; their references are `grants[first..first+pages]`.
    Pages {
        /// Index of the first reference in `grants[]`.
        first: usize,
        /// Number of pages.
        pages: usize,
    },
}

/// Why a pair of ring orders cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderError {
    /// An order outside 10..=20.
    OutOfRange {
        /// The order.
        order: u16,
    },
    /// Both rings want the same in-page slot (both 10 or both 11).
    SameInPageSlot {
        /// The order.
        order: u16,
    },
    /// The grant list would overlap an in-page ring or run off the page.
    GrantListTooLong {
        /// Number of grant references.
        grants: usize,
        /// Where the list would have to end at the latest.
        limit: usize,
    },
}

impl core::fmt::Display for OrderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OrderError::OutOfRange { order } => {
                write!(f, "ring order {order} outside {MIN_ORDER}..={MAX_ORDER}")
            }
            OrderError::SameInPageSlot { order } => {
                write!(f, "both rings have order {order}: same in-page slot")
            }
            OrderError::GrantListTooLong { grants, limit } => write!(
                f,
                "{grants} grant references do not fit before offset {limit} of the control page"
            ),
        }
    }
}

/// The validated geometry of a channel: both rings' orders and placements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Left ring (client to server) order.
    pub left_order: u8,
    /// Right ring (server to client) order.
    pub right_order: u8,
    /// Where the left ring lives.
    pub left: Placement,
    /// Where the right ring lives.
    pub right: Placement,
}

fn pages_of(order: u8) -> usize {
    if order >= PAGE_ORDER {
        1 << (order - PAGE_ORDER)
    } else {
        0
    }
}

impl Geometry {
    /// Validates orders as read from a (possibly hostile) page.
    pub fn new(left_order: u16, right_order: u16) -> Result<Geometry, OrderError> {
        for order in [left_order, right_order] {
            if !(MIN_ORDER as u16..=MAX_ORDER as u16).contains(&order) {
                return Err(OrderError::OutOfRange { order });
            }
        }
        if left_order == right_order && left_order < PAGE_ORDER as u16 {
            return Err(OrderError::SameInPageSlot { order: left_order });
        }
        let (lo, ro) = (left_order as u8, right_order as u8);
        let place = |order: u8, first: usize| match order {
            MIN_ORDER => Placement::InPage { offset: 1024 },
            LARGE_IN_PAGE_ORDER => Placement::InPage { offset: 2048 },
            _ => Placement::Pages {
                first,
                pages: pages_of(order),
            },
        };
        let g = Geometry {
            left_order: lo,
            right_order: ro,
            left: place(lo, 0),
            right: place(ro, pages_of(lo)),
        };
        let grants = g.grant_count();
        let limit = g.grants_limit();
        if GRANTS + 4 * grants > limit {
            return Err(OrderError::GrantListTooLong { grants, limit });
        }
        Ok(g)
    }

    /// The orders libxenvchan's server picks for rings of at least `left_min` (client to
    /// server) and `right_min` (server to client) bytes: in-page rings when both fit
    /// (1024 + 2048), one in-page ring when one fits in 2048, else page rings.
    pub fn for_sizes(left_min: usize, right_min: usize) -> Result<Geometry, OrderError> {
        let max = 1usize << MAX_ORDER;
        if left_min > max || right_min > max {
            return Err(OrderError::OutOfRange { order: 21 });
        }
        let min_order = |size: usize| {
            let mut order = PAGE_ORDER;
            while size > 1 << order {
                order += 1;
            }
            order
        };
        let (small, large) = (1usize << MIN_ORDER, 1usize << LARGE_IN_PAGE_ORDER);
        let (lo, ro) = if left_min <= small && right_min <= large {
            (MIN_ORDER, LARGE_IN_PAGE_ORDER)
        } else if left_min <= large && right_min <= small {
            (LARGE_IN_PAGE_ORDER, MIN_ORDER)
        } else if left_min <= large {
            (LARGE_IN_PAGE_ORDER, min_order(right_min))
        } else if right_min <= large {
            (min_order(left_min), LARGE_IN_PAGE_ORDER)
        } else {
            (min_order(left_min), min_order(right_min))
        };
        Geometry::new(lo as u16, ro as u16)
    }

    /// Total grant references in `grants[]`.
    pub fn grant_count(&self) -> usize {
        pages_of(self.left_order) + pages_of(self.right_order)
    }

    /// The offset the grant list must end before: the lowest in-page ring, else the page end.
    fn grants_limit(&self) -> usize {
        [self.left, self.right]
            .iter()
            .filter_map(|p| match p {
                Placement::InPage { offset } => Some(*offset),
                Placement::Pages { .. } => None,
            })
            .min()
            .unwrap_or(PAGE_SIZE)
    }

    /// Left ring size in bytes.
    pub fn left_size(&self) -> u32 {
        1 << self.left_order
    }

    /// Right ring size in bytes.
    pub fn right_size(&self) -> u32 {
        1 << self.right_order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libxenvchan_order_choice() {
        let g = Geometry::for_sizes(1024, 2048).unwrap();
        assert_eq!((g.left_order, g.right_order), (10, 11));
        let g = Geometry::for_sizes(2048, 1000).unwrap();
        assert_eq!((g.left_order, g.right_order), (11, 10));
        let g = Geometry::for_sizes(2048, 5000).unwrap();
        assert_eq!((g.left_order, g.right_order), (11, 13));
        assert_eq!(g.right, Placement::Pages { first: 0, pages: 2 });
        let g = Geometry::for_sizes(70000, 4096).unwrap();
        assert_eq!((g.left_order, g.right_order), (17, 12));
        let g = Geometry::for_sizes(70000, 2000).unwrap();
        assert_eq!((g.left_order, g.right_order), (17, 11));
        let g = Geometry::for_sizes(8192, 1 << 20).unwrap();
        assert_eq!((g.left_order, g.right_order), (13, 20));
        assert_eq!(
            g.right,
            Placement::Pages {
                first: 2,
                pages: 256
            }
        );
        assert_eq!(g.grant_count(), 258);
        assert!(Geometry::for_sizes((1 << 20) + 1, 0).is_err());
    }

    #[test]
    fn hostile_orders_are_rejected() {
        assert_eq!(
            Geometry::new(9, 11),
            Err(OrderError::OutOfRange { order: 9 })
        );
        assert_eq!(
            Geometry::new(12, 21),
            Err(OrderError::OutOfRange { order: 21 })
        );
        assert_eq!(
            Geometry::new(0xffff, 12),
            Err(OrderError::OutOfRange { order: 0xffff })
        );
        assert_eq!(
            Geometry::new(10, 10),
            Err(OrderError::SameInPageSlot { order: 10 })
        );
        assert_eq!(
            Geometry::new(11, 11),
            Err(OrderError::SameInPageSlot { order: 11 })
        );
        assert!(Geometry::new(12, 12).is_ok());
        // 512 grants fit in a page only without an in-page ring; 256 + in-page order 10
        // would overlap offset 1024.
        assert!(Geometry::new(20, 20).is_ok());
        assert!(matches!(
            Geometry::new(20, 10),
            Err(OrderError::GrantListTooLong {
                grants: 256,
                limit: 1024
            })
        ));
        assert!(Geometry::new(20, 11).is_ok());
    }
}
