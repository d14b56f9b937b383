//! The content file: each memory's full text (question, synthesis, sacred reason, insights)
//! beside its segment, for readers that quote what memories say, not only their 160-byte gist.
//!
//! One content file per segment, `segments/<segment stem>.cnt`, written by the writer with the
//! segment and immutable like it. It names the segment it belongs to by the segment's header
//! checksum (the one the manifest carries), so a content file of another segment or another
//! store is refused; the manifest format does not change. Layout (all integers little-endian):
//!
//! ```text
//! header, 64 bytes
//!   0  magic "MCCONTNT"        8
//!   8  version u32 (1)         12 flags u32 (0)
//!   16 count u32               20 reserved u32 (0)
//!   24 segment checksum u64    32 table checksum u64 (xxh3-64 of the table)
//!   40 data length u64         48 reserved u64 (0)
//!   56 header checksum u64 (xxh3-64 of bytes 0..56)
//! table, count × 32 bytes, sorted by id, ids distinct
//!   id [u8; 16]   offset u64 (into data)   entry checksum u64 (xxh3-64, seeded by the id)
//! data, entries back to back (entry i ends where entry i + 1 starts, the last at data length)
//!   n insights u32, len question u32, len synthesis u32, len sacred reason u32,
//!   len insight u32 × n, then the UTF-8 bytes of question, synthesis, reason, insights
//! ```
//!
//! Open checks the header and the table (24 + 8 bytes per memory); an entry is checked when it
//! is read: its bounds, its checksum (so damage anywhere is an error, not wrong text), its
//! lengths and its UTF-8. Reading borrows the strings from the file's bytes: no copy, no
//! allocation. [`ContentView::verify`] checks every entry.

use std::fmt;

/// The first eight bytes of a content file.
pub const CONTENT_MAGIC: [u8; 8] = *b"MCCONTNT";
/// The content format version this build writes and reads.
pub const CONTENT_VERSION: u32 = 1;
/// The header's length.
pub const CONTENT_HEADER_LEN: usize = 64;
/// One table row: id, offset, checksum.
pub const CONTENT_ROW_LEN: usize = 32;
/// The file name extension of content files.
pub const CONTENT_EXTENSION: &str = "cnt";

/// The content file name of the segment file `segment` (`<stem>.cnt`).
pub fn content_file_name(segment: &str) -> String {
    let stem = segment.strip_suffix(".seg").unwrap_or(segment);
    format!("{stem}.{CONTENT_EXTENSION}")
}

/// The checksum of one entry: xxh3-64 of its bytes, seeded by its id (so an entry moved under
/// another id does not pass).
pub fn entry_checksum(id: &[u8; 16], entry: &[u8]) -> u64 {
    let mut seed = [0u8; 8];
    for (i, b) in id.iter().enumerate() {
        seed[i % 8] ^= b;
    }
    twox_hash::XxHash3_64::oneshot_with_seed(u64::from_le_bytes(seed), entry)
}

/// One memory's content, as given to [`ContentBuilder::add`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ContentFields<'a> {
    /// The whole question.
    pub question: &'a str,
    /// The synthesis.
    pub synthesis: &'a str,
    /// Why the memory is sacred (empty if it is not, or no reason was given).
    pub sacred_reason: &'a str,
    /// Every insight, in order.
    pub insights: &'a [String],
}

/// Why content bytes were refused. Never a panic, whatever the bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    /// Not a content file.
    #[error("not a content file (bad magic)")]
    Magic,
    /// A version this build does not read.
    #[error("unsupported content version {found} (this build reads version {expected})")]
    Version {
        /// This build's version.
        expected: u32,
        /// The file's.
        found: u32,
    },
    /// The header's checksum does not match.
    #[error("content header checksum mismatch")]
    HeaderChecksum,
    /// Reserved fields are not zero.
    #[error("content header: reserved fields are not zero")]
    Reserved,
    /// The file's length disagrees with the header's counts.
    #[error("content file is {found} bytes, its header says {expected}")]
    Length {
        /// What the header implies.
        expected: u64,
        /// The file's length.
        found: u64,
    },
    /// The table's checksum does not match.
    #[error("content table checksum mismatch")]
    TableChecksum,
    /// The file belongs to another segment.
    #[error("content file belongs to segment {found:#018x}, not {expected:#018x}")]
    Segment {
        /// The segment's checksum.
        expected: u64,
        /// The one the file names.
        found: u64,
    },
    /// An entry is malformed.
    #[error("content entry {row}: {problem}")]
    Entry {
        /// Its row in the table.
        row: u32,
        /// What is wrong.
        problem: &'static str,
    },
    /// The table is not sorted by id, or holds an id twice.
    #[error("content table row {row} is out of order")]
    Order {
        /// The first row out of order.
        row: u32,
    },
}

