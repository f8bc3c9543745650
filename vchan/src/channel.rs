//! A vchan endpoint: setup for both roles and the data path, written once against the
//! platform traits.
//!
//! # Data path and notifications
//!
//! Each ring has free-running 32-bit indices in the control page. We keep our own index
//! (the reader's `cons`, the writer's `prod`) privately and only publish it: a peer that
//! scribbles on it cannot move us. The peer's index is validated on every load
//! (`prod - cons <= size`); an impossible value breaks the channel for good
//! ([`PeerError::IndexOutOfRange`]).
//!
//! Notifications follow libxenvchan: a side that wants to hear about the peer's next write
//! (or read) sets `NOTIFY_WRITE` (`NOTIFY_READ`) in the *peer's* notify byte, issues a full
//! barrier and re-checks the ring (so a write that raced the request is not missed); after
//! writing (reading), a side clears that bit in its *own* byte and sends an event only if it
//! was set. The server's requests go to `cli_notify`, the client's to `srv_notify`.
//!
//! # Ordering
//!
//! Reader: `Acquire` load of the peer's `prod`, copy out, `Release` store of our `cons`.
//! Writer: `Acquire` load of the peer's `cons`, copy in, `Release` store of our `prod`.
//! A full fence (Xen's `mb()`) separates an index store from the notify-byte access that
//! follows it, and a notify request from the index re-check.
//!
//! # Liveness
//!
//! `cli_live`/`srv_live` are 0 (closed), 1 (live) or, for `cli_live`, 2 (client not yet
//! connected); anything else is a protocol violation. A closed peer's remaining data can
//! still be read. A peer *domain* that dies without closing (no one clears its flag) is
//! detected by asking xenstore whether the domain still exists whenever a wait has seen no
//! event for [`liveness_interval`](ServerConfig::liveness_interval); the same periodic
//! re-check makes a lost notification cost a delay, never a hang.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use core::time::Duration;

use xen_platform::{
    Access, DomId, EventChannels, GrantMap, GrantRef, GrantShare, Granted, Mapping, PageAlloc,
    PageMemory, Port, Timers, timeout, timeout_at,
};
use xen_ring::mem::full_fence;
use xen_ring::{ReadOnlyMem, SharedMem};

use crate::error::{Error, PeerError};
use crate::layout::{self, Geometry, Placement};
use crate::store::{VchanStore, parse_decimal, valid_port_name, vchan_path};

/// What a platform must offer for vchan: pages, grants both ways, event channels, timers.
pub trait VchanPlatform: PageAlloc + GrantShare + GrantMap + EventChannels + Timers {}

impl<T> VchanPlatform for T where T: PageAlloc + GrantShare + GrantMap + EventChannels + Timers {}

/// How long a wait goes without an event before checking that the peer domain still exists.
pub const DEFAULT_LIVENESS_INTERVAL: Duration = Duration::from_secs(1);

/// Server parameters.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Minimum size of the ring the server reads (the client writes): "left".
    pub read_min: usize,
    /// Minimum size of the ring the server writes (the client reads): "right".
    pub write_min: usize,
    /// Ring orders to use instead of deriving them from the sizes (left, right), e.g. to
    /// force page rings; validated like a peer's.
    pub orders: Option<(u8, u8)>,
    /// See the module docs; `None` disables peer-death detection and lost-event recovery.
    pub liveness_interval: Option<Duration>,
}

impl Default for ServerConfig {
    /// libxenvchan's tools' defaults: in-page rings (1 KiB read, 2 KiB write).
    fn default() -> Self {
        ServerConfig {
            read_min: 1024,
            write_min: 2048,
            orders: None,
            liveness_interval: Some(DEFAULT_LIVENESS_INTERVAL),
        }
    }
}

/// Client parameters.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// How long to wait for the server's xenstore entries (libxenvchan's client does not
    /// wait; `vchan-socket-proxy` retries forever).
    pub connect_timeout: Duration,
    /// See [`ServerConfig::liveness_interval`].
    pub liveness_interval: Option<Duration>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(10),
            liveness_interval: Some(DEFAULT_LIVENESS_INTERVAL),
        }
    }
}

/// Which end of the channel we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Shares the pages, allocates the port, writes xenstore; reads "left", writes "right".
    Server,
    /// Maps the pages, binds the port; writes "left", reads "right".
    Client,
}

/// The peer as its live flag says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// The client has not connected yet (server side only).
    Waiting,
    /// Connected.
    Live,
    /// Closed (its remaining data can still be read).
    Closed,
}

