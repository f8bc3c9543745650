//! What vchan needs from xenstore, and where libxenvchan keeps it.
//!
//! The server writes `<dir>/ring-ref` (the control page's grant reference) and
//! `<dir>/event-channel` (its unbound port), in one transaction, each with the permission
//! list `n<server>`, `r<client>`: owned by the server, readable by the client only. The
//! conventional `<dir>` is `/local/domain/<server>/data/vchan/<client>/<port>`
//! ([`vchan_path`]). On close the server removes `<dir>`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::future::Future;

use xen_platform::DomId;
use xenstore::wire::{Access, Permission};
use xenstore::{Client, ErrorCode, Timer, Transport};

/// The directory libxenvchan-based tools use for channel `port` between `server` and
/// `client` (e.g. `vchan-socket-proxy`, Qubes): `/local/domain/<server>/data/vchan/<client>/<port>`.
pub fn vchan_path(server: DomId, client: DomId, port: &str) -> String {
    format!(
        "/local/domain/{}/data/vchan/{}/{}",
        server.0, client.0, port
    )
}

/// Whether `port` can be one path element (xenstore's character rules, non-empty).
pub fn valid_port_name(port: &str) -> bool {
    !port.is_empty()
        && port.len() <= 64
        && port
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'@')
}

/// The xenstore operations vchan uses; implemented for [`xenstore::Client`] over any
/// transport, and by test doubles.
pub trait VchanStore {
    /// This domain's id (libxenvchan reads the relative key `domid`).
    fn own_domid(&self) -> impl Future<Output = Result<DomId, xenstore::Error>>;

    /// Reads a node; `None` if it does not exist.
    fn read(&self, path: &str) -> impl Future<Output = Result<Option<Vec<u8>>, xenstore::Error>>;

    /// Writes `dir/key = value` for every entry, atomically, each node owned by `owner`
    /// with no access for others except read access for `reader`.
    fn publish(
        &self,
        dir: &str,
        entries: &[(&str, String)],
        owner: DomId,
        reader: DomId,
    ) -> impl Future<Output = Result<(), xenstore::Error>>;

    /// Removes a node and everything below it (fine if absent).
    fn remove(&self, path: &str) -> impl Future<Output = Result<(), xenstore::Error>>;

    /// Whether `domid` still exists (its `/local/domain/<id>` node is there; a node we may
    /// not read exists too). The toolstack removes it when the domain dies.
    fn domain_exists(&self, domid: DomId) -> impl Future<Output = Result<bool, xenstore::Error>>;
}

impl<S: VchanStore> VchanStore for &S {
    fn own_domid(&self) -> impl Future<Output = Result<DomId, xenstore::Error>> {
        (**self).own_domid()
    }
    fn read(&self, path: &str) -> impl Future<Output = Result<Option<Vec<u8>>, xenstore::Error>> {
        (**self).read(path)
    }
    fn publish(
        &self,
        dir: &str,
        entries: &[(&str, String)],
        owner: DomId,
        reader: DomId,
    ) -> impl Future<Output = Result<(), xenstore::Error>> {
        (**self).publish(dir, entries, owner, reader)
    }
    fn remove(&self, path: &str) -> impl Future<Output = Result<(), xenstore::Error>> {
        (**self).remove(path)
    }
    fn domain_exists(&self, domid: DomId) -> impl Future<Output = Result<bool, xenstore::Error>> {
        (**self).domain_exists(domid)
    }
}

/// Parses a decimal number as libxenvchan writes it (no sign, no spaces).
pub(crate) fn parse_decimal(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || bytes.len() > 10 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    core::str::from_utf8(bytes).ok()?.parse().ok()
}

impl<T: Transport, M: Timer> VchanStore for Client<T, M> {
    async fn own_domid(&self) -> Result<DomId, xenstore::Error> {
        let raw = self.read("domid").await?;
        parse_decimal(&raw)
            .and_then(|d| u16::try_from(d).ok())
            .map(DomId)
            .ok_or(xenstore::Error::MalformedReply(
                xenstore::wire::WireError::UnexpectedValue,
            ))
    }

    async fn read(&self, path: &str) -> Result<Option<Vec<u8>>, xenstore::Error> {
        self.read_optional(path).await
    }

    async fn publish(
        &self,
        dir: &str,
        entries: &[(&str, String)],
        owner: DomId,
        reader: DomId,
    ) -> Result<(), xenstore::Error> {
        let perms = [
            Permission {
                domid: owner.0,
                access: Access::None,
            },
            Permission {
                domid: reader.0,
                access: Access::Read,
            },
        ];
        self.transaction(async |tx| {
            for (key, value) in entries {
                let path = format!("{dir}/{key}");
                tx.write(&path, value).await?;
                tx.set_permissions(&path, &perms).await?;
            }
            Ok(())
        })
        .await
    }

    async fn remove(&self, path: &str) -> Result<(), xenstore::Error> {
        self.rm(path).await
    }

    async fn domain_exists(&self, domid: DomId) -> Result<bool, xenstore::Error> {
        match self
            .read_optional(&format!("/local/domain/{}", domid.0))
            .await
        {
            Ok(found) => Ok(found.is_some()),
            Err(xenstore::Error::Xenstore(ErrorCode::EACCES)) => Ok(true),
            Err(e) => Err(e),
        }
    }
}
