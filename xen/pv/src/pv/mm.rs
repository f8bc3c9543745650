//! Guest memory: pfn<->mfn translation, the 1:1 mapping of all RAM, page frames, the heap.
//!
//! The domain builder maps only the bootstrap region (kernel, start_info, rings, page
//! tables, stack and at least 512 KiB of padding) at VA = pfn << 12. At boot we extend
//! that identity mapping to every page the domain owns: new page-table pages are taken
//! from the lowest free frames (already mapped), zeroed, remapped read-only (Xen refuses
//! a page table that is writable anywhere) and hooked into their parent with
//! `mmu_update`, since the guest runs with `!writable_page_tables`. The free frames then
//! go to the [`FrameAllocator`], and the heap grows from it on demand.

use core::alloc::Layout;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use talc::{OomHandler, Span, Talc, Talck};
use xen_abi::errno::Errno;
use xen_abi::mm::*;
use xen_abi::start_info::StartInfo;
use xen_abi::{PAGE_SHIFT, PAGE_SIZE};

use super::hypercall;
use crate::frames::{FrameAllocator, FrameError, Pfn};

static NR_PAGES: AtomicU64 = AtomicU64::new(0);
static P2M: AtomicPtr<u64> = AtomicPtr::new(core::ptr::null_mut());
static FRAMES: spin::Mutex<Option<FrameAllocator<'static>>> = spin::Mutex::new(None);
static L4: spin::Mutex<Option<Table>> = spin::Mutex::new(None);

/// Pages of RAM the domain has.
pub fn nr_pages() -> u64 {
    NR_PAGES.load(Ordering::Relaxed)
}

/// Machine frame backing `pfn`, if `pfn` is one of ours.
pub fn pfn_to_mfn(pfn: Pfn) -> Option<u64> {
    if pfn >= nr_pages() {
        return None;
    }
    // SAFETY: the P2M list has nr_pages entries and stays mapped (bootstrap region).
    let mfn = unsafe {
        P2M.load(Ordering::Relaxed)
            .add(pfn as usize)
            .read_volatile()
    };
    (mfn != INVALID_P2M_ENTRY).then_some(mfn)
}

/// Pseudo-physical frame of machine frame `mfn`, if it belongs to this domain.
pub fn mfn_to_pfn(mfn: u64) -> Option<Pfn> {
    if mfn >= (MACH2PHYS_VIRT_END - MACH2PHYS_VIRT_START) / 8 {
        return None;
    }
    // SAFETY: Xen maps the read-only M2P table over [MACH2PHYS_VIRT_START, END) in every
    // 64-bit PV guest; `mfn` is inside it. Entries of other domains' frames hold values
    // that the round-trip check below rejects.
    let pfn = unsafe { ((MACH2PHYS_VIRT_START + mfn * 8) as *const u64).read_volatile() };
    (pfn_to_mfn(pfn) == Some(mfn)).then_some(pfn)
}

/// Virtual address of a frame in the identity map.
pub fn pfn_to_virt(pfn: Pfn) -> *mut u8 {
    (pfn << PAGE_SHIFT) as *mut u8
}

/// Frame of an address in the identity map.
pub fn virt_to_pfn(va: *const u8) -> Pfn {
    va as u64 >> PAGE_SHIFT
}

/// Machine frame of an address in the identity map.
pub fn virt_to_mfn(va: *const u8) -> Option<u64> {
    pfn_to_mfn(virt_to_pfn(va))
}

