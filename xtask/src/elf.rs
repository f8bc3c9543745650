//! Checks, on the host, that a kernel image is something `xl create` can boot as a PV guest,
//! so a wrong file fails in a second with a clear message instead of after a lab boot.
//!
//! A PV ELF must carry Xen ELF notes (`elfnote.h`) that Xen's libelf accepts: a
//! `XEN_VERSION` of `xen-3.0`, and a `LOADER` of `generic` (or a `GUEST_OS` of `linux`).
//! A Linux bzImage (the Linux baseline guest) is accepted as it is: its notes sit inside the
//! compressed payload, and libxc unpacks it.

use std::fmt;
use xen_abi::elfnote;

/// What a kernel file is, as far as the domain builder is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelImage {
    /// An ELF with the Xen notes, in file order.
    XenElf(Vec<XenNote>),
    /// A Linux bzImage (boot protocol header `HdrS`).
    LinuxBzImage,
}

/// One note named `"Xen"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XenNote {
    pub kind: u32,
    pub desc: Vec<u8>,
}

impl XenNote {
    /// The descriptor as a NUL-terminated string, for the string-valued notes.
    pub fn as_str(&self) -> Option<&str> {
        let end = self
            .desc
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.desc.len());
        std::str::from_utf8(&self.desc[..end]).ok()
    }
}

/// Why a file is not a bootable PV kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelError {
    NotElf,
    NotElf64LittleEndian,
    NotX86_64 {
        machine: u16,
    },
    Truncated {
        what: &'static str,
    },
    NoXenNotes,
    BadXenVersion {
        found: Option<String>,
    },
    BadLoader {
        loader: Option<String>,
        guest_os: Option<String>,
    },
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotElf => write!(f, "not an ELF file (nor a Linux bzImage)"),
            Self::NotElf64LittleEndian => write!(f, "not a 64-bit little-endian ELF"),
            Self::NotX86_64 { machine } => write!(f, "ELF machine is {machine}, not x86-64 (62)"),
            Self::Truncated { what } => {
                write!(f, "truncated or corrupt ELF ({what} out of bounds)")
            }
            Self::NoXenNotes => write!(
                f,
                "the ELF has no Xen notes (no PT_NOTE/SHT_NOTE note named \"Xen\"), so Xen cannot boot it \
                 as a PV guest: link the guest with the xen-pv crate's notes and linker script"
            ),
            Self::BadXenVersion { found } => write!(
                f,
                "Xen note XEN_VERSION is {found:?}, Xen only loads \"xen-3.0\" images"
            ),
            Self::BadLoader { loader, guest_os } => write!(
                f,
                "Xen notes LOADER={loader:?} GUEST_OS={guest_os:?}: Xen only loads LOADER \"generic\" \
                 (or GUEST_OS \"linux\") images"
            ),
        }
    }
}

impl std::error::Error for KernelError {}

const PT_NOTE: u32 = 4;
const SHT_NOTE: u32 = 7;
const EM_X86_64: u16 = 62;

