//! Page-aligned memory that can be shared with other domains.

use xen_ring::{ReadOnlyMem, SharedMem};

use crate::error::Error;
use crate::types::Access;

/// Size of a Xen page: the unit of grants and mappings.
pub const PAGE_SIZE: usize = xen_ring::XEN_PAGE_SIZE;

/// Memory made of whole Xen pages, virtually contiguous, that is or can be shared.
///
/// All access goes through [`SharedMem`] (atomic and volatile operations), never through
/// Rust references, because another domain may write the pages at any time.
pub trait PageMemory {
    /// Number of 4 KiB pages.
    fn page_count(&self) -> usize;

    /// A read-write view of the pages, `page_count() * PAGE_SIZE` bytes.
    fn mem(&self) -> SharedMem<'_>;
}

/// Allocation of zeroed, page-aligned, shareable pages.
///
/// The pages are freed when the returned value is dropped. Pages that are granted are moved
/// into the grant ([`crate::GrantShare::grant`]) and come back only when the grant was
/// revoked, so a page a peer can still access is never freed or reused.
pub trait PageAlloc {
    /// Owned pages.
    type Pages: PageMemory;

    /// Allocates `count` (>= 1) zeroed, virtually contiguous pages.
    ///
    /// Errors: [`Error::InvalidArgument`] for `count == 0`, [`Error::OutOfMemory`].
    fn alloc_pages(&self, count: usize) -> Result<Self::Pages, Error>;
}

/// A mapping of pages another domain granted to us (see [`crate::GrantMap`]).
///
/// Unmapped when dropped; [`crate::GrantMap::unmap`] does the same but reports errors.
pub trait Mapping {
    /// Number of 4 KiB pages.
    fn page_count(&self) -> usize;

    /// How the pages are mapped.
    fn access(&self) -> Access;

    /// Read-write view; `None` if the pages are mapped read-only.
    fn mem(&self) -> Option<SharedMem<'_>>;

    /// Read-only view (available for both kinds of mapping).
    fn mem_ro(&self) -> ReadOnlyMem<'_>;
}
