//! Byte rings: a power-of-two data area with free-running 32-bit producer and consumer
//! indices, as used by the PV console (`io/console.h`), xenstore (`io/xs_wire.h`) and
//! libxenvchan (`io/libxenvchan.h`).
//!
//! The indices and the data may live in different places: for the console and xenstore they
//! share one page; libxenvchan keeps the indices in its control page and the data either
//! in that page (ring orders 10 and 11) or in separately granted pages (order 12 and up).
//! So a ring end is built from a *control* region with the offsets of the two indices, and a
//! *data* region whose length is the ring size.
//!
//! No notifications here: the console and xenstore always notify after a write or read;
//! vchan has its own notify flags. The caller decides.
//!
//! # Ordering
//!
//! Consumer: `Acquire` load of `prod` (the bytes are visible), copy out, `Release` store of
//! `cons` (our reads complete before the producer may overwrite). Producer: `Acquire` load
//! of `cons` (the consumer finished reading the space we reuse), copy in, `Release` store of
//! `prod` (bytes visible before the index).

use core::sync::atomic::Ordering;

use crate::error::{Latch, RingError};
use crate::mem::{OutOfBounds, SharedMem};

fn ring_size_of(data: &SharedMem<'_>) -> Result<u32, RingError> {
    let len = data.len();
    if len == 0 || !len.is_power_of_two() || len > 1 << 31 {
        return Err(RingError::Layout(OutOfBounds {
            offset: 0,
            len,
            region_len: len,
        }));
    }
    Ok(len as u32)
}

fn check_index(ctrl: &SharedMem<'_>, offset: usize) -> Result<(), RingError> {
    ctrl.load_u32(offset, Ordering::Relaxed)?;
    Ok(())
}

/// The writing end of a byte ring.
#[derive(Debug)]
pub struct ByteProducer<'a> {
    ctrl: SharedMem<'a>,
    prod_offset: usize,
    cons_offset: usize,
    data: SharedMem<'a>,
    size: u32,
    /// Our producer index; published, never re-read.
    prod: u32,
    broken: Latch,
}

impl<'a> ByteProducer<'a> {
    /// Attaches to a ring whose indices are the 32-bit words at `prod_offset` and
    /// `cons_offset` of `ctrl` and whose data is all of `data` (a power of two in length).
    /// The current `prod` is taken from the page (validated against `cons`).
    pub fn attach(
        ctrl: SharedMem<'a>,
        prod_offset: usize,
        cons_offset: usize,
        data: SharedMem<'a>,
    ) -> Result<Self, RingError> {
        let size = ring_size_of(&data)?;
        check_index(&ctrl, prod_offset)?;
        check_index(&ctrl, cons_offset)?;
        let prod = ctrl.load_u32(prod_offset, Ordering::Relaxed)?;
        let mut ring = ByteProducer {
            ctrl,
            prod_offset,
            cons_offset,
            data,
            size,
            prod,
            broken: Latch::default(),
        };
        ring.used()?;
        Ok(ring)
    }

    /// Ring size in bytes.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The error that broke the ring, if the peer misbehaved.
    pub fn broken(&self) -> Option<RingError> {
        self.broken.get()
    }

    /// Bytes written and not yet consumed by the peer.
    pub fn used(&mut self) -> Result<u32, RingError> {
        self.broken.check()?;
        let cons = self.ctrl.load_u32(self.cons_offset, Ordering::Acquire)?;
        self.broken.in_flight(self.prod, cons, self.size)
    }

    /// Bytes that can be written now.
    pub fn free_space(&mut self) -> Result<u32, RingError> {
        Ok(self.size - self.used()?)
    }

    /// Writes as much of `buf` as fits and publishes it; returns the number of bytes
    /// written (0 when full).
    pub fn write(&mut self, buf: &[u8]) -> Result<usize, RingError> {
        let free = self.free_space()? as usize;
        let n = free.min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let start = (self.prod & (self.size - 1)) as usize;
        let first = n.min(self.size as usize - start);
        self.data.write(start, &buf[..first])?;
        self.data.write(0, &buf[first..n])?;
        self.prod = self.prod.wrapping_add(n as u32);
        self.ctrl
            .store_u32(self.prod_offset, self.prod, Ordering::Release)?;
        Ok(n)
    }
}

/// The reading end of a byte ring.
#[derive(Debug)]
pub struct ByteConsumer<'a> {
    ctrl: SharedMem<'a>,
    prod_offset: usize,
    cons_offset: usize,
    data: SharedMem<'a>,
    size: u32,
    /// Our consumer index; published, never re-read.
    cons: u32,
    broken: Latch,
}

impl<'a> ByteConsumer<'a> {
    /// Attaches to a ring laid out as for [`ByteProducer::attach`]. The current `cons` is
    /// taken from the page (validated against `prod`).
    pub fn attach(
        ctrl: SharedMem<'a>,
        prod_offset: usize,
        cons_offset: usize,
        data: SharedMem<'a>,
    ) -> Result<Self, RingError> {
        let size = ring_size_of(&data)?;
        check_index(&ctrl, prod_offset)?;
        check_index(&ctrl, cons_offset)?;
        let cons = ctrl.load_u32(cons_offset, Ordering::Relaxed)?;
        let mut ring = ByteConsumer {
            ctrl,
            prod_offset,
            cons_offset,
            data,
            size,
            cons,
            broken: Latch::default(),
        };
        ring.available()?;
        Ok(ring)
    }

    /// Ring size in bytes.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The error that broke the ring, if the peer misbehaved.
    pub fn broken(&self) -> Option<RingError> {
        self.broken.get()
    }

    /// Bytes that can be read now.
    pub fn available(&mut self) -> Result<u32, RingError> {
        self.broken.check()?;
        let prod = self.ctrl.load_u32(self.prod_offset, Ordering::Acquire)?;
        self.broken.in_flight(prod, self.cons, self.size)
    }

    /// Copies up to `buf.len()` available bytes into `buf` without consuming them.
    pub fn peek(&mut self, buf: &mut [u8]) -> Result<usize, RingError> {
        let n = (self.available()? as usize).min(buf.len());
        let start = (self.cons & (self.size - 1)) as usize;
        let first = n.min(self.size as usize - start);
        self.data.read(start, &mut buf[..first])?;
        self.data.read(0, &mut buf[first..n])?;
        Ok(n)
    }

    /// Consumes `n` bytes (at most what is available) without copying them.
    pub fn consume(&mut self, n: usize) -> Result<usize, RingError> {
        let n = (self.available()? as usize).min(n);
        self.cons = self.cons.wrapping_add(n as u32);
        self.ctrl
            .store_u32(self.cons_offset, self.cons, Ordering::Release)?;
        Ok(n)
    }

    /// Reads up to `buf.len()` bytes and consumes them; returns the number read (0 when
    /// empty).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, RingError> {
        let n = self.peek(buf)?;
        if n > 0 {
            self.cons = self.cons.wrapping_add(n as u32);
            self.ctrl
                .store_u32(self.cons_offset, self.cons, Ordering::Release)?;
        }
        Ok(n)
    }
}