/// Inspects a kernel image held in memory.
pub fn inspect(image: &[u8]) -> Result<KernelImage, KernelError> {
    if image.len() >= 0x206 && &image[0x202..0x206] == b"HdrS" {
        return Ok(KernelImage::LinuxBzImage);
    }
    if image.len() < 4 || &image[..4] != b"\x7fELF" {
        return Err(KernelError::NotElf);
    }
    let header = image
        .get(..64)
        .ok_or(KernelError::Truncated { what: "ELF header" })?;
    if header[4] != 2 || header[5] != 1 {
        return Err(KernelError::NotElf64LittleEndian);
    }
    let machine = u16_at(header, 18);
    if machine != EM_X86_64 {
        return Err(KernelError::NotX86_64 { machine });
    }

    let mut notes = Vec::new();
    // Program headers first (what libelf reads), section headers as libelf's fallback.
    let (phoff, phentsize, phnum) = (u64_at(header, 32), u16_at(header, 54), u16_at(header, 56));
    for index in 0..u64::from(phnum) {
        let ph = table_entry(image, phoff, phentsize, index, 56, "program header")?;
        if u32_at(ph, 0) == PT_NOTE {
            let segment = slice(image, u64_at(ph, 8), u64_at(ph, 32), "PT_NOTE segment")?;
            parse_notes(segment, &mut notes)?;
        }
    }
    if notes.is_empty() {
        let (shoff, shentsize, shnum) =
            (u64_at(header, 40), u16_at(header, 58), u16_at(header, 60));
        for index in 0..u64::from(shnum) {
            let sh = table_entry(image, shoff, shentsize, index, 64, "section header")?;
            if u32_at(sh, 4) == SHT_NOTE {
                let section = slice(image, u64_at(sh, 24), u64_at(sh, 32), "SHT_NOTE section")?;
                parse_notes(section, &mut notes)?;
            }
        }
    }
    if notes.is_empty() {
        return Err(KernelError::NoXenNotes);
    }

    let string_note = |kind| {
        notes
            .iter()
            .find(|n| n.kind == kind)
            .and_then(|n| n.as_str().map(str::to_owned))
    };
    let xen_version = string_note(elfnote::XEN_VERSION);
    if !xen_version
        .as_deref()
        .is_some_and(|v| v.starts_with("xen-3.0"))
    {
        return Err(KernelError::BadXenVersion { found: xen_version });
    }
    let loader = string_note(elfnote::LOADER);
    let guest_os = string_note(elfnote::GUEST_OS);
    let generic = loader.as_deref().is_some_and(|l| l.starts_with("generic"));
    let linux = guest_os.as_deref().is_some_and(|g| g.starts_with("linux"));
    if !generic && !linux {
        return Err(KernelError::BadLoader { loader, guest_os });
    }
    Ok(KernelImage::XenElf(notes))
}

/// Appends the notes named "Xen" found in one note segment or section.
fn parse_notes(mut data: &[u8], notes: &mut Vec<XenNote>) -> Result<(), KernelError> {
    const TRUNCATED: KernelError = KernelError::Truncated { what: "note" };
    let pad4 = |n: usize| n.checked_add(3).map(|n| n & !3).ok_or(TRUNCATED);
    while data.len() >= 12 {
        let name_size = u32_at(data, 0) as usize;
        let desc_size = u32_at(data, 4) as usize;
        let kind = u32_at(data, 8);
        let name_end = 12usize.checked_add(pad4(name_size)?).ok_or(TRUNCATED)?;
        let desc_end = name_end.checked_add(pad4(desc_size)?).ok_or(TRUNCATED)?;
        if desc_end > data.len() {
            return Err(TRUNCATED);
        }
        let name = &data[12..12 + name_size];
        let name = name.strip_suffix(b"\0").unwrap_or(name);
        if name == elfnote::NAME {
            notes.push(XenNote {
                kind,
                desc: data[name_end..name_end + desc_size].to_vec(),
            });
        }
        data = &data[desc_end..];
    }
    Ok(())
}

fn table_entry<'a>(
    image: &'a [u8],
    offset: u64,
    entry_size: u16,
    index: u64,
    min_size: u16,
    what: &'static str,
) -> Result<&'a [u8], KernelError> {
    if entry_size < min_size {
        return Err(KernelError::Truncated { what });
    }
    let start = index
        .checked_mul(u64::from(entry_size))
        .and_then(|o| o.checked_add(offset));
    slice(
        image,
        start.ok_or(KernelError::Truncated { what })?,
        u64::from(entry_size),
        what,
    )
}

