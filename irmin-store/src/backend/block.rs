//! A store on a raw block device: an append-only log of checksummed records (`no_std`).
//!
//! ## Layout
//! ```text
//! sector 0        superblock: "IRMINLOG", version, sector size, generation, CRC-32
//! sector 1...     records, each starting on a sector boundary:
//!                 header (40 bytes, little endian)
//!                   0  magic "IRLR"     4  kind (1 object, 2 ref, 3 HEAD) + 3 pad
//!                   8  generation       16 sequence number (0, 1, 2, ...)
//!                   24 payload length   28 CRC of the previous record (0 for the first)
//!                   32 CRC-32 of header[0..32] ++ payload      36 reserved (0)
//!                 payload
//!                   object: kind (1 byte) | id (20) | body
//!                   ref:    name length (u16) | name | present (1) | id (20)
//!                   HEAD:   target ref name
//! ```
//! Recovery reads the log from sector 1 and stops at the first record whose magic,
//! generation, sequence number, CRC or back-link CRC is wrong: that is the end of the log
//! (a torn or never-completed write). The back-link chains each record to its
//! predecessor, so a stale record left beyond the tail by an earlier, lost append can
//! never be mistaken for a continuation of the log rewritten since. Because a ref record is appended after the objects it needs
//! and scanning stops at the first bad record, a recovered ref never points at a lost
//! object, however the device reordered or tore unflushed writes. A ref update returns
//! only after the device's flush, so an acknowledged commit survives power loss.
//!
//! Objects are appended to a write buffer and reach the device at the next barrier (a
//! ref update or [`Backend::sync_objects`]) or when the buffer fills. Space is never
//! reclaimed (no compaction yet): the device must be sized for the history kept.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use super::{Backend, RawObject};
use crate::error::{Error, Result};
use crate::hash::{ObjectId, hash_object};
use crate::object::ObjectKind;

/// An error reported by a block device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceError(pub String);

/// A block device: fixed-size sectors, read/write at sector granularity, and a flush
/// that makes every completed write durable. Synchronous on purpose: an async driver
/// (blkfront) adapts to this by blocking its task, and the store stays runtime-agnostic.
pub trait BlockDevice {
    /// Sector size in bytes (a power of two, at least 512).
    fn sector_size(&self) -> usize;
    fn sector_count(&self) -> u64;
    /// Read `buf.len()` bytes (a multiple of the sector size) starting at `sector`.
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), DeviceError>;
    /// Write `buf.len()` bytes (a multiple of the sector size) starting at `sector`.
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), DeviceError>;
    /// Make all completed writes durable.
    fn flush(&mut self) -> Result<(), DeviceError>;
}

const SUPER_MAGIC: &[u8; 8] = b"IRMINLOG";
const VERSION: u32 = 1;
const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"IRLR");
const HEADER: usize = 40;
const KIND_OBJECT: u8 = 1;
const KIND_REF: u8 = 2;
const KIND_HEAD: u8 = 3;
/// Buffered object bytes that force a write before the next barrier.
const WRITE_BUFFER: usize = 256 * 1024;

/// A valid record read back during recovery.
struct Record {
    kind: u8,
    payload: Vec<u8>,
    sectors: u64,
    crc: u32,
}

fn dev_err(e: DeviceError) -> Error {
    Error::Device(e.0)
}

/// The log-structured store on a [`BlockDevice`].
pub struct BlockLog<D: BlockDevice> {
    device: RefCell<D>,
    sector: usize,
    generation: u64,
    /// Next sequence number and the sector where the next record goes (after `pending`).
    next_seq: u64,
    /// CRC of the last record appended (the next record's back-link).
    last_crc: u32,
    tail: u64,
    /// Sector where `pending` will be written.
    pending_at: u64,
    pending: Vec<u8>,
    /// Object id -> (record sector, payload length).
    objects: hashbrown::HashMap<ObjectId, (u64, u32)>,
    refs: BTreeMap<String, ObjectId>,
    head: String,
    /// A write or flush failed: the tail is unknown until the log is reopened.
    poisoned: bool,
}

impl<D: BlockDevice> BlockLog<D> {
    /// Write a fresh superblock (erasing the log logically: records of another
    /// generation are never read). `generation` should differ from any earlier format
    /// of the same device (e.g. random or a timestamp).
    pub fn format(mut device: D, generation: u64) -> Result<Self> {
        let sector = device.sector_size();
        if sector < 512 || !sector.is_power_of_two() || device.sector_count() < 2 {
            return Err(Error::Device("unsupported geometry".to_string()));
        }
        let mut sb = vec![0u8; sector];
        sb[..8].copy_from_slice(SUPER_MAGIC);
        sb[8..12].copy_from_slice(&VERSION.to_le_bytes());
        sb[12..16].copy_from_slice(&(sector as u32).to_le_bytes());
        sb[16..24].copy_from_slice(&generation.to_le_bytes());
        let crc = crc32fast::hash(&sb[..24]);
        sb[24..28].copy_from_slice(&crc.to_le_bytes());
        device.write(0, &sb).map_err(dev_err)?;
        // Make sure a stale record from an earlier format at sector 1 cannot continue
        // this generation's log (it has another generation, but be explicit).
        device.write(1, &vec![0u8; sector]).map_err(dev_err)?;
        device.flush().map_err(dev_err)?;
        Self::open(device)
    }

