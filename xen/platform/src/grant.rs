//! Grant tables: sharing our pages with another domain, and mapping pages it shared with us.

use crate::error::{Error, Refused};
use crate::memory::{Mapping, PageAlloc, PageMemory};
use crate::types::{Access, DomId, GrantRef};

/// Pages we granted to one domain; see [`GrantShare`].
pub trait Granted: PageMemory {
    /// One grant reference per page, in page order. These are what the peer maps
    /// (advertised through xenstore, e.g. `ring-ref`).
    fn refs(&self) -> &[GrantRef];

    /// The domain the pages are granted to.
    fn domid(&self) -> DomId;

    /// The access granted.
    fn access(&self) -> Access;
}

/// Sharing our own pages with another domain (`GTF_permit_access` entries in our grant table).
///
/// # Ownership
///
/// [`grant`](Self::grant) takes the pages by value and returns a [`Granted`] handle. The pages
/// come back only through [`revoke`](Self::revoke), which fails with [`Error::GrantBusy`]
/// (handing the grant back) while the peer still has any of them mapped. So a page the peer
/// can still reach is never freed or reused for something else.
///
/// Dropping a [`Granted`] without revoking is allowed (a peer may die with the page mapped):
/// the platform ends access where it can and *quarantines* the rest, i.e. it retries later or
/// leaks the page, and never reuses it while it may still be mapped.
pub trait GrantShare: PageAlloc {
    /// Granted pages.
    type Granted: Granted;

    /// Grants every page of `pages` to `domid` with `access`, one reference per page.
    ///
    /// Errors (pages handed back): [`Error::GrantTableFull`] when not enough references are
    /// free (no reference is consumed then), [`Error::NoSuchDomain`] where the platform
    /// checks.
    fn grant(
        &self,
        pages: Self::Pages,
        domid: DomId,
        access: Access,
    ) -> Result<Self::Granted, Refused<Self::Pages>>;

    /// Allocates `count` zeroed pages and grants them to `domid`: what frontends and vchan
    /// servers usually want. Platforms where allocation and granting are one operation
    /// (Linux `gntalloc`) override this to avoid the intermediate pages.
    fn share_pages(
        &self,
        count: usize,
        domid: DomId,
        access: Access,
    ) -> Result<Self::Granted, Error> {
        let pages = self.alloc_pages(count)?;
        self.grant(pages, domid, access)
            .map_err(|refused| refused.error)
    }

    /// Ends the peer's access to every page and returns the pages.
    ///
    /// Errors (grant handed back, nothing changed): [`Error::GrantBusy`] if the peer still has
    /// a page mapped.
    fn revoke(&self, granted: Self::Granted) -> Result<Self::Pages, Refused<Self::Granted>>;
}

/// Mapping pages another domain granted to us (`GNTTABOP_map_grant_ref` with
/// `GNTMAP_host_map`).
pub trait GrantMap {
    /// A mapping; unmapped on drop.
    type Mapping: Mapping;

    /// Maps the pages `refs` of `domid`'s grant table, virtually contiguous, in order.
    ///
    /// Errors: [`Error::Grant`] with Xen's status (`BadDomain`, `BadGntref` for a reference
    /// not granted to us, `PermissionDenied` for a writable mapping of a read-only grant);
    /// all-or-nothing: on error nothing stays mapped.
    fn map(&self, domid: DomId, refs: &[GrantRef], access: Access) -> Result<Self::Mapping, Error>;

    /// Unmaps, reporting errors that dropping would swallow. Taking the mapping by value
    /// makes a double unmap impossible.
    fn unmap(&self, mapping: Self::Mapping) -> Result<(), Error>;
}

/// One side of a grant copy.
#[derive(Debug)]
pub enum CopyPtr<'a, P> {
    /// Our own pages, at a byte offset into them.
    Local {
        /// The pages.
        pages: &'a P,
        /// Byte offset from the start of the first page.
        offset: usize,
    },
    /// A page another domain granted to us.
    Foreign {
        /// The granting domain.
        domid: DomId,
        /// Its grant reference.
        gref: GrantRef,
        /// Byte offset within that page.
        offset: u16,
    },
}

impl<P> Clone for CopyPtr<'_, P> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P> Copy for CopyPtr<'_, P> {}

/// A grant copy of `len` bytes; neither side may cross a 4 KiB page boundary
/// (`GNTST_bad_copy_arg` otherwise).
#[derive(Debug)]
pub struct CopyOp<'a, P> {
    /// Where to copy from.
    pub src: CopyPtr<'a, P>,
    /// Where to copy to (a foreign destination must be granted writable).
    pub dst: CopyPtr<'a, P>,
    /// Number of bytes.
    pub len: u16,
}

/// Copying between our pages and pages granted to us, without mapping them
/// (`GNTTABOP_copy`): the hypervisor does the copy.
pub trait GrantCopy: PageAlloc {
    /// Performs one copy.
    ///
    /// Errors: [`Error::Grant`] with Xen's per-operation status, [`Error::InvalidArgument`]
    /// for a local side outside `pages`.
    fn copy(&self, op: &CopyOp<'_, Self::Pages>) -> Result<(), Error>;

    /// Performs several copies (one hypercall where the platform can batch), writing each
    /// status into `results` (which must be as long as `ops`, else `InvalidArgument`).
    fn copy_batch(
        &self,
        ops: &[CopyOp<'_, Self::Pages>],
        results: &mut [Result<(), Error>],
    ) -> Result<(), Error> {
        if ops.len() != results.len() {
            return Err(Error::InvalidArgument {
                op: crate::error::Op::Copy,
            });
        }
        for (op, result) in ops.iter().zip(results.iter_mut()) {
            *result = self.copy(op);
        }
        Ok(())
    }
}
