//! In-memory backend: objects and refs in ordered maps. Used by tests, by guests without
//! a disk, and as the model other backends are checked against.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{Backend, RawObject};
use crate::error::{Error, Result};
use crate::hash::{ObjectId, hash_object};
use crate::object::ObjectKind;

#[derive(Clone, Debug)]
pub struct MemoryBackend {
    objects: hashbrown::HashMap<ObjectId, (ObjectKind, alloc::sync::Arc<[u8]>)>,
    refs: BTreeMap<String, ObjectId>,
    head: String,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBackend {
    pub fn new() -> Self {
        MemoryBackend {
            objects: hashbrown::HashMap::new(),
            refs: BTreeMap::new(),
            head: "refs/heads/main".to_string(),
        }
    }

    pub fn object_count(&self) -> usize {
        self.objects.len()
    }

    /// Replace an object's bytes without changing its id (for corruption tests).
    pub fn corrupt_object(&mut self, id: &ObjectId, data: &[u8]) {
        if let Some(entry) = self.objects.get_mut(id) {
            entry.1 = data.into();
        }
    }
}

impl Backend for MemoryBackend {
    fn read_object(&self, id: &ObjectId) -> Result<Option<RawObject>> {
        let Some((kind, data)) = self.objects.get(id) else {
            return Ok(None);
        };
        let actual = hash_object(*kind, data);
        if actual != *id {
            return Err(Error::HashMismatch {
                expected: *id,
                actual,
            });
        }
        Ok(Some(RawObject {
            kind: *kind,
            data: data.to_vec(),
        }))
    }

    fn has_object(&self, id: &ObjectId) -> Result<bool> {
        Ok(self.objects.contains_key(id))
    }

    fn write_object(&mut self, id: &ObjectId, kind: ObjectKind, data: &[u8]) -> Result<()> {
        self.objects
            .entry(*id)
            .or_insert_with(|| (kind, data.into()));
        Ok(())
    }

    fn sync_objects(&mut self) -> Result<()> {
        Ok(())
    }

    fn read_ref(&self, name: &str) -> Result<Option<ObjectId>> {
        if name == "HEAD" {
            return Ok(self.refs.get(&self.head).copied());
        }
        Ok(self.refs.get(name).copied())
    }

    fn update_ref(
        &mut self,
        name: &str,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
    ) -> Result<()> {
        crate::path::check_ref_name(name)?;
        super::expect_ref(name, expected, self.refs.get(name).copied())?;
        match new {
            Some(id) => {
                self.refs.insert(name.to_string(), id);
            }
            None => {
                self.refs.remove(name);
            }
        }
        Ok(())
    }

    fn list_refs(&self, prefix: &str) -> Result<Vec<(String, ObjectId)>> {
        Ok(self
            .refs
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), *v))
            .collect())
    }

    fn head_target(&self) -> Result<Option<String>> {
        Ok(Some(self.head.clone()))
    }

    fn set_head_target(&mut self, target: &str) -> Result<()> {
        crate::path::check_ref_name(target)?;
        self.head = target.to_string();
        Ok(())
    }
}