    /// Mount: read the superblock and replay the log up to its last valid record.
    pub fn open(mut device: D) -> Result<Self> {
        let sector = device.sector_size();
        if sector < 512 || !sector.is_power_of_two() {
            return Err(Error::Device("unsupported sector size".to_string()));
        }
        let mut sb = vec![0u8; sector];
        device.read(0, &mut sb).map_err(dev_err)?;
        let crc = u32::from_le_bytes([sb[24], sb[25], sb[26], sb[27]]);
        if &sb[..8] != SUPER_MAGIC || crc != crc32fast::hash(&sb[..24]) {
            return Err(Error::Device("no irmin log superblock".to_string()));
        }
        if u32::from_le_bytes([sb[8], sb[9], sb[10], sb[11]]) != VERSION {
            return Err(Error::Device("unsupported log version".to_string()));
        }
        if u32::from_le_bytes([sb[12], sb[13], sb[14], sb[15]]) as usize != sector {
            return Err(Error::Device(
                "sector size differs from format time".to_string(),
            ));
        }
        let generation = u64::from_le_bytes(sb[16..24].try_into().unwrap_or_default());
        let mut log = BlockLog {
            device: RefCell::new(device),
            sector,
            generation,
            next_seq: 0,
            last_crc: 0,
            tail: 1,
            pending_at: 1,
            pending: Vec::new(),
            objects: hashbrown::HashMap::new(),
            refs: BTreeMap::new(),
            head: "refs/heads/main".to_string(),
            poisoned: false,
        };
        log.replay()?;
        Ok(log)
    }

    pub fn into_device(self) -> D {
        self.device.into_inner()
    }

    /// The device, for fault injection in tests (writing through it bypasses the log).
    pub fn device_mut(&mut self) -> &mut D {
        self.device.get_mut()
    }

    /// Sectors used by the log so far (including the superblock).
    pub fn used_sectors(&self) -> u64 {
        self.tail
    }

    fn sectors_for(&self, bytes: usize) -> u64 {
        bytes.div_ceil(self.sector) as u64
    }

    /// Read and validate the record at `at`; `None` marks the end of the log.
    fn read_record(&self, at: u64, expect_seq: u64, prev_crc: u32) -> Result<Option<Record>> {
        let count = self.device.borrow().sector_count();
        if at >= count {
            return Ok(None);
        }
        let mut first = vec![0u8; self.sector];
        self.device
            .borrow_mut()
            .read(at, &mut first)
            .map_err(dev_err)?;
        let le32 = |b: &[u8], o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let le64 = |b: &[u8], o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        if le32(&first, 0) != RECORD_MAGIC
            || le64(&first, 8) != self.generation
            || le64(&first, 16) != expect_seq
            || le32(&first, 28) != prev_crc
        {
            return Ok(None);
        }
        let kind = first[4];
        let len = le32(&first, 24) as usize;
        let total = self.sectors_for(HEADER + len);
        if at + total > count {
            return Ok(None);
        }
        let mut rec = first;
        if total > 1 {
            rec.resize(total as usize * self.sector, 0);
            self.device
                .borrow_mut()
                .read(at + 1, &mut rec[self.sector..])
                .map_err(dev_err)?;
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&rec[..32]);
        h.update(&rec[HEADER..HEADER + len]);
        let crc = h.finalize();
        if crc != le32(&rec, 32) {
            return Ok(None);
        }
        rec.truncate(HEADER + len);
        rec.drain(..HEADER);
        Ok(Some(Record {
            kind,
            payload: rec,
            sectors: total,
            crc,
        }))
    }

    fn replay(&mut self) -> Result<()> {
        let mut at = 1;
        let mut seq = 0;
        let mut prev = 0;
        while let Some(Record {
            kind,
            payload,
            sectors,
            crc,
        }) = self.read_record(at, seq, prev)?
        {
            prev = crc;
            match kind {
                KIND_OBJECT if payload.len() >= 21 => {
                    let id = ObjectId::from_bytes(&payload[1..21])?;
                    self.objects.insert(id, (at, payload.len() as u32));
                }
                KIND_REF => {
                    let (name, id) = parse_ref_payload(&payload)
                        .ok_or_else(|| Error::Device("malformed ref record".to_string()))?;
                    match id {
                        Some(id) => self.refs.insert(name, id),
                        None => self.refs.remove(&name),
                    };
                }
                KIND_HEAD => {
                    self.head = String::from_utf8(payload)
                        .map_err(|_| Error::Device("malformed HEAD record".to_string()))?;
                }
                _ => return Err(Error::Device("unknown record kind".to_string())),
            }
            at += sectors;
            seq += 1;
        }
        self.next_seq = seq;
        self.last_crc = prev;
        self.tail = at;
        self.pending_at = at;
        Ok(())
    }