/// Collects memories' content and encodes a content file.
#[derive(Default)]
pub struct ContentBuilder {
    rows: Vec<([u8; 16], u64, u64)>,
    data: Vec<u8>,
}

impl fmt::Debug for ContentBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContentBuilder")
            .field("memories", &self.rows.len())
            .field("bytes", &self.data.len())
            .finish()
    }
}

impl ContentBuilder {
    /// An empty builder.
    pub fn new() -> ContentBuilder {
        ContentBuilder::default()
    }

    /// How many memories were added.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Adds one memory's content. A string longer than 4 GiB is cut (on a character boundary).
    pub fn add(&mut self, id: [u8; 16], fields: &ContentFields<'_>) {
        let start = self.data.len();
        let strings = [fields.question, fields.synthesis, fields.sacred_reason];
        let insights = fields.insights.iter().map(String::as_str);
        let all: Vec<&str> = strings.into_iter().chain(insights).map(fit_u32).collect();
        let n = u32::try_from(all.len() - 3).unwrap_or(u32::MAX);
        self.data.extend_from_slice(&n.to_le_bytes());
        for s in &all[..3] {
            self.data.extend_from_slice(&(s.len() as u32).to_le_bytes());
        }
        for s in &all[3..3 + n as usize] {
            self.data.extend_from_slice(&(s.len() as u32).to_le_bytes());
        }
        for s in &all[..3 + n as usize] {
            self.data.extend_from_slice(s.as_bytes());
        }
        let checksum = entry_checksum(&id, &self.data[start..]);
        self.rows.push((id, start as u64, checksum));
    }

    /// Encodes the content file of the segment whose header checksum is `segment_checksum`.
    pub fn to_bytes(&self, segment_checksum: u64) -> Vec<u8> {
        let mut rows: Vec<usize> = (0..self.rows.len()).collect();
        rows.sort_unstable_by_key(|&r| self.rows[r].0);
        let mut table = Vec::with_capacity(rows.len() * CONTENT_ROW_LEN);
        let mut spans = Vec::with_capacity(rows.len());
        let mut data_len = 0u64;
        for &r in &rows {
            let (id, start, checksum) = self.rows[r];
            let end = self.rows.get(r + 1).map_or(self.data.len() as u64, |next| next.1);
            table.extend_from_slice(&id);
            table.extend_from_slice(&data_len.to_le_bytes());
            table.extend_from_slice(&checksum.to_le_bytes());
            data_len += end - start;
            spans.push(start as usize..end as usize);
        }
        // The texts are copied once, straight into the file's bytes in id order.
        let mut out = Vec::with_capacity(CONTENT_HEADER_LEN + table.len() + data_len as usize);
        out.extend_from_slice(&CONTENT_MAGIC);
        out.extend_from_slice(&CONTENT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&segment_checksum.to_le_bytes());
        out.extend_from_slice(&twox_hash::XxHash3_64::oneshot(&table).to_le_bytes());
        out.extend_from_slice(&data_len.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        let header_checksum = twox_hash::XxHash3_64::oneshot(&out);
        out.extend_from_slice(&header_checksum.to_le_bytes());
        out.extend_from_slice(&table);
        for span in spans {
            out.extend_from_slice(&self.data[span]);
        }
        out
    }
}

/// `s` cut to at most `u32::MAX` bytes, on a character boundary.
fn fit_u32(s: &str) -> &str {
    let mut end = s.len().min(u32::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// A checked view of a content file's bytes: the header and table were checked, entries are
/// checked when read.
#[derive(Clone, Copy)]
pub struct ContentView<'a> {
    table: &'a [u8],
    data: &'a [u8],
    count: u32,
    segment_checksum: u64,
}

impl fmt::Debug for ContentView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContentView")
            .field("count", &self.count)
            .field("data_len", &self.data.len())
            .finish()
    }
}