/// Why memory could not be set up at boot.
#[derive(Debug)]
pub enum MemoryInitError {
    /// A hypercall was refused.
    Hypercall(&'static str, Errno),
    /// The bootstrap page tables look different from what Xen documents.
    UnexpectedPageTable(&'static str, u64),
    /// Not enough free frames to build tables and the allocator bitmap.
    TooLittleMemory,
}

const TABLE_FLAGS: u64 = PTE_PRESENT | PTE_RW | PTE_USER | PTE_ACCESSED | PTE_DIRTY;
const RAM_FLAGS: u64 = PTE_PRESENT | PTE_RW | PTE_USER | PTE_ACCESSED | PTE_DIRTY;
const READ_ONLY_FLAGS: u64 = PTE_PRESENT | PTE_USER | PTE_ACCESSED;

/// Where new page-table frames come from.
trait FrameSource {
    fn take(&mut self) -> Result<Pfn, MemoryInitError>;
}

/// Frames handed out before the allocator exists, from the bottom of free memory.
struct Bump {
    next: Pfn,
    end: Pfn,
}

impl FrameSource for Bump {
    fn take(&mut self) -> Result<Pfn, MemoryInitError> {
        if self.next >= self.end {
            return Err(MemoryInitError::TooLittleMemory);
        }
        self.next += 1;
        Ok(self.next - 1)
    }
}

/// Frames from the page allocator (after boot).
struct FromAllocator;

impl FrameSource for FromAllocator {
    fn take(&mut self) -> Result<Pfn, MemoryInitError> {
        FRAMES
            .lock()
            .as_mut()
            .and_then(|f| f.alloc(1))
            .ok_or(MemoryInitError::TooLittleMemory)
    }
}

/// A page table reachable through the identity map.
#[derive(Clone, Copy)]
struct Table {
    va: u64,
    mfn: u64,
}

impl Table {
    fn entry(&self, idx: usize) -> u64 {
        // SAFETY: page tables live in the identity map (bootstrap ones mapped read-only by
        // Xen, ours remapped read-only below); idx < 512 keeps the read inside the page.
        unsafe { ((self.va + idx as u64 * 8) as *const u64).read_volatile() }
    }

    fn entry_machine_addr(&self, idx: usize) -> u64 {
        (self.mfn << PAGE_SHIFT) + idx as u64 * 8
    }
}

/// The child table referenced by `parent[idx]`, creating it if the entry is empty.
fn child_table(
    parent: Table,
    idx: usize,
    bump: &mut impl FrameSource,
    pending: &mut Batch,
) -> Result<Table, MemoryInitError> {
    let entry = parent.entry(idx);
    if entry & PTE_PRESENT != 0 {
        if entry & PTE_PSE != 0 {
            return Err(MemoryInitError::UnexpectedPageTable(
                "superpage in bootstrap tables",
                entry,
            ));
        }
        let mfn = (entry & PTE_ADDR_MASK) >> PAGE_SHIFT;
        let pfn = mfn_to_pfn(mfn).ok_or(MemoryInitError::UnexpectedPageTable(
            "table frame not ours",
            mfn,
        ))?;
        return Ok(Table {
            va: pfn << PAGE_SHIFT,
            mfn,
        });
    }
    // Entries queued for earlier tables must land before we reuse the mapping state.
    pending.flush()?;
    let pfn = bump.take()?;
    let va = pfn << PAGE_SHIFT;
    let mfn = pfn_to_mfn(pfn).ok_or(MemoryInitError::UnexpectedPageTable(
        "free frame without mfn",
        pfn,
    ))?;
    // SAFETY: `pfn` is a free frame below the mapped frontier, mapped writable, unused.
    unsafe { core::ptr::write_bytes(va as *mut u8, 0, PAGE_SIZE) };
    hypercall::update_va_mapping(va, (mfn << PAGE_SHIFT) | READ_ONLY_FLAGS, UVMF_INVLPG)
        .map_err(|e| MemoryInitError::Hypercall("update_va_mapping(read-only table)", e))?;
    let link = MmuUpdate {
        ptr: parent.entry_machine_addr(idx) | MMU_NORMAL_PT_UPDATE,
        val: (mfn << PAGE_SHIFT) | TABLE_FLAGS,
    };
    hypercall::mmu_update(&[link])
        .map_err(|e| MemoryInitError::Hypercall("mmu_update(link table)", e))?;
    Ok(Table { va, mfn })
}

/// Queued leaf updates, applied in one hypercall per batch.
struct Batch {
    updates: [MmuUpdate; 256],
    len: usize,
}

impl Batch {
    fn new() -> Self {
        Batch {
            updates: [MmuUpdate { ptr: 0, val: 0 }; 256],
            len: 0,
        }
    }

    fn push(&mut self, u: MmuUpdate) -> Result<(), MemoryInitError> {
        if self.len == self.updates.len() {
            self.flush()?;
        }
        self.updates[self.len] = u;
        self.len += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), MemoryInitError> {
        if self.len > 0 {
            hypercall::mmu_update(&self.updates[..self.len])
                .map_err(|e| MemoryInitError::Hypercall("mmu_update(map RAM)", e))?;
            self.len = 0;
        }
        Ok(())
    }
}

fn level_index(va: u64, level: u32) -> usize {
    ((va >> (PAGE_SHIFT + 9 * (level - 1))) & 511) as usize
}

/// The L1 table covering `va`, with any missing intermediate tables created.
fn l1_table_for(
    l4: Table,
    va: u64,
    frames: &mut impl FrameSource,
    batch: &mut Batch,
) -> Result<Table, MemoryInitError> {
    let l3 = child_table(l4, level_index(va, 4), frames, batch)?;
    let l2 = child_table(l3, level_index(va, 3), frames, batch)?;
    child_table(l2, level_index(va, 2), frames, batch)
}

/// Map every pfn of the domain at VA = pfn << 12.
fn map_all_ram(l4: Table, nr: u64, bump: &mut Bump) -> Result<(), MemoryInitError> {
    let mut batch = Batch::new();
    let per_l1 = PT_ENTRIES as u64;
    let mut first = 0;
    while first < nr {
        let va = first << PAGE_SHIFT;
        let l1 = l1_table_for(l4, va, bump, &mut batch)?;
        let last = (first - first % per_l1 + per_l1).min(nr);
        for pfn in first..last {
            let idx = (pfn % per_l1) as usize;
            if l1.entry(idx) & PTE_PRESENT == 0 {
                let mfn = pfn_to_mfn(pfn)
                    .ok_or(MemoryInitError::UnexpectedPageTable("pfn without mfn", pfn))?;
                batch.push(MmuUpdate {
                    ptr: l1.entry_machine_addr(idx) | MMU_NORMAL_PT_UPDATE,
                    val: (mfn << PAGE_SHIFT) | RAM_FLAGS,
                })?;
            }
        }
        first = last;
    }
    batch.flush()
}

/// What [`init`] set up.
#[derive(Clone, Copy, Debug)]
pub struct MemoryLayout {
    pub nr_pages: u64,
    /// First frame after the bootstrap region.
    pub first_free_pfn: Pfn,
    /// Frames used for new page tables and the allocator's bitmap.
    pub overhead_frames: u64,
}

/// Record the P2M list (first thing at boot: everything else translates through it).
pub(crate) fn init_p2m(si: &StartInfo) {
    NR_PAGES.store(si.nr_pages, Ordering::Relaxed);
    P2M.store(si.mfn_list as *mut u64, Ordering::Relaxed);
}

/// Map all RAM and hand the free frames to the allocator.
pub(crate) fn init(si: &StartInfo, xen_stack_top: u64) -> Result<MemoryLayout, MemoryInitError> {
    let nr = si.nr_pages;
    // Bootstrap elements end with the page tables then Xen's boot stack (xen.h); we left
    // that stack, but keep its page (and anything below) out of the allocator.
    let pt_end = (si.pt_base >> PAGE_SHIFT) + si.nr_pt_frames;
    let first_free = pt_end.max(xen_stack_top.div_ceil(PAGE_SIZE as u64));
    if first_free >= nr {
        return Err(MemoryInitError::TooLittleMemory);
    }
    let l4_mfn = pfn_to_mfn(si.pt_base >> PAGE_SHIFT)
        .ok_or(MemoryInitError::UnexpectedPageTable("pt_base", si.pt_base))?;
    let mut bump = Bump {
        next: first_free,
        end: nr,
    };
    let l4 = Table {
        va: si.pt_base,
        mfn: l4_mfn,
    };
    *L4.lock() = Some(l4);
    map_all_ram(l4, nr, &mut bump)?;

    let managed = nr - first_free;
    let words = FrameAllocator::bitmap_words(managed);
    let bitmap_frames = (words * 8).div_ceil(PAGE_SIZE) as u64;
    let bitmap_pfn = bump.next;
    for _ in 0..bitmap_frames {
        bump.take()?;
    }
    // SAFETY: these frames are free, mapped writable by map_all_ram, and never handed out
    // by the allocator (reserved below), so the slice is exclusively ours forever.
    let bitmap =
        unsafe { core::slice::from_raw_parts_mut(pfn_to_virt(bitmap_pfn) as *mut u64, words) };
    let mut frames = FrameAllocator::new(bitmap, first_free, managed);
    frames
        .reserve(first_free, bump.next - first_free)
        .map_err(|_| MemoryInitError::TooLittleMemory)?;
    let overhead = bump.next - first_free;
    *FRAMES.lock() = Some(frames);
    Ok(MemoryLayout {
        nr_pages: nr,
        first_free_pfn: first_free,
        overhead_frames: overhead,
    })
}

/// Allocate `count` contiguous, page-aligned, zeroed frames.
pub fn alloc_frames(count: u64) -> Option<Pfn> {
    let pfn = FRAMES.lock().as_mut()?.alloc(count)?;
    // SAFETY: freshly allocated frames, mapped writable, owned by the caller now.
    unsafe { core::ptr::write_bytes(pfn_to_virt(pfn), 0, count as usize * PAGE_SIZE) };
    Some(pfn)
}

/// Return frames from [`alloc_frames`].
pub fn free_frames(pfn: Pfn, count: u64) -> Result<(), FrameError> {
    match FRAMES.lock().as_mut() {
        Some(f) => f.free(pfn, count),
        None => Err(FrameError::OutOfRange { pfn, count }),
    }
}

/// (free, managed) frame counts.
pub fn frame_stats() -> (u64, u64) {
    FRAMES
        .lock()
        .as_ref()
        .map_or((0, 0), |f| (f.free_frames(), f.total_frames()))
}

/// Heap growth step: at least this many frames per new arena.
const HEAP_GROW_FRAMES: u64 = 256;

/// Grows the heap with frames from the page allocator.
pub struct GrowFromFrames;

impl OomHandler for GrowFromFrames {
    fn handle_oom(talc: &mut Talc<Self>, layout: Layout) -> Result<(), ()> {
        // Room for the allocation, its alignment and talc's arena metadata.
        let need = layout
            .size()
            .saturating_add(layout.align())
            .saturating_add(256);
        let exact = (need as u64).div_ceil(PAGE_SIZE as u64);
        let pfn_and_count = [exact.max(HEAP_GROW_FRAMES), exact]
            .into_iter()
            .find_map(|count| FRAMES.lock().as_mut()?.alloc(count).map(|pfn| (pfn, count)));
        let Some((pfn, count)) = pfn_and_count else {
            let (free, total) = frame_stats();
            log::error!(
                "out of memory: cannot allocate {} bytes (align {}); {} of {} pages free",
                layout.size(),
                layout.align(),
                free,
                total
            );
            return Err(());
        };
        let span = Span::from_base_size(pfn_to_virt(pfn), count as usize * PAGE_SIZE);
        // SAFETY: the frames were just allocated for the heap's exclusive use, are mapped
        // writable and are never freed.
        unsafe { talc.claim(span).map(|_| ()) }
    }
}

#[global_allocator]
static HEAP: Talck<spin::Mutex<()>, GrowFromFrames> = Talc::new(GrowFromFrames).lock();

/// Start of the area where frames that are not our RAM get mapped (L4 slot 1, far above
/// the identity map of RAM).
pub const MAP_AREA_START: u64 = 1 << 39;
/// Pages in the map area (256 MiB).
pub const MAP_AREA_PAGES: u64 = 1 << 16;

struct MapArea {
    slots: FrameAllocator<'static>,
}

static MAP_AREA_BITMAP: spin::Mutex<[u64; MAP_AREA_PAGES as usize / 64]> =
    spin::Mutex::new([0; MAP_AREA_PAGES as usize / 64]);
static MAP_AREA: spin::Mutex<Option<MapArea>> = spin::Mutex::new(None);

fn with_map_area<R>(f: impl FnOnce(&mut MapArea) -> R) -> R {
    let mut area = MAP_AREA.lock();
    let area = area.get_or_insert_with(|| {
        let bitmap = spin::MutexGuard::leak(MAP_AREA_BITMAP.lock());
        MapArea {
            slots: FrameAllocator::new(bitmap, MAP_AREA_START >> PAGE_SHIFT, MAP_AREA_PAGES),
        }
    });
    f(area)
}

/// A range of virtual pages in the map area, with page tables in place but nothing
/// mapped: a target for `map_machine_frame` or for Xen's grant mappings
/// (`GNTTABOP_map_grant_ref` with `GNTMAP_host_map` needs the L1 table to exist).
#[derive(Debug)]
pub struct VirtRange {
    va: u64,
    pages: u64,
}

impl VirtRange {
    /// First address of the range.
    pub fn addr(&self) -> u64 {
        self.va
    }

    /// Address of page `i`.
    pub fn page(&self, i: u64) -> u64 {
        assert!(i < self.pages, "page {i} outside a range of {}", self.pages);
        self.va + (i << PAGE_SHIFT)
    }

    /// Number of pages.
    pub fn pages(&self) -> u64 {
        self.pages
    }
}

/// Reserve `pages` contiguous virtual pages in the map area.
pub fn reserve_virt(pages: u64) -> Result<VirtRange, Errno> {
    let first = with_map_area(|a| a.slots.alloc(pages)).ok_or(Errno::ENOMEM)?;
    let va = first << PAGE_SHIFT;
    let l4 = L4.lock().ok_or(Errno::EINVAL)?;
    let mut batch = Batch::new();
    let mut covered = u64::MAX;
    for i in 0..pages {
        let page_va = va + (i << PAGE_SHIFT);
        let l1_base = page_va & !((1 << 21) - 1);
        if l1_base != covered {
            if l1_table_for(l4, page_va, &mut FromAllocator, &mut batch).is_err() {
                let _ = with_map_area(|a| a.slots.free(first, pages));
                return Err(Errno::ENOMEM);
            }
            covered = l1_base;
        }
    }
    Ok(VirtRange { va, pages })
}

/// Give a range back; every page in it must be unmapped already.
pub fn release_virt(range: VirtRange) {
    let _ = with_map_area(|a| a.slots.free(range.va >> PAGE_SHIFT, range.pages));
}

/// Map machine frame `mfn` at `va` (a page of a [`VirtRange`]). Xen checks that the
/// domain may map the frame (e.g. its grant-table frames).
pub fn map_machine_frame(va: u64, mfn: u64, writable: bool) -> Result<(), Errno> {
    let flags = if writable { RAM_FLAGS } else { READ_ONLY_FLAGS };
    hypercall::update_va_mapping(va, (mfn << PAGE_SHIFT) | flags, UVMF_INVLPG)
}

/// Remove the mapping at `va` (a page of a [`VirtRange`]).
pub fn unmap_page(va: u64) -> Result<(), Errno> {
    hypercall::update_va_mapping(va, 0, UVMF_INVLPG)
}