    /// Append a record to the write buffer; returns the sector it will occupy.
    fn append(&mut self, kind: u8, parts: &[&[u8]]) -> Result<u64> {
        if self.poisoned {
            return Err(Error::Device(
                "an earlier write failed; reopen the log".to_string(),
            ));
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let len32 = u32::try_from(len).map_err(|_| Error::Device("record too large".into()))?;
        let sectors = self.sectors_for(HEADER + len);
        if self.tail + sectors > self.device.borrow().sector_count() {
            return Err(Error::Device("log is full".to_string()));
        }
        let start = self.pending.len();
        self.pending.extend_from_slice(&RECORD_MAGIC.to_le_bytes());
        self.pending.extend_from_slice(&[kind, 0, 0, 0]);
        self.pending
            .extend_from_slice(&self.generation.to_le_bytes());
        self.pending.extend_from_slice(&self.next_seq.to_le_bytes());
        self.pending.extend_from_slice(&len32.to_le_bytes());
        self.pending.extend_from_slice(&self.last_crc.to_le_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&self.pending[start..start + 32]);
        for p in parts {
            h.update(p);
        }
        let crc = h.finalize();
        self.pending.extend_from_slice(&crc.to_le_bytes());
        self.pending.extend_from_slice(&[0; 4]);
        self.last_crc = crc;
        for p in parts {
            self.pending.extend_from_slice(p);
        }
        self.pending
            .resize(start + sectors as usize * self.sector, 0);
        let at = self.tail;
        self.tail += sectors;
        self.next_seq += 1;
        Ok(at)
    }

    fn write_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let res = self
            .device
            .borrow_mut()
            .write(self.pending_at, &self.pending);
        if let Err(e) = res {
            self.poisoned = true;
            return Err(dev_err(e));
        }
        self.pending.clear();
        self.pending_at = self.tail;
        Ok(())
    }

    fn barrier(&mut self) -> Result<()> {
        self.write_pending()?;
        if let Err(e) = self.device.borrow_mut().flush() {
            self.poisoned = true;
            return Err(dev_err(e));
        }
        Ok(())
    }
}

fn parse_ref_payload(p: &[u8]) -> Option<(String, Option<ObjectId>)> {
    let n = u16::from_le_bytes([*p.first()?, *p.get(1)?]) as usize;
    let name = core::str::from_utf8(p.get(2..2 + n)?).ok()?.to_string();
    let present = *p.get(2 + n)?;
    let id = ObjectId::from_bytes(p.get(3 + n..23 + n)?).ok()?;
    Some((name, if present == 1 { Some(id) } else { None }))
}

impl<D: BlockDevice> Backend for BlockLog<D> {
    fn read_object(&self, id: &ObjectId) -> Result<Option<RawObject>> {
        let Some(&(at, len)) = self.objects.get(id) else {
            return Ok(None);
        };
        // Objects still in the write buffer are read from it.
        let payload = if at >= self.pending_at {
            let off = ((at - self.pending_at) as usize) * self.sector + HEADER;
            self.pending
                .get(off..off + len as usize)
                .ok_or_else(|| Error::Device("buffer index out of range".to_string()))?
                .to_vec()
        } else {
            let total = self.sectors_for(HEADER + len as usize) as usize;
            let mut rec = vec![0u8; total * self.sector];
            self.device
                .borrow_mut()
                .read(at, &mut rec)
                .map_err(dev_err)?;
            rec[HEADER..HEADER + len as usize].to_vec()
        };
        let kind = ObjectKind::from_pack_type(payload[0])
            .ok_or_else(|| Error::Device("bad object kind in log".to_string()))?;
        let data = payload[21..].to_vec();
        let actual = hash_object(kind, &data);
        if actual != *id {
            return Err(Error::HashMismatch {
                expected: *id,
                actual,
            });
        }
        Ok(Some(RawObject { kind, data }))
    }

    fn has_object(&self, id: &ObjectId) -> Result<bool> {
        Ok(self.objects.contains_key(id))
    }