fn slice<'a>(
    image: &'a [u8],
    offset: u64,
    len: u64,
    what: &'static str,
) -> Result<&'a [u8], KernelError> {
    let start = usize::try_from(offset).map_err(|_| KernelError::Truncated { what })?;
    let len = usize::try_from(len).map_err(|_| KernelError::Truncated { what })?;
    let end = start
        .checked_add(len)
        .ok_or(KernelError::Truncated { what })?;
    image.get(start..end).ok_or(KernelError::Truncated { what })
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut n = Vec::new();
        n.extend((name.len() as u32).to_le_bytes());
        n.extend((desc.len() as u32).to_le_bytes());
        n.extend(kind.to_le_bytes());
        n.extend(name);
        n.resize(n.len().next_multiple_of(4), 0);
        n.extend(desc);
        n.resize(n.len().next_multiple_of(4), 0);
        n
    }

    /// A minimal ELF64 with one PT_NOTE segment holding `notes`.
    fn elf_with_notes(notes: &[u8], machine: u16) -> Vec<u8> {
        let mut e = vec![0u8; 64 + 56];
        e[..4].copy_from_slice(b"\x7fELF");
        e[4] = 2;
        e[5] = 1;
        e[18..20].copy_from_slice(&machine.to_le_bytes());
        e[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        e[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        e[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        e[64..68].copy_from_slice(&PT_NOTE.to_le_bytes());
        e[64 + 8..64 + 16].copy_from_slice(&120u64.to_le_bytes()); // p_offset
        e[64 + 32..64 + 40].copy_from_slice(&(notes.len() as u64).to_le_bytes()); // p_filesz
        e.extend(notes);
        e
    }

    fn good_notes() -> Vec<u8> {
        let mut n = note(b"GNU\0", 3, b"abcd");
        n.extend(note(b"Xen\0", elfnote::XEN_VERSION, b"xen-3.0\0"));
        n.extend(note(b"Xen\0", elfnote::LOADER, b"generic\0"));
        n.extend(note(
            b"Xen\0",
            elfnote::HYPERCALL_PAGE,
            &0x1000u64.to_le_bytes(),
        ));
        n
    }

    #[test]
    fn accepts_pv_elf_and_keeps_only_xen_notes() {
        let KernelImage::XenElf(notes) =
            inspect(&elf_with_notes(&good_notes(), EM_X86_64)).unwrap()
        else {
            panic!("not recognised as a Xen ELF");
        };
        assert_eq!(notes.len(), 3);
        assert_eq!(notes[0].as_str(), Some("xen-3.0"));
        assert_eq!(notes[2].desc, 0x1000u64.to_le_bytes());
    }

    #[test]
    fn rejects_elf_without_xen_notes() {
        let elf = elf_with_notes(&note(b"GNU\0", 3, b"abcd"), EM_X86_64);
        assert_eq!(inspect(&elf), Err(KernelError::NoXenNotes));
    }

    #[test]
    fn rejects_wrong_loader_and_version() {
        let mut n = note(b"Xen\0", elfnote::XEN_VERSION, b"xen-3.0\0");
        n.extend(note(b"Xen\0", elfnote::LOADER, b"other\0"));
        assert!(matches!(
            inspect(&elf_with_notes(&n, EM_X86_64)),
            Err(KernelError::BadLoader { .. })
        ));
        let n = note(b"Xen\0", elfnote::LOADER, b"generic\0");
        assert_eq!(
            inspect(&elf_with_notes(&n, EM_X86_64)),
            Err(KernelError::BadXenVersion { found: None })
        );
    }

    #[test]
    fn rejects_other_machines_and_non_elf() {
        assert_eq!(
            inspect(&elf_with_notes(&good_notes(), 3)),
            Err(KernelError::NotX86_64 { machine: 3 })
        );
        assert_eq!(inspect(b"#!/bin/sh\necho hi\n"), Err(KernelError::NotElf));
        let mut bz = vec![0u8; 0x300];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        assert_eq!(inspect(&bz), Ok(KernelImage::LinuxBzImage));
    }

    #[test]
    fn hostile_sizes_are_errors_not_panics() {
        let mut n = good_notes();
        n[4..8].copy_from_slice(&u32::MAX.to_le_bytes()); // desc size of the first note
        assert!(matches!(
            inspect(&elf_with_notes(&n, EM_X86_64)),
            Err(KernelError::Truncated { .. })
        ));
        let mut elf = elf_with_notes(&good_notes(), EM_X86_64);
        elf[32..40].copy_from_slice(&u64::MAX.to_le_bytes()); // e_phoff
        assert!(matches!(inspect(&elf), Err(KernelError::Truncated { .. })));
        assert!(matches!(
            inspect(&elf[..40]),
            Err(KernelError::Truncated { .. })
        ));
    }
}
