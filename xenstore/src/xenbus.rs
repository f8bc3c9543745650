//! The frontend side of the xenbus handshake (`xen/io/xenbus.h`): find the backend,
//! publish the frontend's keys atomically, step `XenbusState`, wait for the backend's state,
//! and notice a backend that goes away. Generic over the client's transport and timer, so
//! the same code runs in a guest, on Linux, and against test daemons.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::client::{Client, Error, Watch};
use crate::transport::{Timer, Transport};
use crate::wire::{DomId, ErrorCode, parse_decimal};

/// `enum xenbus_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum XenbusState {
    Unknown = 0,
    Initialising = 1,
    /// The backend waits for the frontend's details (hotplug done).
    InitWait = 2,
    /// The frontend published its details.
    Initialised = 3,
    Connected = 4,
    Closing = 5,
    Closed = 6,
    Reconfiguring = 7,
    Reconfigured = 8,
}

impl XenbusState {
    pub const ALL: [XenbusState; 9] = [
        Self::Unknown,
        Self::Initialising,
        Self::InitWait,
        Self::Initialised,
        Self::Connected,
        Self::Closing,
        Self::Closed,
        Self::Reconfiguring,
        Self::Reconfigured,
    ];

    /// Parses the decimal value of a `state` node (a trailing nul or newline is tolerated).
    pub fn parse(value: &[u8]) -> Option<Self> {
        let trimmed = value.strip_suffix(b"\0").unwrap_or(value);
        let trimmed = trimmed.strip_suffix(b"\n").unwrap_or(trimmed);
        let n = parse_decimal(trimmed).ok()?;
        Self::ALL.iter().copied().find(|s| *s as u64 == n)
    }

    /// The value written to a `state` node.
    pub fn as_value(self) -> String {
        format!("{}", self as u8)
    }

    /// The backend is shutting down or gone.
    pub fn is_closing(self) -> bool {
        matches!(self, Self::Closing | Self::Closed)
    }
}

/// Errors of the xenbus handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XenbusError {
    Store(Error),
    /// A key the protocol requires is missing (e.g. the frontend's `backend`).
    MissingKey(String),
    /// A key holds something unusable (e.g. a non-numeric `state`).
    InvalidValue {
        path: String,
        value: Vec<u8>,
    },
    /// The backend's `state` node disappeared: the backend went away.
    BackendGone,
    /// The backend moved to `Closing`/`Closed` while we waited for something else.
    BackendClosing(XenbusState),
}

impl fmt::Display for XenbusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => write!(f, "xenstore: {e}"),
            Self::MissingKey(p) => write!(f, "missing xenstore key {p}"),
            Self::InvalidValue { path, value } => {
                write!(
                    f,
                    "invalid value {:?} at {path}",
                    String::from_utf8_lossy(value)
                )
            }
            Self::BackendGone => f.write_str("backend went away"),
            Self::BackendClosing(s) => write!(f, "backend is closing ({s:?})"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for XenbusError {}

impl From<Error> for XenbusError {
    fn from(e: Error) -> Self {
        XenbusError::Store(e)
    }
}

/// One frontend device node, e.g. `device/vif/0` (relative to the domain's home) or an
/// absolute `/local/domain/5/device/vbd/768`.
pub struct Frontend<'c, T, M> {
    client: &'c Client<T, M>,
    node: String,
    backend: String,
    backend_id: DomId,
}