enum Pages<P: GrantShare + GrantMap> {
    Server {
        ctrl: P::Granted,
        left: Option<P::Granted>,
        right: Option<P::Granted>,
    },
    Client {
        ctrl: P::Mapping,
        left: Option<P::Mapping>,
        right: Option<P::Mapping>,
    },
}

/// Per-role offsets into the control page.
#[derive(Clone, Copy)]
struct Offsets {
    /// `ring_shared` of the ring we read.
    rx: usize,
    /// `ring_shared` of the ring we write.
    tx: usize,
    /// Our notify byte: bits the peer set to hear about our actions.
    own_notify: usize,
    /// The peer's notify byte: where we request notifications.
    peer_notify: usize,
    own_live: usize,
    peer_live: usize,
}

impl Offsets {
    fn of(role: Role) -> Offsets {
        match role {
            Role::Server => Offsets {
                rx: layout::LEFT,
                tx: layout::RIGHT,
                own_notify: layout::SRV_NOTIFY,
                peer_notify: layout::CLI_NOTIFY,
                own_live: layout::SRV_LIVE,
                peer_live: layout::CLI_LIVE,
            },
            Role::Client => Offsets {
                rx: layout::RIGHT,
                tx: layout::LEFT,
                own_notify: layout::CLI_NOTIFY,
                peer_notify: layout::SRV_NOTIFY,
                own_live: layout::CLI_LIVE,
                peer_live: layout::SRV_LIVE,
            },
        }
    }
}

/// One end of a vchan: a bidirectional byte stream (and packet channel) with a peer domain.
///
/// Operations take `&mut self`: one operation at a time per endpoint (use
/// [`wait`](Self::wait) plus the `try_*` methods to serve both directions from one loop).
pub struct Vchan<'p, P: VchanPlatform, S: VchanStore> {
    platform: &'p P,
    store: S,
    role: Role,
    peer: DomId,
    port: Port,
    pages: Option<Pages<P>>,
    geometry: Geometry,
    off: Offsets,
    /// Our consumer index of the ring we read.
    rx_pos: u32,
    /// Our producer index of the ring we write.
    tx_pos: u32,
    broken: Option<PeerError>,
    peer_died: bool,
    liveness: Option<Duration>,
    /// The server's xenstore directory, removed by `close`.
    dir: Option<String>,
    shut: bool,
}

impl<P: VchanPlatform, S: VchanStore> core::fmt::Debug for Vchan<'_, P, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Vchan")
            .field("role", &self.role)
            .field("peer", &self.peer)
            .field("port", &self.port)
            .field("geometry", &self.geometry)
            .field("broken", &self.broken)
            .finish()
    }
}

fn ring_name(off: usize) -> &'static str {
    if off == layout::LEFT { "left" } else { "right" }
}

impl<'p, P: VchanPlatform, S: VchanStore> Vchan<'p, P, S> {
    /// Starts a server for `client` on the conventional path
    /// `/local/domain/<us>/data/vchan/<client>/<port_name>`. Returns at once (like
    /// `libxenvchan_server_init`); the client connects later ([`wait_connected`](Self::wait_connected)).
    pub async fn server(
        platform: &'p P,
        store: S,
        client: DomId,
        port_name: &str,
        config: ServerConfig,
    ) -> Result<Self, Error> {
        if !valid_port_name(port_name) {
            return Err(Error::InvalidConfig(
                "port name must be a xenstore path element",
            ));
        }
        let me = store.own_domid().await?;
        let dir = vchan_path(me, client, port_name);
        Self::server_at(platform, store, me, client, &dir, config).await
    }

    /// Like [`server`](Self::server) with an explicit xenstore directory (libxenvchan's
    /// `xs_path`) and our own domain id.
    pub async fn server_at(
        platform: &'p P,
        store: S,
        me: DomId,
        client: DomId,
        dir: &str,
        config: ServerConfig,
    ) -> Result<Self, Error> {
        let geometry = match config.orders {
            Some((l, r)) => Geometry::new(l.into(), r.into()),
            None => Geometry::for_sizes(config.read_min, config.write_min),
        }
        .map_err(|_| {
            Error::InvalidConfig("ring orders must be 10..=20, not both in-page in one slot")
        })?;
        let port = platform.alloc_unbound(client)?;
        let (pages, ring_ref) = match Self::share(platform, client, &geometry) {
            Ok(shared) => shared,
            Err(e) => {
                let _ = platform.close(port);
                return Err(e);
            }
        };
        let entries = [
            ("ring-ref", ring_ref.0.to_string()),
            ("event-channel", port.0.to_string()),
        ];
        if let Err(e) = store.publish(dir, &entries, me, client).await {
            let _ = platform.close(port);
            return Err(e.into());
        }
        log::debug!("vchan: serving {client} at {dir} ({geometry:?})");
        Ok(Vchan {
            platform,
            store,
            role: Role::Server,
            peer: client,
            port,
            pages: Some(pages),
            geometry,
            off: Offsets::of(Role::Server),
            rx_pos: 0,
            tx_pos: 0,
            broken: None,
            peer_died: false,
            liveness: config.liveness_interval,
            dir: Some(dir.into()),
            shut: false,
        })
    }