impl<'a> ContentView<'a> {
    /// Checks the header and the table of `bytes` (O(count), not O(size)).
    pub fn new(bytes: &'a [u8]) -> Result<ContentView<'a>, ContentError> {
        let header = bytes.get(..CONTENT_HEADER_LEN).ok_or(ContentError::Length {
            expected: CONTENT_HEADER_LEN as u64,
            found: bytes.len() as u64,
        })?;
        if header[..8] != CONTENT_MAGIC {
            return Err(ContentError::Magic);
        }
        let field = |at| u64_at(header, at).unwrap_or(0);
        let version = u32_at(header, 8).unwrap_or(0);
        if version != CONTENT_VERSION {
            return Err(ContentError::Version { expected: CONTENT_VERSION, found: version });
        }
        if twox_hash::XxHash3_64::oneshot(&header[..56]) != field(56) {
            return Err(ContentError::HeaderChecksum);
        }
        if u32_at(header, 12) != Some(0) || u32_at(header, 20) != Some(0) || field(48) != 0 {
            return Err(ContentError::Reserved);
        }
        let count = u32_at(header, 16).unwrap_or(0);
        let data_len = field(40);
        let table_len = u64::from(count) * CONTENT_ROW_LEN as u64;
        let expected =
            (CONTENT_HEADER_LEN as u64).saturating_add(table_len).saturating_add(data_len);
        if expected != bytes.len() as u64 {
            return Err(ContentError::Length { expected, found: bytes.len() as u64 });
        }
        let (table, data) = bytes[CONTENT_HEADER_LEN..].split_at(table_len as usize);
        if twox_hash::XxHash3_64::oneshot(table) != field(32) {
            return Err(ContentError::TableChecksum);
        }
        let view = ContentView { table, data, count, segment_checksum: field(24) };
        let mut previous: Option<([u8; 16], u64)> = None;
        for row in 0..count {
            let (id, offset, _) = view.row(row).ok_or(ContentError::Order { row })?;
            if offset > data.len() as u64 || previous.is_some_and(|(p, o)| p >= id || o > offset) {
                return Err(ContentError::Order { row });
            }
            previous = Some((id, offset));
        }
        Ok(view)
    }

    /// A view of bytes that passed [`ContentView::new`] before and cannot have changed since
    /// (an immutable mapping): O(1), the header's fields and lengths only. Its reads stay
    /// bounds-checked and entries are still checked when read; only the table checksum and
    /// order are not checked again.
    pub fn after_check(bytes: &'a [u8]) -> Result<ContentView<'a>, ContentError> {
        let header = bytes.get(..CONTENT_HEADER_LEN).ok_or(ContentError::Length {
            expected: CONTENT_HEADER_LEN as u64,
            found: bytes.len() as u64,
        })?;
        let count = u32_at(header, 16).unwrap_or(0);
        let table_len = u64::from(count) * CONTENT_ROW_LEN as u64;
        let rest = &bytes[CONTENT_HEADER_LEN..];
        if table_len > rest.len() as u64 {
            return Err(ContentError::Length {
                expected: CONTENT_HEADER_LEN as u64 + table_len,
                found: bytes.len() as u64,
            });
        }
        let (table, data) = rest.split_at(table_len as usize);
        Ok(ContentView { table, data, count, segment_checksum: u64_at(header, 24).unwrap_or(0) })
    }

    /// A view of no memories.
    pub fn empty() -> ContentView<'static> {
        ContentView { table: &[], data: &[], count: 0, segment_checksum: 0 }
    }

    /// How many memories the file holds.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether the file holds no memory.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The header checksum of the segment this file belongs to.
    pub fn segment_checksum(&self) -> u64 {
        self.segment_checksum
    }

    fn row(&self, row: u32) -> Option<([u8; 16], u64, u64)> {
        let at = row as usize * CONTENT_ROW_LEN;
        let r = self.table.get(at..at + CONTENT_ROW_LEN)?;
        let mut id = [0u8; 16];
        id.copy_from_slice(&r[..16]);
        Some((id, u64_at(r, 16)?, u64_at(r, 24)?))
    }

    /// The content of the memory `id`: `Ok(None)` if the file does not hold it, an error if its
    /// entry is damaged. Binary search over the table; no allocation.
    pub fn get(&self, id: &[u8; 16]) -> Result<Option<ContentRef<'a>>, ContentError> {
        let (mut lo, mut hi) = (0u32, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let Some((found, _, _)) = self.row(mid) else { return Ok(None) };
            match found.cmp(id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return self.entry(mid).map(Some),
            }
        }
        Ok(None)
    }