impl<'c, T: Transport, M: Timer> Frontend<'c, T, M> {
    /// Looks up the backend path and domain the toolstack wrote under `node`.
    pub async fn new(client: &'c Client<T, M>, node: &str) -> Result<Self, XenbusError> {
        let backend_key = format!("{node}/backend");
        let backend = client
            .read_optional(&backend_key)
            .await?
            .ok_or(XenbusError::MissingKey(backend_key.clone()))?;
        let backend = String::from_utf8(backend.clone())
            .ok()
            .filter(|p| crate::wire::path::validate(p, crate::wire::PathUse::Node).is_ok())
            .ok_or(XenbusError::InvalidValue {
                path: backend_key,
                value: backend,
            })?;
        let id_key = format!("{node}/backend-id");
        let raw_id = client
            .read_optional(&id_key)
            .await?
            .ok_or(XenbusError::MissingKey(id_key.clone()))?;
        let backend_id = parse_decimal(&raw_id)
            .ok()
            .and_then(|v| DomId::try_from(v).ok())
            .ok_or(XenbusError::InvalidValue {
                path: id_key,
                value: raw_id,
            })?;
        Ok(Frontend {
            client,
            node: String::from(node),
            backend,
            backend_id,
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }
    pub fn backend(&self) -> &str {
        &self.backend
    }
    pub fn backend_id(&self) -> DomId {
        self.backend_id
    }
    pub fn client(&self) -> &'c Client<T, M> {
        self.client
    }

    /// Path of a key below the frontend node.
    pub fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.node)
    }

    /// Path of a key below the backend node.
    pub fn backend_key(&self, name: &str) -> String {
        format!("{}/{name}", self.backend)
    }

    /// Reads a backend key (e.g. `feature-persistent`); `None` if absent.
    pub async fn read_backend(&self, name: &str) -> Result<Option<Vec<u8>>, XenbusError> {
        Ok(self.client.read_optional(&self.backend_key(name)).await?)
    }

    /// The frontend's own state.
    pub async fn state(&self) -> Result<XenbusState, XenbusError> {
        let path = self.key("state");
        match self.client.read_optional(&path).await? {
            None => Ok(XenbusState::Unknown),
            Some(v) => XenbusState::parse(&v).ok_or(XenbusError::InvalidValue { path, value: v }),
        }
    }

    pub async fn set_state(&self, state: XenbusState) -> Result<(), XenbusError> {
        Ok(self
            .client
            .write(&self.key("state"), state.as_value())
            .await?)
    }

    /// The backend's state; [`XenbusError::BackendGone`] if its node no longer exists.
    pub async fn backend_state(&self) -> Result<XenbusState, XenbusError> {
        let path = self.backend_key("state");
        match self.client.read_optional(&path).await? {
            None => Err(XenbusError::BackendGone),
            Some(v) => XenbusState::parse(&v).ok_or(XenbusError::InvalidValue { path, value: v }),
        }
    }

    /// Writes `keys` (names relative to the frontend node) and, if given, the new `state`,
    /// in one transaction retried on conflicts, so the backend never sees half of them.
    pub async fn publish(
        &self,
        keys: &[(&str, &[u8])],
        state: Option<XenbusState>,
    ) -> Result<(), XenbusError> {
        let node = &self.node;
        self.client
            .transaction(async |tx| {
                for (name, value) in keys {
                    tx.write(&format!("{node}/{name}"), value).await?;
                }
                if let Some(state) = state {
                    tx.write(&format!("{node}/state"), state.as_value()).await?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// Watches the backend's state.
    pub async fn watch_backend(&self) -> Result<BackendMonitor<'_, 'c, T, M>, XenbusError> {
        let watch = self.client.watch(&self.backend_key("state")).await?;
        Ok(BackendMonitor {
            frontend: self,
            watch,
        })
    }

    /// Waits until the backend's state satisfies `accept`. Fails with `BackendGone` if the
    /// backend's node disappears, and with `BackendClosing` if the backend starts closing
    /// and `accept` does not accept that.
    pub async fn wait_for_backend<P>(&self, mut accept: P) -> Result<XenbusState, XenbusError>
    where
        P: FnMut(XenbusState) -> bool,
    {
        let mut monitor = self.watch_backend().await?;
        loop {
            let state = self.backend_state().await?;
            if accept(state) {
                return Ok(state);
            }
            if state.is_closing() {
                return Err(XenbusError::BackendClosing(state));
            }
            monitor.changed().await?;
        }
    }

    /// The usual connection sequence: `Initialising`; wait for the backend to reach
    /// `InitWait` (or later); publish `keys` together with `published` in one transaction;
    /// wait for the backend to be `Connected`; then `Connected`.
    ///
    /// `published` is `Initialised` for drivers that connect only after the backend did
    /// (blkfront) and `Connected` for those that announce themselves ready at once
    /// (netfront).
    pub async fn connect(
        &self,
        keys: &[(&str, &[u8])],
        published: XenbusState,
    ) -> Result<(), XenbusError> {
        self.set_state(XenbusState::Initialising).await?;
        self.wait_for_backend(|s| s >= XenbusState::InitWait && !s.is_closing())
            .await?;
        self.publish(keys, Some(published)).await?;
        self.wait_for_backend(|s| s == XenbusState::Connected)
            .await?;
        if published != XenbusState::Connected {
            self.set_state(XenbusState::Connected).await?;
        }
        Ok(())
    }

    /// The usual shutdown: `Closing`; wait for the backend to close (or vanish); `Closed`.
    pub async fn close(&self) -> Result<(), XenbusError> {
        self.set_state(XenbusState::Closing).await?;
        match self.wait_for_backend(XenbusState::is_closing).await {
            Ok(_) | Err(XenbusError::BackendGone) => {}
            Err(e) => return Err(e),
        }
        self.set_state(XenbusState::Closed).await?;
        Ok(())
    }
}

/// The frontend device nodes of one class in this domain, e.g. `device/vif/0` for
/// `class = "vif"` (relative to the domain's home, as `Frontend::new` accepts them).
pub async fn list_devices<T: Transport, M: Timer>(
    client: &Client<T, M>,
    home: &str,
    class: &str,
) -> Result<Vec<String>, XenbusError> {
    let dir = format!("{home}/device/{class}");
    match client.directory(&dir).await {
        Ok(ids) => Ok(ids.into_iter().map(|id| format!("{dir}/{id}")).collect()),
        Err(Error::Xenstore(ErrorCode::ENOENT)) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// A watch on the backend's state, reporting each change and the backend's disappearance.
pub struct BackendMonitor<'f, 'c, T: Transport, M> {
    frontend: &'f Frontend<'c, T, M>,
    watch: Watch<T>,
}

impl<T: Transport, M: Timer> BackendMonitor<'_, '_, T, M> {
    /// Waits for the next watch event on the backend's state (no read).
    async fn changed(&mut self) -> Result<(), XenbusError> {
        match self.watch.next().await {
            Ok(_) | Err(Error::WatchLagged { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits for the backend's state to change and returns the new state, or
    /// `BackendGone` when its node is removed.
    pub async fn next_state(&mut self, current: XenbusState) -> Result<XenbusState, XenbusError> {
        loop {
            self.changed().await?;
            match self.frontend.backend_state().await {
                Ok(s) if s == current => continue,
                Ok(s) => return Ok(s),
                Err(XenbusError::Store(Error::Xenstore(ErrorCode::EACCES))) => {
                    return Err(XenbusError::BackendGone);
                }
                Err(e) => return Err(e),
            }
        }
    }
}
