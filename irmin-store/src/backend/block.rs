//! A store on a raw block device: an append-only log of checksummed records (`no_std`).
//!
//! ## Layout
//! ```text
//! sectors 0, 1    superblock copies: "IRMINLOG", version 2, sector size, generation,
//!                 region start, region length, CRC-32. The valid copy with the highest
//!                 generation wins; generation g lives in copy g % 2.
//! sectors 2...    two equal regions; the superblock names the active one. In it,
//!                 records, each starting on a sector boundary:
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
//! Recovery reads the active region from its start and stops at the first record whose magic,
//! generation, sequence number, CRC or back-link CRC is wrong: that is the end of the log
//! (a torn or never-completed write). The back-link chains each record to its
//! predecessor, so a stale record left beyond the tail by an earlier, lost append can
//! never be mistaken for a continuation of the log rewritten since. Because a ref record is appended after the objects it needs
//! and scanning stops at the first bad record, a recovered ref never points at a lost
//! object, however the device reordered or tore unflushed writes. A ref update returns
//! only after the device's flush, so an acknowledged commit survives power loss.
//!
//! Objects are appended to a write buffer and reach the device at the next barrier (a
//! ref update or [`Backend::sync_objects`]) or when the buffer fills.
//!
//! ## Compaction
//! [`BlockLog::compact`] copies what the refs reach (objects, then refs and HEAD) into the
//! other region under the next generation, flushes, then writes that generation's
//! superblock copy and flushes again. A crash before the superblock write leaves the old
//! region active and untouched; the superblock copy is one sector, and a torn copy fails
//! its CRC, so the other copy (the old state) is used. Unreachable objects (history no
//! ref reaches) are dropped. The price: each region is half the device.

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
const VERSION: u32 = 2;
/// First sector of the regions (after the two superblock copies).
const DATA_START: u64 = 2;
const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"IRLR");
const HEADER: usize = 40;
const KIND_OBJECT: u8 = 1;
const KIND_REF: u8 = 2;
const KIND_HEAD: u8 = 3;
/// Buffered object bytes that force a write before the next barrier.
const WRITE_BUFFER: usize = 256 * 1024;

fn superblock(sector: usize, generation: u64, start: u64, len: u64) -> Vec<u8> {
    let mut sb = vec![0u8; sector];
    sb[..8].copy_from_slice(SUPER_MAGIC);
    sb[8..12].copy_from_slice(&VERSION.to_le_bytes());
    sb[12..16].copy_from_slice(&(sector as u32).to_le_bytes());
    sb[16..24].copy_from_slice(&generation.to_le_bytes());
    sb[24..32].copy_from_slice(&start.to_le_bytes());
    sb[32..40].copy_from_slice(&len.to_le_bytes());
    let crc = crc32fast::hash(&sb[..40]);
    sb[40..44].copy_from_slice(&crc.to_le_bytes());
    sb
}

/// `Ok(Some((generation, start, len)))` for a valid copy, `Ok(None)` for no superblock
/// (blank or torn), `Err(())` for a superblock this code cannot use.
fn parse_superblock(
    sb: &[u8],
    sector: usize,
    count: u64,
) -> core::result::Result<Option<(u64, u64, u64)>, ()> {
    let le32 = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]);
    let le64 = |o: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&sb[o..o + 8]);
        u64::from_le_bytes(a)
    };
    if &sb[..8] != SUPER_MAGIC || le32(40) != crc32fast::hash(&sb[..40]) {
        return Ok(None);
    }
    let (start, len) = (le64(24), le64(32));
    let fits =
        start >= DATA_START && len >= 1 && start.checked_add(len).is_some_and(|e| e <= count);
    if le32(8) != VERSION || le32(12) as usize != sector || !fits {
        return Err(());
    }
    Ok(Some((le64(16), start, len)))
}

/// Encodes records back to back (sector-aligned), keeping the chain state.
struct RecordWriter {
    sector: usize,
    generation: u64,
    seq: u64,
    last_crc: u32,
    buf: Vec<u8>,
}