    /// Grants the control page and the page rings, and initialises the control page.
    /// Returns the pages and the control page's grant reference.
    fn share(p: &P, client: DomId, g: &Geometry) -> Result<(Pages<P>, GrantRef), Error> {
        let ctrl = p.share_pages(1, client, Access::ReadWrite)?;
        let ring_ref =
            *ctrl
                .refs()
                .first()
                .ok_or(Error::Platform(xen_platform::Error::InvalidArgument {
                    op: xen_platform::Op::Grant,
                }))?;
        let share_ring = |placement: Placement, access| match placement {
            Placement::Pages { pages, .. } => p.share_pages(pages, client, access).map(Some),
            Placement::InPage { .. } => Ok(None),
        };
        let left = share_ring(g.left, Access::ReadWrite)?;
        // The client only reads the right ring (libxenvchan maps it PROT_READ).
        let right = share_ring(g.right, Access::ReadOnly)?;
        let m = ctrl.mem();
        // The pages come zeroed: indices, notify bits and srv_notify start at 0.
        m.store_u16(layout::LEFT_ORDER, g.left_order.into(), Ordering::Relaxed)?;
        m.store_u16(layout::RIGHT_ORDER, g.right_order.into(), Ordering::Relaxed)?;
        let refs = left
            .iter()
            .chain(right.iter())
            .flat_map(|granted| granted.refs().iter());
        for (i, gref) in refs.enumerate() {
            m.store_u32(layout::GRANTS + 4 * i, gref.0, Ordering::Relaxed)?;
        }
        m.store_u8(layout::CLI_LIVE, layout::LIVE_WAITING, Ordering::Relaxed)?;
        // We want to hear about the client's writes from the start.
        m.store_u8(layout::CLI_NOTIFY, layout::NOTIFY_WRITE, Ordering::Relaxed)?;
        m.store_u8(layout::SRV_LIVE, layout::LIVE, Ordering::Release)?;
        Ok((Pages::Server { ctrl, left, right }, ring_ref))
    }

    /// Connects to `server`'s channel `port_name` for us, on the conventional path, waiting
    /// up to `config.connect_timeout` for the server to appear.
    pub async fn client(
        platform: &'p P,
        store: S,
        server: DomId,
        port_name: &str,
        config: ClientConfig,
    ) -> Result<Self, Error> {
        if !valid_port_name(port_name) {
            return Err(Error::InvalidConfig(
                "port name must be a xenstore path element",
            ));
        }
        let deadline = platform.now() + config.connect_timeout;
        let me = timeout_at(platform, deadline, store.own_domid())
            .await
            .map_err(|_| Error::ConnectTimeout)??;
        let dir = vchan_path(server, me, port_name);
        Self::client_at(platform, store, server, &dir, config).await
    }

    /// Like [`client`](Self::client) with an explicit xenstore directory.
    pub async fn client_at(
        platform: &'p P,
        store: S,
        server: DomId,
        dir: &str,
        config: ClientConfig,
    ) -> Result<Self, Error> {
        let deadline = platform.now() + config.connect_timeout;
        let (gref, remote_port) = timeout_at(platform, deadline, Self::find(platform, &store, dir))
            .await
            .map_err(|_| Error::ConnectTimeout)??;
        let port = platform.bind_interdomain(server, remote_port)?;
        match Self::attach(platform, server, gref) {
            Ok((pages, geometry, tx_pos, rx_pos)) => {
                let v = Vchan {
                    platform,
                    store,
                    role: Role::Client,
                    peer: server,
                    port,
                    pages: Some(pages),
                    geometry,
                    off: Offsets::of(Role::Client),
                    rx_pos,
                    tx_pos,
                    broken: None,
                    peer_died: false,
                    liveness: config.liveness_interval,
                    dir: None,
                    shut: false,
                };
                let c = v.ctrl();
                c.store_u8(layout::SRV_NOTIFY, layout::NOTIFY_WRITE, Ordering::Relaxed)?;
                c.store_u8(layout::CLI_LIVE, layout::LIVE, Ordering::Release)?;
                full_fence();
                platform.notify(port)?;
                log::debug!("vchan: connected to {server} at {dir} ({geometry:?})");
                Ok(v)
            }
            Err(e) => {
                let _ = platform.close(port);
                Err(e)
            }
        }
    }

