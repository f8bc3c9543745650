//! The 16-byte `struct xsd_sockmsg` header and a byte-level view of one message.

use super::WireError;

/// Size of `struct xsd_sockmsg`: four native-endian `u32`s.
pub const HEADER_LEN: usize = 16;
/// `XENSTORE_PAYLOAD_MAX`: the largest payload either side may send.
pub const PAYLOAD_MAX: usize = 4096;

/// `enum xsd_sockmsg_type` of Xen 4.17 (`XS_RESTRICT`, 20, was removed and is unknown here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum MessageType {
    /// `XS_CONTROL` (formerly `XS_DEBUG`).
    Control = 0,
    Directory = 1,
    Read = 2,
    GetPerms = 3,
    Watch = 4,
    Unwatch = 5,
    TransactionStart = 6,
    TransactionEnd = 7,
    Introduce = 8,
    Release = 9,
    GetDomainPath = 10,
    Write = 11,
    Mkdir = 12,
    Rm = 13,
    SetPerms = 14,
    WatchEvent = 15,
    Error = 16,
    IsDomainIntroduced = 17,
    Resume = 18,
    SetTarget = 19,
    ResetWatches = 21,
    DirectoryPart = 22,
}

impl MessageType {
    /// Every defined type, in wire order.
    pub const ALL: [MessageType; 22] = [
        Self::Control,
        Self::Directory,
        Self::Read,
        Self::GetPerms,
        Self::Watch,
        Self::Unwatch,
        Self::TransactionStart,
        Self::TransactionEnd,
        Self::Introduce,
        Self::Release,
        Self::GetDomainPath,
        Self::Write,
        Self::Mkdir,
        Self::Rm,
        Self::SetPerms,
        Self::WatchEvent,
        Self::Error,
        Self::IsDomainIntroduced,
        Self::Resume,
        Self::SetTarget,
        Self::ResetWatches,
        Self::DirectoryPart,
    ];

    /// The name xenstored uses in its logs (`XS_` prefix dropped).
    pub fn name(self) -> &'static str {
        match self {
            Self::Control => "CONTROL",
            Self::Directory => "DIRECTORY",
            Self::Read => "READ",
            Self::GetPerms => "GET_PERMS",
            Self::Watch => "WATCH",
            Self::Unwatch => "UNWATCH",
            Self::TransactionStart => "TRANSACTION_START",
            Self::TransactionEnd => "TRANSACTION_END",
            Self::Introduce => "INTRODUCE",
            Self::Release => "RELEASE",
            Self::GetDomainPath => "GET_DOMAIN_PATH",
            Self::Write => "WRITE",
            Self::Mkdir => "MKDIR",
            Self::Rm => "RM",
            Self::SetPerms => "SET_PERMS",
            Self::WatchEvent => "WATCH_EVENT",
            Self::Error => "ERROR",
            Self::IsDomainIntroduced => "IS_DOMAIN_INTRODUCED",
            Self::Resume => "RESUME",
            Self::SetTarget => "SET_TARGET",
            Self::ResetWatches => "RESET_WATCHES",
            Self::DirectoryPart => "DIRECTORY_PART",
        }
    }
}

impl TryFrom<u32> for MessageType {
    type Error = WireError;
    fn try_from(raw: u32) -> Result<Self, WireError> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| *t as u32 == raw)
            .ok_or(WireError::UnknownMessageType(raw))
    }
}

impl core::fmt::Display for MessageType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A decoded header. `msg_type` stays raw so that a server can answer an unknown type
/// with `EINVAL` under the request's own `req_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub msg_type: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub len: u32,
}

impl Header {
    pub fn new(msg_type: MessageType, req_id: u32, tx_id: u32, len: usize) -> Self {
        Header {
            msg_type: msg_type as u32,
            req_id,
            tx_id,
            len: len as u32,
        }
    }

    /// Decodes the first [`HEADER_LEN`] bytes and checks the payload limit.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let header = Self::decode(bytes)?;
        if header.len as usize > PAYLOAD_MAX {
            return Err(WireError::PayloadTooLong(header.len as usize));
        }
        Ok(header)
    }

    /// Decodes the first [`HEADER_LEN`] bytes without checking the payload limit, for a
    /// reader that wants to skip an oversized message instead of giving up on the stream.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let raw: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(WireError::Truncated)?;
        let word = |i: usize| u32::from_ne_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
        let header = Header {
            msg_type: word(0),
            req_id: word(4),
            tx_id: word(8),
            len: word(12),
        };
        Ok(header)
    }

    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        for (i, v) in [self.msg_type, self.req_id, self.tx_id, self.len]
            .into_iter()
            .enumerate()
        {
            out[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        out
    }

    pub fn message_type(&self) -> Result<MessageType, WireError> {
        MessageType::try_from(self.msg_type)
    }

    /// Header plus payload length.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.len as usize
    }
}

/// Returns the length of the first complete message in `stream`, `None` if more bytes are
/// needed, or an error when the header announces an oversized payload (after which the
/// byte stream cannot be re-synchronised).
pub fn frame_len(stream: &[u8]) -> Result<Option<usize>, WireError> {
    if stream.len() < HEADER_LEN {
        return Ok(None);
    }
    let header = Header::parse(stream)?;
    let total = header.total_len();
    Ok((stream.len() >= total).then_some(total))
}

/// A read/write view of one message (header + payload) in a byte buffer.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may then panic on short buffers.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer, checking that it holds the whole message its header announces.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Packet { buffer };
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<(), WireError> {
        let header = Header::parse(self.buffer.as_ref())?;
        if self.buffer.as_ref().len() < header.total_len() {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    fn word(&self, index: usize) -> u32 {
        let b = &self.buffer.as_ref()[index * 4..index * 4 + 4];
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
    }

    pub fn msg_type_raw(&self) -> u32 {
        self.word(0)
    }
    pub fn msg_type(&self) -> Result<MessageType, WireError> {
        MessageType::try_from(self.word(0))
    }
    pub fn req_id(&self) -> u32 {
        self.word(1)
    }
    pub fn tx_id(&self) -> u32 {
        self.word(2)
    }
    pub fn payload_len(&self) -> usize {
        self.word(3) as usize
    }
    pub fn header(&self) -> Header {
        Header {
            msg_type: self.word(0),
            req_id: self.word(1),
            tx_id: self.word(2),
            len: self.word(3),
        }
    }
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + self.payload_len()]
    }
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_word(&mut self, index: usize, value: u32) {
        self.buffer.as_mut()[index * 4..index * 4 + 4].copy_from_slice(&value.to_ne_bytes());
    }
    pub fn set_msg_type(&mut self, value: MessageType) {
        self.set_word(0, value as u32)
    }
    pub fn set_req_id(&mut self, value: u32) {
        self.set_word(1, value)
    }
    pub fn set_tx_id(&mut self, value: u32) {
        self.set_word(2, value)
    }
    pub fn set_payload_len(&mut self, value: usize) {
        self.set_word(3, value as u32)
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.payload_len();
        &mut self.buffer.as_mut()[HEADER_LEN..HEADER_LEN + len]
    }
}