impl RecordWriter {
    fn sectors(&self) -> u64 {
        (self.buf.len() / self.sector) as u64
    }

    fn push(&mut self, kind: u8, parts: &[&[u8]]) -> Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let len32 = u32::try_from(len).map_err(|_| Error::Device("record too large".into()))?;
        let start = self.buf.len();
        self.buf.extend_from_slice(&RECORD_MAGIC.to_le_bytes());
        self.buf.extend_from_slice(&[kind, 0, 0, 0]);
        self.buf.extend_from_slice(&self.generation.to_le_bytes());
        self.buf.extend_from_slice(&self.seq.to_le_bytes());
        self.buf.extend_from_slice(&len32.to_le_bytes());
        self.buf.extend_from_slice(&self.last_crc.to_le_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&self.buf[start..start + 32]);
        for p in parts {
            h.update(p);
        }
        let crc = h.finalize();
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.buf.extend_from_slice(&[0; 4]);
        for p in parts {
            self.buf.extend_from_slice(p);
        }
        let total = (HEADER + len).div_ceil(self.sector) * self.sector;
        self.buf.resize(start + total, 0);
        self.last_crc = crc;
        self.seq += 1;
        Ok(())
    }
}

/// Bytes read per device request while replaying the log: mounting issues one large
/// read per this many bytes instead of one or two per record.
const READ_AHEAD: usize = 256 * 1024;

/// A window of sectors read ahead during replay.
struct ReadAhead {
    start: u64,
    data: Vec<u8>,
}

impl ReadAhead {
    /// Sectors `at..at + n`, from the window or by reading a new one.
    fn get<D: BlockDevice>(
        &mut self,
        device: &RefCell<D>,
        sector: usize,
        at: u64,
        n: u64,
        count: u64,
    ) -> Result<&[u8]> {
        let have = self.start..self.start + (self.data.len() / sector) as u64;
        if !(have.contains(&at) && at + n <= have.end) {
            let window = ((READ_AHEAD / sector) as u64).max(n).min(count - at);
            self.data.resize(window as usize * sector, 0);
            device
                .borrow_mut()
                .read(at, &mut self.data)
                .map_err(dev_err)?;
            self.start = at;
        }
        let off = (at - self.start) as usize * sector;
        Ok(&self.data[off..off + n as usize * sector])
    }
}

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
    /// The active region `[region_start, region_end)`.
    region_start: u64,
    region_end: u64,
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
    /// Group commit: flush every `group_limit` ref updates (1: every update).
    group_limit: usize,
    updates: usize,
}

impl<D: BlockDevice> BlockLog<D> {
    /// Write a fresh superblock (erasing the log logically: records of another
    /// generation are never read). `generation` should differ from any earlier format
    /// of the same device (e.g. random or a timestamp).
    pub fn format(mut device: D, generation: u64) -> Result<Self> {
        let sector = device.sector_size();
        if sector < 512 || !sector.is_power_of_two() || device.sector_count() < DATA_START + 2 {
            return Err(Error::Device("unsupported geometry".to_string()));
        }
        let half = (device.sector_count() - DATA_START) / 2;
        let zero = vec![0u8; sector];
        // Invalidate the other copy, start region A empty, then publish.
        device.write((generation + 1) % 2, &zero).map_err(dev_err)?;
        device.write(DATA_START, &zero).map_err(dev_err)?;
        device.flush().map_err(dev_err)?;
        let sb = superblock(sector, generation, DATA_START, half);
        device.write(generation % 2, &sb).map_err(dev_err)?;
        device.flush().map_err(dev_err)?;
        Self::open(device)
    }