    /// The entry at table row `row`, checked.
    pub fn entry(&self, row: u32) -> Result<ContentRef<'a>, ContentError> {
        let bad = |problem| ContentError::Entry { row, problem };
        let (id, start, checksum) = self.row(row).ok_or(bad("no such row"))?;
        let end = if row + 1 < self.count {
            self.row(row + 1).ok_or(bad("no such row"))?.1
        } else {
            self.data.len() as u64
        };
        let entry = usize::try_from(start)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(s, e)| self.data.get(s..e))
            .ok_or(bad("offsets out of bounds"))?;
        if entry_checksum(&id, entry) != checksum {
            return Err(bad("checksum mismatch"));
        }
        let n = u32_at(entry, 0).ok_or(bad("truncated"))? as usize;
        let lengths_end = (n as u64 + 4) * 4;
        if lengths_end > entry.len() as u64 {
            return Err(bad("too many insights for its length"));
        }
        let mut total = lengths_end;
        for i in 0..n + 3 {
            total += u64::from(u32_at(entry, 4 + 4 * i).ok_or(bad("truncated"))?);
        }
        if total != entry.len() as u64 {
            return Err(bad("lengths do not add up to the entry's"));
        }
        let fixed =
            std::str::from_utf8(&entry[lengths_end as usize..]).map_err(|_| bad("not UTF-8"))?;
        let reference = ContentRef { id, entry, text: fixed, insights: n as u32 };
        // Every string must start on a character boundary.
        for i in 0..n + 3 {
            reference.string(i).ok_or(bad("a string is cut inside a character"))?;
        }
        Ok(reference)
    }

    /// Checks every entry (O(size)).
    pub fn verify(&self) -> Result<(), ContentError> {
        for row in 0..self.count {
            self.entry(row)?;
        }
        Ok(())
    }
}

/// One memory's content, borrowed from the file.
#[derive(Clone, Copy)]
pub struct ContentRef<'a> {
    id: [u8; 16],
    entry: &'a [u8],
    /// Every string, back to back.
    text: &'a str,
    insights: u32,
}

impl fmt::Debug for ContentRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContentRef")
            .field("question", &self.question())
            .field("insights", &self.insights)
            .finish_non_exhaustive()
    }
}

