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

/// Bytes of a word held in its table slot: longer words keep the rest in an arena.
const INLINE: usize = 16;

/// The distinct words a builder part has seen with the two ids the builder gives each (keyword
/// and ranked term), looked up once per token. An open-addressing table whose slot holds a
/// word's first [`INLINE`] bytes, its length and its ids: a token reads one slot (usually one
/// cache line) where a hash table of ids read its control bytes, its bucket, the arena and then
/// the ids (dependent cache misses per token, the builder's largest cost at 2^18 documents).
pub(crate) struct Words {
    /// A power of two of slots, at most half full; `len == FREE_LEN` marks a free one.
    slots: Vec<WordSlot>,
    len: usize,
    /// The bytes past [`INLINE`] of longer words.
    rest: Vec<u8>,
}

#[derive(Clone, Copy)]
struct WordSlot {
    key: [u64; 2],
    len: u32,
    /// Where the word's bytes past [`INLINE`] start in `Words::rest`.
    rest_at: u32,
    ids: [u32; 2],
}

/// No word is this long: callers keep every text below `u32::MAX` bytes (see `Part::add`).
const FREE_LEN: u32 = u32::MAX;
const FREE: WordSlot = WordSlot { key: [0; 2], len: FREE_LEN, rest_at: 0, ids: [0; 2] };

impl Default for Words {
    fn default() -> Words {
        Words { slots: vec![FREE; 1024], len: 0, rest: Vec::new() }
    }
}

/// A word's first [`INLINE`] bytes as two words, zero-padded.
#[inline]
fn inline_key(word: &[u8]) -> [u64; 2] {
    let mut k = [0u8; INLINE];
    let n = word.len().min(INLINE);
    k[..n].copy_from_slice(&word[..n]);
    let mut halves = [0u64; 2];
    for (h, bytes) in halves.iter_mut().zip(k.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(bytes);
        *h = u64::from_le_bytes(b);
    }
    halves
}

#[inline]
fn word_hash(key: [u64; 2], len: usize, rest: &[u8]) -> u64 {
    const K: u64 = 0xf135_7aea_2e62_a9c5;
    let mut h = (key[0] ^ len as u64).wrapping_mul(K);
    h = (h.rotate_left(23) ^ key[1]).wrapping_mul(K);
    if !rest.is_empty() {
        h = (h.rotate_left(23) ^ hash_term(rest)).wrapping_mul(K);
    }
    h ^ (h >> 29)
}

impl Words {
    /// The ids of `word`; on first sight they are `make()`'s, remembered.
    #[inline]
    pub(crate) fn ids_or_insert(
        &mut self,
        word: &[u8],
        make: impl FnOnce() -> [u32; 2],
    ) -> [u32; 2] {
        let key = inline_key(word);
        let long = word.get(INLINE..).unwrap_or_default();
        let mask = self.slots.len() - 1;
        let mut i = word_hash(key, word.len(), long) as usize & mask;
        loop {
            let s = &self.slots[i];
            if s.len == FREE_LEN {
                break;
            }
            if s.key == key && s.len as usize == word.len() && self.same_rest(s.rest_at, long) {
                return s.ids;
            }
            i = (i + 1) & mask;
        }
        let ids = make();
        // Below u32::MAX: callers keep the words' bytes below it (see `Part::add`).
        let rest_at = self.rest.len() as u32;
        self.rest.extend_from_slice(long);
        self.slots[i] = WordSlot { key, len: word.len() as u32, rest_at, ids };
        self.len += 1;
        if self.len * 2 > self.slots.len() {
            self.grow();
        }
        ids
    }

    #[inline]
    fn same_rest(&self, at: u32, long: &[u8]) -> bool {
        long.is_empty() || self.rest.get(at as usize..at as usize + long.len()) == Some(long)
    }

    fn grow(&mut self) {
        let doubled = vec![FREE; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        let mask = self.slots.len() - 1;
        for s in old.into_iter().filter(|s| s.len != FREE_LEN) {
            let at = s.rest_at as usize;
            let long = &self.rest[at..at + (s.len as usize).saturating_sub(INLINE)];
            let mut i = word_hash(s.key, s.len as usize, long) as usize & mask;
            while self.slots[i].len != FREE_LEN {
                i = (i + 1) & mask;
            }
            self.slots[i] = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Words;

    #[test]
    fn words_keep_their_ids_through_growth_and_long_shared_prefixes() {
        let mut words = Words::default();
        let mut made = 0u32;
        let mut ids = |words: &mut Words, w: &str| {
            words.ids_or_insert(w.as_bytes(), || {
                made += 1;
                [made, made + 1_000_000]
            })
        };
        // Past 16 bytes, words differ only in what the slot does not hold inline.
        let long_a = "internationalization-a";
        let long_b = "internationalization-b";
        let first = [ids(&mut words, ""), ids(&mut words, long_a), ids(&mut words, long_b)];
        assert_eq!(first, [[1, 1_000_001], [2, 1_000_002], [3, 1_000_003]]);
        // Enough words to grow the table several times (1,024 slots at first).
        let many: Vec<String> = (0..5000).map(|i| format!("w{i}")).collect();
        let given: Vec<[u32; 2]> = many.iter().map(|w| ids(&mut words, w)).collect();
        assert_eq!(ids(&mut words, ""), first[0]);
        assert_eq!(ids(&mut words, long_a), first[1]);
        assert_eq!(ids(&mut words, long_b), first[2]);
        // The 16-byte prefix alone is another word.
        assert_eq!(ids(&mut words, &long_a[..16]), [5004, 1_005_004]);
        for (w, g) in many.iter().zip(&given) {
            assert_eq!(ids(&mut words, w), *g, "{w}");
        }
    }
}