    /// Polls xenstore until both advertisement keys exist (the caller bounds the time).
    async fn find(p: &P, store: &S, dir: &str) -> Result<(GrantRef, Port), Error> {
        let ring_ref = alloc::format!("{dir}/ring-ref");
        let event_channel = alloc::format!("{dir}/event-channel");
        let mut backoff = Duration::from_millis(1);
        loop {
            let r = not_yet_as_none(store.read(&ring_ref).await)?;
            let e = not_yet_as_none(store.read(&event_channel).await)?;
            if let (Some(r), Some(e)) = (r, e) {
                let gref = parse_decimal(&r)
                    .filter(|&g| g != 0)
                    .ok_or(Error::BadAdvertisement { key: "ring-ref" })?;
                let port =
                    parse_decimal(&e)
                        .filter(|&p| p != 0)
                        .ok_or(Error::BadAdvertisement {
                            key: "event-channel",
                        })?;
                return Ok((GrantRef(gref), Port(port)));
            }
            xen_platform::sleep(p, backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(100));
        }
    }

    /// Maps the server's pages, validating everything read from the control page once.
    /// Returns the pages, the geometry and our initial (tx, rx) indices.
    fn attach(
        p: &P,
        server: DomId,
        gref: GrantRef,
    ) -> Result<(Pages<P>, Geometry, u32, u32), Error> {
        let ctrl = p.map(server, &[gref], Access::ReadWrite)?;
        let c = ctrl
            .mem()
            .ok_or(Error::Platform(xen_platform::Error::InvalidArgument {
                op: xen_platform::Op::Map,
            }))?;
        let left_order = c.load_u16(layout::LEFT_ORDER, Ordering::Relaxed)?;
        let right_order = c.load_u16(layout::RIGHT_ORDER, Ordering::Relaxed)?;
        let g = Geometry::new(left_order, right_order).map_err(PeerError::Orders)?;
        let grants = (0..g.grant_count())
            .map(|i| {
                c.load_u32(layout::GRANTS + 4 * i, Ordering::Relaxed)
                    .map(GrantRef)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let map_ring = |placement: Placement, access| match placement {
            Placement::Pages { first, pages } => p
                .map(server, &grants[first..first + pages], access)
                .map(Some),
            Placement::InPage { .. } => Ok(None),
        };
        let left = map_ring(g.left, Access::ReadWrite)?;
        let right = map_ring(g.right, Access::ReadOnly)?;
        if let Some(m) = &left {
            if m.mem().is_none() {
                return Err(Error::Platform(xen_platform::Error::InvalidArgument {
                    op: xen_platform::Op::Map,
                }));
            }
        }
        let srv_live = c.load_u8(layout::SRV_LIVE, Ordering::Acquire)?;
        if srv_live != layout::LIVE {
            return Err(PeerError::ServerNotLive { srv_live }.into());
        }
        let check = |shr: usize, size: u32| -> Result<(u32, u32), Error> {
            let cons = c.load_u32(shr + layout::CONS, Ordering::Acquire)?;
            let prod = c.load_u32(shr + layout::PROD, Ordering::Acquire)?;
            if prod.wrapping_sub(cons) > size {
                return Err(PeerError::IndexOutOfRange {
                    ring: ring_name(shr),
                    prod,
                    cons,
                    size,
                }
                .into());
            }
            Ok((cons, prod))
        };
        let (_, tx_pos) = check(layout::LEFT, g.left_size())?;
        let (rx_pos, _) = check(layout::RIGHT, g.right_size())?;
        Ok((Pages::Client { ctrl, left, right }, g, tx_pos, rx_pos))
    }

    // ---- accessors ----

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The peer domain.
    pub fn peer(&self) -> DomId {
        self.peer
    }

    /// Our event-channel port.
    pub fn port(&self) -> Port {
        self.port
    }

    /// Ring orders and placements.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// The server's xenstore directory (server only).
    pub fn xenstore_dir(&self) -> Option<&str> {
        self.dir.as_deref()
    }

    /// Size of the ring we read.
    pub fn read_ring_size(&self) -> u32 {
        match self.role {
            Role::Server => self.geometry.left_size(),
            Role::Client => self.geometry.right_size(),
        }
    }

    /// Size of the ring we write.
    pub fn write_ring_size(&self) -> u32 {
        match self.role {
            Role::Server => self.geometry.right_size(),
            Role::Client => self.geometry.left_size(),
        }
    }

    /// The control page as we granted it (server), for platform-specific set-up such as
    /// Linux's unmap notification (`xen_linux::LinuxGranted::set_unmap_notify` on
    /// [`own_live_offset`](Self::own_live_offset), as libxenvchan does): then a process
    /// that dies without closing still clears its live flag.
    pub fn control_granted(&self) -> Option<&P::Granted> {
        match self.pages.as_ref() {
            Some(Pages::Server { ctrl, .. }) => Some(ctrl),
            _ => None,
        }
    }

    /// The control page as we mapped it (client); see [`control_granted`](Self::control_granted).
    pub fn control_mapping(&self) -> Option<&P::Mapping> {
        match self.pages.as_ref() {
            Some(Pages::Client { ctrl, .. }) => Some(ctrl),
            _ => None,
        }
    }

    /// Offset of our live flag in the control page (`srv_live` or `cli_live`).
    pub fn own_live_offset(&self) -> usize {
        self.off.own_live
    }

    /// The protocol violation that broke the channel, if any.
    pub fn broken(&self) -> Option<PeerError> {
        self.broken
    }

    // ---- views ----

    fn ctrl(&self) -> SharedMem<'_> {
        match self.pages.as_ref() {
            Some(Pages::Server { ctrl, .. }) => ctrl.mem(),
            Some(Pages::Client { ctrl, .. }) => ctrl.mem().unwrap_or_else(|| ctrl_ro_never(ctrl)),
            None => empty_mem(),
        }
    }

    fn in_page(&self, placement: Placement, size: u32) -> Result<SharedMem<'_>, Error> {
        match placement {
            Placement::InPage { offset } => Ok(self.ctrl().sub(offset, size as usize)?),
            Placement::Pages { .. } => Err(Error::Layout(xen_ring::OutOfBounds {
                offset: 0,
                len: size as usize,
                region_len: 0,
            })),
        }
    }

