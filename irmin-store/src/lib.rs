//! # irmin-store
//!
//! A content-addressed, branchable, mergeable key/value store whose objects are Git
//! objects, byte for byte: a repository written by this crate is a Git repository that
//! `git log`, `git show` and `git fsck --strict` accept, and repositories written by `git`
//! can be read (loose objects and packs).
//!
//! The core (object model, hashing, tree/commit logic, merge, pack codec, the in-memory
//! and block-device backends) is `no_std + alloc` so it runs inside a Xen PV guest. The
//! `std` feature (default) adds the on-disk Git backend, sync with Git remotes and the
//! `irmin-store` CLI.
#![cfg_attr(not(feature = "std"), no_std)]
// The only unsafe code is the syncfs(2) call in backend::disk.
#![deny(unsafe_code)]

extern crate alloc;

pub mod backend;
pub mod error;
pub mod hash;
pub mod merge;
pub mod object;
pub mod pack;
pub mod path;
#[cfg(feature = "std")]
pub mod remote;
pub mod store;
pub mod sync;
pub mod zlib;

pub use backend::Backend;
pub use backend::memory::MemoryBackend;
pub use error::{CorruptKind, Error, Result};
pub use hash::ObjectId;
pub use merge::{Conflict, MergeFn, MergeOutcome, PendingMerge, Resolution};
pub use object::{Commit, Mode, ObjectKind, Signature, Tree, TreeEntry};
pub use path::Path;
pub use store::{Change, ChangeKind, CommitInfo, EntryKind, Op, Repo, Transaction};
