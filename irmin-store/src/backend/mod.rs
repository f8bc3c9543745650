//! The interface between the store logic and where objects and refs live.
//!
//! A backend stores immutable objects by id and a small set of mutable refs updated by
//! compare-and-swap. The store never mutates anything else, so a backend's only
//! consistency duty is ordering: every object a ref points to (transitively) must be
//! durable before the ref update is.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::Result;
use crate::hash::ObjectId;
use crate::object::ObjectKind;

/// The compare half of a ref compare-and-swap: `Ok` when the ref still has the value the
/// caller read, else [`crate::Error::RefChanged`] (a concurrent writer won).
pub(crate) fn expect_ref(
    name: &str,
    expected: Option<ObjectId>,
    actual: Option<ObjectId>,
) -> Result<()> {
    if actual == expected {
        Ok(())
    } else {
        Err(crate::Error::RefChanged {
            name: name.into(),
            expected,
            actual,
        })
    }
}

pub mod block;
pub mod memory;

#[cfg(feature = "std")]
pub mod disk;

/// An object's kind and body (no header), already checked against its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawObject {
    pub kind: ObjectKind,
    pub data: Vec<u8>,
}

pub trait Backend {
    /// Read an object. Implementations must verify the bytes hash to `id` and return
    /// `Error::HashMismatch` otherwise.
    fn read_object(&self, id: &ObjectId) -> Result<Option<RawObject>>;

    fn has_object(&self, id: &ObjectId) -> Result<bool>;

    /// Store an object whose id the caller computed with [`crate::hash::hash_object`].
    /// Writing an object that exists is a no-op.
    fn write_object(&mut self, id: &ObjectId, kind: ObjectKind, data: &[u8]) -> Result<()>;

    /// Barrier: objects written so far become durable (as far as the backend's durability
    /// setting promises) before any later ref update.
    fn sync_objects(&mut self) -> Result<()>;

    /// Read a full ref name (`refs/heads/main`). Symbolic refs are followed.
    fn read_ref(&self, name: &str) -> Result<Option<ObjectId>>;

    /// Atomically set `name` to `new` (or delete it for `None`) if it currently equals
    /// `expected` (`None`: must not exist). Otherwise `Error::RefChanged`.
    fn update_ref(
        &mut self,
        name: &str,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
    ) -> Result<()>;

    /// All refs whose full name starts with `prefix`, sorted by name.
    fn list_refs(&self, prefix: &str) -> Result<Vec<(String, ObjectId)>>;

    /// The branch HEAD points at (`refs/heads/...`), if HEAD is symbolic.
    fn head_target(&self) -> Result<Option<String>>;

    /// Point HEAD at the full ref `target`.
    fn set_head_target(&mut self, target: &str) -> Result<()>;

    /// Store every object of a received, verified pack. The default writes them one by
    /// one; a backend with a native pack format keeps the pack as it is.
    fn store_pack(&mut self, _pack: &[u8], indexed: &crate::pack::IndexedPack) -> Result<()> {
        for (id, obj, _, _) in &indexed.objects {
            self.write_object(id, obj.kind, &obj.data)?;
        }
        Ok(())
    }
}