    /// Mount: pick the newest valid superblock copy and replay its region up to the last
    /// valid record.
    pub fn open(mut device: D) -> Result<Self> {
        let sector = device.sector_size();
        if sector < 512 || !sector.is_power_of_two() || device.sector_count() < DATA_START + 2 {
            return Err(Error::Device("unsupported geometry".to_string()));
        }
        let count = device.sector_count();
        let mut best: Option<(u64, u64, u64)> = None;
        let mut seen_other_version = false;
        for slot in 0..DATA_START {
            let mut sb = vec![0u8; sector];
            device.read(slot, &mut sb).map_err(dev_err)?;
            match parse_superblock(&sb, sector, count) {
                Ok(Some(found)) if best.is_none_or(|b| found.0 > b.0) => best = Some(found),
                Ok(_) => {}
                Err(()) => seen_other_version = true,
            }
        }
        let Some((generation, region_start, region_len)) = best else {
            return Err(Error::Device(if seen_other_version {
                "unsupported log version or geometry".to_string()
            } else {
                "no irmin log superblock".to_string()
            }));
        };
        let mut log = BlockLog {
            device: RefCell::new(device),
            sector,
            generation,
            region_start,
            region_end: region_start + region_len,
            next_seq: 0,
            last_crc: 0,
            tail: region_start,
            pending_at: region_start,
            pending: Vec::new(),
            objects: hashbrown::HashMap::new(),
            refs: BTreeMap::new(),
            head: "refs/heads/main".to_string(),
            poisoned: false,
            group_limit: 1,
            updates: 0,
        };
        log.replay()?;
        Ok(log)
    }

    /// Copy the live state (everything the refs reach, the refs, HEAD) into the other
    /// region and switch to it, crash-safely (see the module docs). Returns the sectors
    /// in use afterwards.
    pub fn compact(&mut self) -> Result<u64> {
        self.barrier()?;
        let roots: Vec<ObjectId> = self.refs.values().copied().collect();
        let live = crate::sync::reachable(&*self, &roots, &alloc::collections::BTreeSet::new())?;
        let half = self.region_end - self.region_start;
        let new_start = if self.region_start == DATA_START {
            DATA_START + half
        } else {
            DATA_START
        };
        let generation = self.generation + 1;
        let mut w = RecordWriter {
            sector: self.sector,
            generation,
            seq: 0,
            last_crc: 0,
            buf: Vec::new(),
        };
        let mut objects = hashbrown::HashMap::new();
        for (id, raw, _) in &live {
            let at = new_start + w.sectors();
            w.push(KIND_OBJECT, &[&[raw.kind as u8], id.as_bytes(), &raw.data])?;
            objects.insert(*id, (at, (21 + raw.data.len()) as u32));
        }
        for (name, id) in &self.refs {
            let n = u16::try_from(name.len()).map_err(|_| Error::InvalidRefName(name.clone()))?;
            w.push(
                KIND_REF,
                &[&n.to_le_bytes(), name.as_bytes(), &[1], id.as_bytes()],
            )?;
        }
        w.push(KIND_HEAD, &[self.head.as_bytes()])?;
        let used = w.sectors();
        if used > half {
            return Err(Error::Device(
                "live data does not fit in a region".to_string(),
            ));
        }
        // A zero sector after the last record ends the new log explicitly.
        if used < half {
            w.buf.resize(w.buf.len() + self.sector, 0);
        }
        let result = (|| -> core::result::Result<(), DeviceError> {
            let mut dev = self.device.borrow_mut();
            dev.write(new_start, &w.buf)?;
            dev.flush()?;
            let sb = superblock(self.sector, generation, new_start, half);
            dev.write(generation % 2, &sb)?;
            dev.flush()
        })();
        if let Err(e) = result {
            // Which superblock is on the disk is unknown until the log is reopened.
            self.poisoned = true;
            return Err(dev_err(e));
        }
        self.generation = generation;
        self.region_start = new_start;
        self.region_end = new_start + half;
        self.next_seq = w.seq;
        self.last_crc = w.last_crc;
        self.tail = new_start + used;
        self.pending_at = self.tail;
        self.objects = objects;
        Ok(used)
    }

    /// Group commit: flush the device every `max_updates` ref updates instead of every
    /// one (`1` restores per-update flushes). Updates are visible to this process at once;
    /// after a power cut the log holds a prefix of them that includes every update made
    /// before the last flush. Call [`BlockLog::flush`] to make everything durable.
    pub fn set_group_commit(&mut self, max_updates: usize) -> Result<()> {
        self.flush()?;
        self.group_limit = max_updates.max(1);
        Ok(())
    }