    fn write_object(&mut self, id: &ObjectId, kind: ObjectKind, data: &[u8]) -> Result<()> {
        if self.objects.contains_key(id) {
            return Ok(());
        }
        let at = self.append(KIND_OBJECT, &[&[kind as u8], id.as_bytes(), data])?;
        self.objects.insert(*id, (at, (21 + data.len()) as u32));
        if self.pending.len() >= WRITE_BUFFER {
            self.write_pending()?;
        }
        Ok(())
    }

    fn sync_objects(&mut self) -> Result<()> {
        self.barrier()
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
        let actual = self.refs.get(name).copied();
        if actual != expected {
            return Err(Error::RefChanged {
                name: name.to_string(),
                expected,
                actual,
            });
        }
        let n = u16::try_from(name.len()).map_err(|_| Error::InvalidRefName(name.to_string()))?;
        let id = new.unwrap_or(ObjectId::ZERO);
        let present = [new.is_some() as u8];
        self.append(
            KIND_REF,
            &[&n.to_le_bytes(), name.as_bytes(), &present, id.as_bytes()],
        )?;
        self.barrier()?;
        match new {
            Some(id) => self.refs.insert(name.to_string(), id),
            None => self.refs.remove(name),
        };
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
        self.append(KIND_HEAD, &[target.as_bytes()])?;
        self.barrier()?;
        self.head = target.to_string();
        Ok(())
    }
}

/// An in-memory block device for tests and simulations, with a power-loss model:
/// sectors written since the last flush may or may not survive a [`power_cut`], in any
/// combination, and a write budget makes the device fail part-way through a write.
///
/// [`power_cut`]: MemoryBlockDevice::power_cut
#[derive(Clone, Debug)]
pub struct MemoryBlockDevice {
    sector: usize,
    data: Vec<u8>,
    /// Previous contents of sectors written since the last flush.
    unflushed: BTreeMap<u64, Vec<u8>>,
    /// Sectors that may still be written before the device "loses power".
    budget: Option<u64>,
    pub flushes: u64,
}

impl MemoryBlockDevice {
    pub fn new(sector: usize, sectors: u64) -> Self {
        MemoryBlockDevice {
            sector,
            data: vec![0; sector * sectors as usize],
            unflushed: BTreeMap::new(),
            budget: None,
            flushes: 0,
        }
    }

    /// Fail every operation after `sectors` more sectors were written; the write that
    /// crosses the limit is torn (its first sectors land, the rest do not).
    pub fn fail_after(&mut self, sectors: u64) {
        self.budget = Some(sectors);
    }

    /// Power comes back: the write budget is lifted (unflushed data stays as it is).
    pub fn restore_power(&mut self) {
        self.budget = None;
    }

    /// What the disk could hold after power loss now: each sector written since the
    /// last flush independently keeps its new or old content (`seed` picks which).
    pub fn power_cut(&self, mut seed: u64) -> MemoryBlockDevice {
        let mut img = MemoryBlockDevice::new(self.sector, (self.data.len() / self.sector) as u64);
        img.data.copy_from_slice(&self.data);
        for (s, old) in &self.unflushed {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if seed & 1 == 0 {
                let o = *s as usize * self.sector;
                img.data[o..o + self.sector].copy_from_slice(old);
            }
        }
        img
    }

    fn check(&self, sector: u64, len: usize) -> Result<(), DeviceError> {
        if len % self.sector != 0 {
            return Err(DeviceError("unaligned length".into()));
        }
        let end = sector as usize * self.sector + len;
        if end > self.data.len() {
            return Err(DeviceError("beyond end of device".into()));
        }
        if self.budget == Some(0) {
            return Err(DeviceError("device lost power".into()));
        }
        Ok(())
    }
}

impl BlockDevice for MemoryBlockDevice {
    fn sector_size(&self) -> usize {
        self.sector
    }

    fn sector_count(&self) -> u64 {
        (self.data.len() / self.sector) as u64
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        self.check(sector, buf.len())?;
        let o = sector as usize * self.sector;
        buf.copy_from_slice(&self.data[o..o + buf.len()]);
        Ok(())
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), DeviceError> {
        self.check(sector, buf.len())?;
        let n = (buf.len() / self.sector) as u64;
        let allowed = self.budget.map_or(n, |b| b.min(n));
        for i in 0..allowed {
            let s = sector + i;
            let o = s as usize * self.sector;
            self.unflushed
                .entry(s)
                .or_insert_with(|| self.data[o..o + self.sector].to_vec());
            let src = &buf[i as usize * self.sector..(i as usize + 1) * self.sector];
            self.data[o..o + self.sector].copy_from_slice(src);
        }
        if let Some(b) = self.budget.as_mut() {
            *b -= allowed;
            if allowed < n {
                return Err(DeviceError("device lost power mid-write".into()));
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DeviceError> {
        if self.budget == Some(0) {
            return Err(DeviceError("device lost power".into()));
        }
        self.unflushed.clear();
        self.flushes += 1;
        Ok(())
    }
}