    /// The data of the ring we read.
    fn rx_data(&self) -> Result<ReadOnlyMem<'_>, Error> {
        let size = self.read_ring_size();
        let (placement, ring) = match (self.role, self.pages.as_ref()) {
            (Role::Server, Some(Pages::Server { left, .. })) => {
                (self.geometry.left, left.as_ref().map(|g| g.mem()))
            }
            (Role::Client, Some(Pages::Client { right, .. })) => {
                let ro = right.as_ref().map(|m| m.mem_ro());
                return match ro {
                    Some(ro) => Ok(ro),
                    None => Ok(ReadOnlyMem::new(self.in_page(self.geometry.right, size)?)),
                };
            }
            _ => return Err(Error::Closed),
        };
        match ring {
            Some(mem) => Ok(ReadOnlyMem::new(mem)),
            None => Ok(ReadOnlyMem::new(self.in_page(placement, size)?)),
        }
    }

    /// The data of the ring we write.
    fn tx_data(&self) -> Result<SharedMem<'_>, Error> {
        let size = self.write_ring_size();
        let (placement, ring) = match (self.role, self.pages.as_ref()) {
            (Role::Server, Some(Pages::Server { right, .. })) => {
                (self.geometry.right, right.as_ref().map(|g| g.mem()))
            }
            (Role::Client, Some(Pages::Client { left, .. })) => {
                (self.geometry.left, left.as_ref().and_then(|m| m.mem()))
            }
            _ => return Err(Error::Closed),
        };
        match ring {
            Some(mem) => Ok(mem),
            None => self.in_page(placement, size),
        }
    }

    // ---- ring primitives ----

    fn check_usable(&self) -> Result<(), Error> {
        match self.broken {
            Some(e) => Err(e.into()),
            None if self.shut => Err(Error::Closed),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: PeerError) -> Error {
        log::warn!("vchan: closing channel with {}: {e}", self.peer);
        self.broken = Some(e);
        e.into()
    }

    /// Bytes readable now (no notification request).
    fn rx_ready(&mut self) -> Result<u32, Error> {
        self.check_usable()?;
        let shr = self.off.rx;
        let prod = self
            .ctrl()
            .load_u32(shr + layout::PROD, Ordering::Acquire)?;
        let ready = prod.wrapping_sub(self.rx_pos);
        let size = self.read_ring_size();
        if ready > size {
            return Err(self.fail(PeerError::IndexOutOfRange {
                ring: ring_name(shr),
                prod,
                cons: self.rx_pos,
                size,
            }));
        }
        Ok(ready)
    }

    /// Bytes writable now (no notification request).
    fn tx_space(&mut self) -> Result<u32, Error> {
        self.check_usable()?;
        let shr = self.off.tx;
        let cons = self
            .ctrl()
            .load_u32(shr + layout::CONS, Ordering::Acquire)?;
        let used = self.tx_pos.wrapping_sub(cons);
        let size = self.write_ring_size();
        if used > size {
            return Err(self.fail(PeerError::IndexOutOfRange {
                ring: ring_name(shr),
                prod: self.tx_pos,
                cons,
                size,
            }));
        }
        Ok(size - used)
    }

    /// Asks the peer for a notification (`bit`), then orders the request before the
    /// caller's re-check of the indices.
    fn request_notify(&self, bit: u8) -> Result<(), Error> {
        self.ctrl()
            .fetch_or_u8(self.off.peer_notify, bit, Ordering::SeqCst)?;
        full_fence();
        Ok(())
    }

    /// After publishing an index: notifies the peer if it asked for `bit`.
    fn send_notify(&self, bit: u8) -> Result<(), Error> {
        full_fence();
        let prev = self
            .ctrl()
            .fetch_and_u8(self.off.own_notify, !bit, Ordering::SeqCst)?;
        if prev & bit != 0 {
            self.platform.notify(self.port)?;
        }
        Ok(())
    }

    fn rx_ready_requesting(&mut self, want: u32) -> Result<u32, Error> {
        let ready = self.rx_ready()?;
        if ready >= want {
            return Ok(ready);
        }
        self.request_notify(layout::NOTIFY_WRITE)?;
        self.rx_ready()
    }

    fn tx_space_requesting(&mut self, want: u32) -> Result<u32, Error> {
        let space = self.tx_space()?;
        if space >= want {
            return Ok(space);
        }
        self.request_notify(layout::NOTIFY_READ)?;
        self.tx_space()
    }

    /// Copies `buf.len()` (<= ready) bytes out, publishes `cons`, notifies if asked.
    fn take(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        let size = self.read_ring_size();
        let start = (self.rx_pos & (size - 1)) as usize;
        let first = buf.len().min(size as usize - start);
        {
            let data = self.rx_data()?;
            data.read(start, &mut buf[..first])?;
            data.read(0, &mut buf[first..])?;
        }
        self.rx_pos = self.rx_pos.wrapping_add(buf.len() as u32);
        self.ctrl()
            .store_u32(self.off.rx + layout::CONS, self.rx_pos, Ordering::Release)?;
        self.send_notify(layout::NOTIFY_READ)
    }

    /// Copies `buf` (<= space) in, publishes `prod`, notifies if asked.
    fn put(&mut self, buf: &[u8]) -> Result<(), Error> {
        let size = self.write_ring_size();
        let start = (self.tx_pos & (size - 1)) as usize;
        let first = buf.len().min(size as usize - start);
        {
            let data = self.tx_data()?;
            data.write(start, &buf[..first])?;
            data.write(0, &buf[first..])?;
        }
        self.tx_pos = self.tx_pos.wrapping_add(buf.len() as u32);
        self.ctrl()
            .store_u32(self.off.tx + layout::PROD, self.tx_pos, Ordering::Release)?;
        self.send_notify(layout::NOTIFY_WRITE)
    }

    /// The peer's live flag, validated.
    pub fn peer_state(&mut self) -> Result<PeerState, Error> {
        self.check_usable()?;
        let value = self.ctrl().load_u8(self.off.peer_live, Ordering::Acquire)?;
        match (value, self.role) {
            (layout::LIVE_CLOSED, _) => Ok(PeerState::Closed),
            (layout::LIVE, _) => Ok(PeerState::Live),
            (layout::LIVE_WAITING, Role::Server) => Ok(PeerState::Waiting),
            (value, role) => Err(self.fail(PeerError::BadLiveFlag {
                flag: if role == Role::Server {
                    "cli_live"
                } else {
                    "srv_live"
                },
                value,
            })),
        }
    }

    /// Closed or dead peer as an error for operations that need a live peer.
    fn require_open(&mut self) -> Result<(), Error> {
        if self.peer_died {
            return Err(Error::PeerDied { domid: self.peer });
        }
        match self.peer_state()? {
            PeerState::Closed => Err(Error::Closed),
            PeerState::Live | PeerState::Waiting => Ok(()),
        }
    }

    /// Waits for an event from the peer (or a liveness check: see the module docs). May
    /// return without an event; callers re-check the rings.
    pub async fn wait(&mut self) -> Result<(), Error> {
        self.check_usable()?;
        if self.peer_died {
            return Err(Error::PeerDied { domid: self.peer });
        }
        let p = self.platform;
        match self.liveness {
            None => p.wait(self.port).await?,
            Some(interval) => match timeout(p, interval, p.wait(self.port)).await {
                Ok(r) => r?,
                Err(_) => match self.store.domain_exists(self.peer).await {
                    Ok(true) => {}
                    Ok(false) => {
                        log::warn!("vchan: peer {} is gone", self.peer);
                        self.peer_died = true;
                    }
                    // xenstore trouble is not the channel's: keep going, check again later.
                    Err(e) => log::debug!("vchan: liveness check of {} failed: {e}", self.peer),
                },
            },
        }
        Ok(())
    }

    // ---- public data path ----

    /// Bytes that can be read now. Like `libxenvchan_data_ready`, asks the peer to notify
    /// us of its next write.
    pub fn data_ready(&mut self) -> Result<usize, Error> {
        self.request_notify(layout::NOTIFY_WRITE)?;
        Ok(self.rx_ready()? as usize)
    }

    /// Bytes that can be written now. Like `libxenvchan_buffer_space`, asks the peer to
    /// notify us when it consumes.
    pub fn buffer_space(&mut self) -> Result<usize, Error> {
        self.request_notify(layout::NOTIFY_READ)?;
        Ok(self.tx_space()? as usize)
    }

    /// Reads what is available now, up to `buf.len()`, without waiting. `Ok(0)`: nothing
    /// available (see [`read`](Self::read) for end of stream).
    pub fn try_read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        let ready = self.rx_ready_requesting(1)? as usize;
        let n = ready.min(buf.len());
        if n > 0 {
            self.take(&mut buf[..n])?;
        }
        Ok(n)
    }

    /// Reads at least one byte (up to `buf.len()`), waiting for data. `Ok(0)` at the end of
    /// the stream: the peer closed and everything it wrote has been read.
    /// [`Error::PeerDied`] once a dead peer's data is drained.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.try_read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            match self.require_open() {
                Ok(()) => {}
                // The peer may have written just before closing: the flag is loaded
                // (Acquire) before this re-check, so such data is visible now.
                Err(e) => {
                    let n = self.try_read(buf)?;
                    return if n > 0 {
                        Ok(n)
                    } else if e == Error::Closed {
                        Ok(0)
                    } else {
                        Err(e)
                    };
                }
            }
            self.wait().await?;
        }
    }

    /// Reads exactly `buf.len()` bytes, possibly in several pieces (a stream read).
    /// [`Error::Closed`] if the stream ends first.
    pub async fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        let mut done = 0;
        while done < buf.len() {
            match self.read(&mut buf[done..]).await? {
                0 => return Err(Error::Closed),
                n => done += n,
            }
        }
        Ok(())
    }

    /// Writes what fits now, up to `buf.len()`, without waiting.
    pub fn try_write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.require_open()?;
        let space = self.tx_space_requesting(1)? as usize;
        let n = space.min(buf.len());
        if n > 0 {
            self.put(&buf[..n])?;
        }
        Ok(n)
    }

    /// Writes at least one byte (up to `buf.len()`), waiting for space.
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.try_write(buf)?;
            if n > 0 {
                return Ok(n);
            }
            self.wait().await?;
        }
    }

    /// Writes all of `buf`, in as many pieces as needed.
    pub async fn write_all(&mut self, buf: &[u8]) -> Result<(), Error> {
        let mut done = 0;
        while done < buf.len() {
            done += self.write(&buf[done..]).await?;
        }
        Ok(())
    }

    /// Writes `packet` whole or not at all, without waiting: `Ok(false)` if it does not fit
    /// now (`libxenvchan_send` in non-blocking mode).
    pub fn try_send(&mut self, packet: &[u8]) -> Result<bool, Error> {
        let size = self.write_ring_size();
        if packet.len() > size as usize {
            return Err(Error::PacketTooLarge {
                len: packet.len(),
                ring_size: size,
            });
        }
        self.require_open()?;
        if (self.tx_space_requesting(packet.len() as u32)? as usize) < packet.len() {
            return Ok(false);
        }
        self.put(packet)?;
        Ok(true)
    }

    /// Writes `packet` whole, waiting until the ring has room for all of it
    /// (`libxenvchan_send` in blocking mode).
    pub async fn send(&mut self, packet: &[u8]) -> Result<(), Error> {
        while !self.try_send(packet)? {
            self.wait().await?;
        }
        Ok(())
    }

    /// Reads exactly `buf.len()` bytes if that many are available now, else nothing
    /// (`libxenvchan_recv` in non-blocking mode).
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<bool, Error> {
        let size = self.read_ring_size();
        if buf.len() > size as usize {
            return Err(Error::PacketTooLarge {
                len: buf.len(),
                ring_size: size,
            });
        }
        if (self.rx_ready_requesting(buf.len() as u32)? as usize) < buf.len() {
            return Ok(false);
        }
        self.take(buf)?;
        Ok(true)
    }

    /// Reads exactly `buf.len()` bytes in one piece, waiting until all are available
    /// (`libxenvchan_recv` in blocking mode). [`Error::Closed`] if the peer closes before
    /// the packet is complete (nothing is consumed then).
    pub async fn recv(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        loop {
            if self.try_recv(buf)? {
                return Ok(());
            }
            if let Err(e) = self.require_open() {
                return if self.try_recv(buf)? { Ok(()) } else { Err(e) };
            }
            self.wait().await?;
        }
    }

    /// Server: waits until the client has connected (`cli_live` 1). [`Error::Closed`] if it
    /// connected and left already. Bound the wait with `xen_platform::timeout`.
    pub async fn wait_connected(&mut self) -> Result<(), Error> {
        loop {
            if self.peer_died {
                return Err(Error::PeerDied { domid: self.peer });
            }
            match self.peer_state()? {
                PeerState::Live => return Ok(()),
                PeerState::Closed => return Err(Error::Closed),
                PeerState::Waiting => self.wait().await?,
            }
        }
    }

    /// Closes the channel: clears our live flag, notifies the peer, closes the port,
    /// releases the pages and (server) removes the xenstore entries.
    pub async fn close(mut self) -> Result<(), Error> {
        self.shutdown();
        match self.dir.take() {
            Some(dir) => Ok(self.store.remove(&dir).await?),
            None => Ok(()),
        }
    }

    /// The synchronous part of closing (also run on drop).
    fn shutdown(&mut self) {
        if self.shut {
            return;
        }
        if self.pages.is_some() {
            let _ = self
                .ctrl()
                .store_u8(self.off.own_live, layout::LIVE_CLOSED, Ordering::Release);
            full_fence();
            let _ = self.platform.notify(self.port);
        }
        // Unmapped (client) or access ended / quarantined while still mapped (server).
        // Before closing the port, as libxenvchan does: an unmap notification set up on
        // the page may still send on it.
        self.pages = None;
        let _ = self.platform.close(self.port);
        self.shut = true;
    }
}