    /// Write and flush everything appended so far.
    pub fn flush(&mut self) -> Result<()> {
        self.updates = 0;
        self.barrier()
    }

    /// Sectors the active region can still take.
    pub fn free_sectors(&self) -> u64 {
        self.region_end - self.tail
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
        self.tail - self.region_start
    }

    /// First sector of the active region (records are addressed from here).
    pub fn region_start(&self) -> u64 {
        self.region_start
    }

    fn sectors_for(&self, bytes: usize) -> u64 {
        bytes.div_ceil(self.sector) as u64
    }

    /// Read and validate the record at `at`; `None` marks the end of the log.
    fn read_record(
        &self,
        ahead: &mut ReadAhead,
        at: u64,
        expect_seq: u64,
        prev_crc: u32,
    ) -> Result<Option<Record>> {
        let count = self.region_end;
        if at >= count {
            return Ok(None);
        }
        let le32 = |b: &[u8], o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let le64 = |b: &[u8], o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        let first = ahead.get(&self.device, self.sector, at, 1, count)?;
        if le32(first, 0) != RECORD_MAGIC
            || le64(first, 8) != self.generation
            || le64(first, 16) != expect_seq
            || le32(first, 28) != prev_crc
        {
            return Ok(None);
        }
        let kind = first[4];
        let len = le32(first, 24) as usize;
        let total = self.sectors_for(HEADER + len);
        if at + total > count {
            return Ok(None);
        }
        let rec = ahead.get(&self.device, self.sector, at, total, count)?;
        let mut h = crc32fast::Hasher::new();
        h.update(&rec[..32]);
        h.update(&rec[HEADER..HEADER + len]);
        let crc = h.finalize();
        if crc != le32(rec, 32) {
            return Ok(None);
        }
        Ok(Some(Record {
            kind,
            payload: rec[HEADER..HEADER + len].to_vec(),
            sectors: total,
            crc,
        }))
    }

    fn replay(&mut self) -> Result<()> {
        let mut at = self.region_start;
        let mut seq = 0;
        let mut prev = 0;
        let mut ahead = ReadAhead {
            start: 0,
            data: Vec::new(),
        };
        while let Some(Record {
            kind,
            payload,
            sectors,
            crc,
        }) = self.read_record(&mut ahead, at, seq, prev)?
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
        let sectors = self.sectors_for(HEADER + len);
        if self.tail + sectors > self.region_end {
            return Err(Error::Device(
                "log is full; compact() reclaims space".to_string(),
            ));
        }
        let mut w = RecordWriter {
            sector: self.sector,
            generation: self.generation,
            seq: self.next_seq,
            last_crc: self.last_crc,
            buf: core::mem::take(&mut self.pending),
        };
        let pushed = w.push(kind, parts);
        self.pending = w.buf;
        pushed?;
        self.next_seq = w.seq;
        self.last_crc = w.last_crc;
        let at = self.tail;
        self.tail += sectors;
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
        // Nothing to do: objects precede the ref record in the log, and replay never goes
        // past a missing record, so the ref's barrier covers them (one flush per commit).
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
        let n = u16::try_from(name.len()).map_err(|_| Error::InvalidRefName(name.to_string()))?;
        let id = new.unwrap_or(ObjectId::ZERO);
        let present = [new.is_some() as u8];
        self.append(
            KIND_REF,
            &[&n.to_le_bytes(), name.as_bytes(), &present, id.as_bytes()],
        )?;
        self.updates += 1;
        if self.updates >= self.group_limit {
            self.barrier()?;
            self.updates = 0;
        }
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
    /// Read requests served (to check that mounting reads in large chunks).
    pub reads: u64,
}

impl MemoryBlockDevice {
    pub fn new(sector: usize, sectors: u64) -> Self {
        MemoryBlockDevice {
            sector,
            data: vec![0; sector * sectors as usize],
            unflushed: BTreeMap::new(),
            budget: None,
            flushes: 0,
            reads: 0,
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
        self.reads += 1;
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
