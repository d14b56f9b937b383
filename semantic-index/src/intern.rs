//! Interning terms: one arena of bytes, a hash table of ids, each term hashed once.

use std::hash::Hasher as _;

use hashbrown::HashTable;
use rustc_hash::FxHasher;

/// The hash of a keyword's bytes (FxHash: a multiply per eight bytes).
pub(crate) fn hash_term(term: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(term);
    h.finish()
}

/// Interned keywords: ids in order of first sight, their bytes in one arena.
///
/// A table slot holds the term's span in the arena beside its id, so that a lookup goes from
/// the slot straight to the bytes it compares.
pub(crate) struct Terms {
    /// `[start, end, id]` per term: `bytes[start..end]` is term `id`.
    table: HashTable<[u32; 3]>,
    pub(crate) hashes: Vec<u64>,
    pub(crate) bytes: Vec<u8>,
    /// Term `i` is `bytes[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<u32>,
}

impl Default for Terms {
    fn default() -> Terms {
        Terms { table: HashTable::new(), hashes: Vec::new(), bytes: Vec::new(), offsets: vec![0] }
    }
}

impl Terms {
    pub(crate) fn len(&self) -> usize {
        self.hashes.len()
    }

    /// The hash term `id` was interned with.
    pub(crate) fn hash(&self, id: usize) -> u64 {
        self.hashes[id]
    }

    pub(crate) fn get(&self, id: u32) -> &[u8] {
        let i = id as usize;
        &self.bytes[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// The id of `term` (with its `hash`), and whether it is new.
    ///
    /// Callers keep the number of terms and the arena below `u32::MAX` (see `Part::add`).
    pub(crate) fn intern(&mut self, term: &[u8], hash: u64) -> (u32, bool) {
        let Terms { table, hashes, bytes, offsets } = self;
        let found = table
            .find(hash, |&[start, end, _]| same_bytes(&bytes[start as usize..end as usize], term));
        if let Some(&[_, _, id]) = found {
            return (id, false);
        }
        let id = hashes.len() as u32;
        let start = bytes.len() as u32;
        bytes.extend_from_slice(term);
        let end = bytes.len() as u32;
        table.insert_unique(hash, [start, end, id], |&[_, _, id]| hashes[id as usize]);
        hashes.push(hash);
        offsets.push(end);
        (id, true)
    }
}

/// Byte equality for short strings, eight bytes at a time, without a call to memcmp.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut a8, mut b8) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut a8).zip(&mut b8) {
        if x != y {
            return false;
        }
    }
    a8.remainder() == b8.remainder()
}