impl<'a> ContentRef<'a> {
    /// The string at index `i` (question, synthesis, reason, insights...), if on boundaries.
    fn string(&self, i: usize) -> Option<&'a str> {
        let mut start = 0usize;
        for j in 0..i {
            start += u32_at(self.entry, 4 + 4 * j)? as usize;
        }
        let len = u32_at(self.entry, 4 + 4 * i)? as usize;
        self.text.get(start..start.checked_add(len)?)
    }

    /// The memory's id.
    pub fn id(&self) -> [u8; 16] {
        self.id
    }

    /// The whole question.
    pub fn question(&self) -> &'a str {
        self.string(0).unwrap_or_default()
    }

    /// The synthesis (empty if none).
    pub fn synthesis(&self) -> &'a str {
        self.string(1).unwrap_or_default()
    }

    /// Why the memory is sacred (empty if none given).
    pub fn sacred_reason(&self) -> &'a str {
        self.string(2).unwrap_or_default()
    }

    /// How many insights the memory has.
    pub fn insight_count(&self) -> usize {
        self.insights as usize
    }

    /// The insights, in order.
    pub fn insights(&self) -> impl Iterator<Item = &'a str> + 'a {
        let this = *self;
        let n = self.insights as usize;
        let mut start = 0usize;
        let mut i = 0usize;
        let skip: usize = (0..3).map(|j| u32_at(this.entry, 4 + 4 * j).unwrap_or(0) as usize).sum();
        start += skip;
        std::iter::from_fn(move || {
            if i >= n {
                return None;
            }
            let len = u32_at(this.entry, 4 + 4 * (3 + i))? as usize;
            let s = this.text.get(start..start + len)?;
            start += len;
            i += 1;
            Some(s)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (ContentBuilder, Vec<[u8; 16]>) {
        let mut b = ContentBuilder::new();
        let ids = vec![[9u8; 16], [1u8; 16], [5u8; 16]];
        let insights = [
            vec!["rename lives in the directory".to_string(), "fsync it".into()],
            vec![],
            vec!["é".into()],
        ];
        for (n, id) in ids.iter().enumerate() {
            b.add(
                *id,
                &ContentFields {
                    question: &format!("question {n}"),
                    synthesis: if n == 0 { "fsync the directory too" } else { "" },
                    sacred_reason: if n == 2 { "a vow" } else { "" },
                    insights: &insights[n],
                },
            );
        }
        (b, ids)
    }

    #[test]
    fn content_round_trips_by_id() {
        let (b, ids) = sample();
        let bytes = b.to_bytes(0xfeed);
        let view = ContentView::new(&bytes).unwrap();
        assert_eq!(view.len(), 3);
        assert_eq!(view.segment_checksum(), 0xfeed);
        let first = view.get(&ids[0]).unwrap().unwrap();
        assert_eq!(first.question(), "question 0");
        assert_eq!(first.synthesis(), "fsync the directory too");
        assert_eq!(first.sacred_reason(), "");
        assert_eq!(
            first.insights().collect::<Vec<_>>(),
            ["rename lives in the directory", "fsync it"]
        );
        let third = view.get(&ids[2]).unwrap().unwrap();
        assert_eq!(third.sacred_reason(), "a vow");
        assert_eq!(third.insights().collect::<Vec<_>>(), ["é"]);
        assert_eq!(view.get(&ids[1]).unwrap().unwrap().insight_count(), 0);
        assert!(view.get(&[0u8; 16]).unwrap().is_none());
        view.verify().unwrap();
        assert_eq!(content_file_name("0000000000000003-000001.seg"), "0000000000000003-000001.cnt");
    }

    #[test]
    fn damage_is_an_error_naming_the_part() {
        let (b, ids) = sample();
        let bytes = b.to_bytes(7);
        let mut body = bytes.clone();
        *body.last_mut().unwrap() ^= 1;
        let view = ContentView::new(&body).unwrap();
        // The last entry in id order is [9; 16].
        assert!(matches!(view.get(&ids[0]), Err(ContentError::Entry { row: 2, .. })));
        assert!(view.verify().is_err());
        let mut table = bytes.clone();
        table[CONTENT_HEADER_LEN + 3] ^= 1;
        assert_eq!(ContentView::new(&table).unwrap_err(), ContentError::TableChecksum);
        let mut header = bytes.clone();
        header[16] ^= 1;
        assert_eq!(ContentView::new(&header).unwrap_err(), ContentError::HeaderChecksum);
        assert_eq!(
            ContentView::new(&bytes[..bytes.len() - 1]).unwrap_err(),
            ContentError::Length { expected: bytes.len() as u64, found: bytes.len() as u64 - 1 }
        );
        assert_eq!(
            ContentView::new(b"MCCONTNT").unwrap_err(),
            ContentError::Length { expected: 64, found: 8 }
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512), flips in proptest::collection::vec((0usize..4096, 0u8..8), 0..4)) {
            let _ = ContentView::new(&bytes).map(|v| v.verify());
            let (b, ids) = sample();
            let mut good = b.to_bytes(1);
            for (at, bit) in flips {
                let n = good.len();
                good[at % n] ^= 1 << bit;
            }
            if let Ok(view) = ContentView::new(&good) {
                for id in &ids {
                    if let Ok(Some(c)) = view.get(id) {
                        let _ = (c.question(), c.synthesis(), c.insights().count());
                    }
                }
                let _ = view.verify();
            }
        }
    }
}
