//! An in-memory xenstore for sim tests: nodes with libxenvchan's two-entry permission list
//! (owner, one reader), enforced per domain, and the toolstack's removal of a dead domain's
//! `/local/domain/<id>` tree.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use vchan::VchanStore;
use xen_platform::DomId;
use xenstore::ErrorCode;

#[derive(Default)]
struct Tree {
    /// path -> (value, owner, reader)
    nodes: BTreeMap<String, (Vec<u8>, DomId, Option<DomId>)>,
    domains: BTreeSet<u16>,
}

/// The shared store.
#[derive(Clone, Default)]
pub struct MemStore {
    tree: Rc<RefCell<Tree>>,
}

impl MemStore {
    /// A domain's connection.
    pub fn connect(&self, domid: DomId) -> StoreConn {
        self.tree.borrow_mut().domains.insert(domid.0);
        StoreConn {
            tree: self.tree.clone(),
            me: domid,
        }
    }

    /// What the toolstack does when a domain dies.
    pub fn domain_died(&self, domid: DomId) {
        let mut t = self.tree.borrow_mut();
        t.domains.remove(&domid.0);
        let prefix = format!("/local/domain/{}/", domid.0);
        t.nodes.retain(|k, _| !k.starts_with(&prefix));
    }

    /// Writes a node as dom0 (for hostile advertisements).
    pub fn force(&self, path: &str, value: &str, reader: DomId) {
        self.tree
            .borrow_mut()
            .nodes
            .insert(path.into(), (value.into(), DomId(0), Some(reader)));
    }

    /// Whether a node exists.
    pub fn exists(&self, path: &str) -> bool {
        self.tree.borrow().nodes.contains_key(path)
    }

    /// The node's (owner, reader) permissions.
    pub fn perms(&self, path: &str) -> Option<(DomId, Option<DomId>)> {
        self.tree.borrow().nodes.get(path).map(|n| (n.1, n.2))
    }
}

/// One domain's connection to the store.
pub struct StoreConn {
    tree: Rc<RefCell<Tree>>,
    me: DomId,
}

impl VchanStore for StoreConn {
    async fn own_domid(&self) -> Result<DomId, xenstore::Error> {
        Ok(self.me)
    }

    async fn read(&self, path: &str) -> Result<Option<Vec<u8>>, xenstore::Error> {
        match self.tree.borrow().nodes.get(path) {
            // Like xenstored: a missing node under another domain's home is EACCES for an
            // unprivileged reader (existence is not revealed).
            None if self.me != DomId(0)
                && path.starts_with("/local/domain/")
                && !path.starts_with(&format!("/local/domain/{}/", self.me.0)) =>
            {
                Err(xenstore::Error::Xenstore(ErrorCode::EACCES))
            }
            None => Ok(None),
            Some((v, owner, reader)) => {
                if *owner == self.me || *reader == Some(self.me) || self.me == DomId(0) {
                    Ok(Some(v.clone()))
                } else {
                    Err(xenstore::Error::Xenstore(ErrorCode::EACCES))
                }
            }
        }
    }

    async fn publish(
        &self,
        dir: &str,
        entries: &[(&str, String)],
        owner: DomId,
        reader: DomId,
    ) -> Result<(), xenstore::Error> {
        let mut t = self.tree.borrow_mut();
        for (k, v) in entries {
            t.nodes.insert(
                format!("{dir}/{k}"),
                (v.as_bytes().to_vec(), owner, Some(reader)),
            );
        }
        Ok(())
    }

    async fn remove(&self, path: &str) -> Result<(), xenstore::Error> {
        let prefix = format!("{path}/");
        self.tree
            .borrow_mut()
            .nodes
            .retain(|k, _| k != path && !k.starts_with(&prefix));
        Ok(())
    }

    async fn domain_exists(&self, domid: DomId) -> Result<bool, xenstore::Error> {
        Ok(self.tree.borrow().domains.contains(&domid.0))
    }
}