impl<P: VchanPlatform, S: VchanStore> Drop for Vchan<'_, P, S> {
    /// Closes like [`Vchan::close`] except for the server's xenstore entries, which need an
    /// async request: call `close` to remove them.
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Before the server has published its keys (with read access for us), xenstored answers
/// a read of the missing node under the server's home with `EACCES`, not `ENOENT` (it does
/// not reveal what exists where we may not look): both mean "not there yet".
fn not_yet_as_none(
    r: Result<Option<Vec<u8>>, xenstore::Error>,
) -> Result<Option<Vec<u8>>, xenstore::Error> {
    match r {
        Err(xenstore::Error::Xenstore(xenstore::ErrorCode::EACCES)) => Ok(None),
        other => other,
    }
}

/// A client control page is always mapped read-write (`attach` checks); this keeps `ctrl`
/// total without a panic path if a platform ever broke that.
fn ctrl_ro_never<M: Mapping>(_: &M) -> SharedMem<'static> {
    empty_mem()
}

fn empty_mem() -> SharedMem<'static> {
    // SAFETY: a zero-length region: every access is rejected by the bounds check, so the
    // dangling (but non-null, 4-aligned) pointer is never dereferenced.
    unsafe { SharedMem::from_raw_parts(core::ptr::NonNull::<u32>::dangling().cast(), 0) }
}
