//! Store-directory layout: file names, the manifest format, and how store files are read.
//!
//! What readers and the writer share. Writing the files (segments, manifests, `HEAD`, the
//! beacon) and removing old ones is the writer's alone: the `index-publisher` crate.
//!
//! ```text
//! <store>/                 0700
//!   store-id               the store's identity (32 hex digits), 0400, written once
//!   segments/<name>.seg    immutable segments, 0400
//!   manifests/<gen>.man    immutable manifests, 0400
//!   HEAD                   the current manifest's file name, 0600, replaced atomically
//!   beacon                 64 bytes, 0600; bytes 0..8 = generation (u64 LE), bumped in place
//! ```
//!
//! The writer publishes in this order: segment files, the manifest, `HEAD`, the beacon. Every
//! file but the beacon is complete before anything names it and never rewritten afterwards, so
//! a reader that follows `HEAD` never meets a half-written file and its mappings are never
//! pulled from under it. The beacon is only a change hint: a reader that sees it move re-reads
//! `HEAD`, which is the truth.
//!
//! A manifest is a small binary file: a 32-byte header (magic [`MANIFEST_MAGIC`], version
//! [`MANIFEST_VERSION`], body length, xxh3-64 of the body) and a little-endian body
//! (generation, commit sequence, the store's identity, then per segment its file name,
//! document count, the segment header's checksum and sorted deleted ordinals). The checksum
//! binds the manifest to the exact segment file it names, and the identity to its store: a
//! reader refuses a segment or a manifest that came from elsewhere.
//!
//! Every store file is opened with [`open_file`]: never through a symbolic link, never a FIFO
//! or a device (no open can hang), only a regular file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The file naming the current manifest.
pub const HEAD: &str = "HEAD";
/// The directory of segment files.
pub const SEGMENTS_DIR: &str = "segments";
/// The directory of manifest files.
pub const MANIFESTS_DIR: &str = "manifests";
/// The change-hint file readers map.
pub const BEACON: &str = "beacon";
/// The beacon's fixed length.
pub const BEACON_LEN: usize = 64;
/// The first eight bytes of a manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"MCMANIF\0";
/// The file holding the store's identity.
pub const STORE_ID: &str = "store-id";
/// The manifest version this build writes and reads (2: store identity and segment checksums).
pub const MANIFEST_VERSION: u32 = 2;
const MANIFEST_HEADER_LEN: usize = 32;

/// Mode of published segment and manifest files: owner-only, read-only.
pub const PUBLISHED_MODE: u32 = 0o400;
/// Mode of `HEAD`, the beacon and other store files the writer replaces: owner-only.
pub const PRIVATE_MODE: u32 = 0o600;
/// The longest `HEAD` this build reads (a manifest file name is far shorter).
const HEAD_MAX_LEN: u64 = 4096;
/// The longest manifest this build reads (about 256 million deleted ordinals).
const MANIFEST_MAX_LEN: u64 = 1 << 30;
/// Mode of the store directory and its subdirectories.
pub const DIR_MODE: u32 = 0o700;

/// Which segments make up one generation of the index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The generation; strictly increases with every publication.
    pub generation: u64,
    /// The writer's commit sequence this generation covers (opaque to the index).
    pub commit_seq: u64,
    /// The identity of the store this manifest belongs to (the `store-id` file).
    pub store_id: [u8; 16],
    /// The live segments.
    pub segments: Vec<SegmentEntry>,
}

/// One live segment of a manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentEntry {
    /// The file name under `segments/`.
    pub file: String,
    /// How many documents the segment holds.
    pub doc_count: u32,
    /// The checksum in the segment file's header (over its header fields and payload), which
    /// a reader compares with the file it maps: the manifest names this exact file.
    pub checksum: u64,
    /// Ordinals deleted since the segment was written, ascending.
    pub deleted: Vec<u32>,
}

impl SegmentEntry {
    /// Live documents: written minus deleted.
    pub fn live(&self) -> u32 {
        self.doc_count.saturating_sub(self.deleted.len() as u32)
    }
}

/// What went wrong reading or publishing the layout.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// A file could not be read, written or listed.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The manifest `HEAD` names belongs to another store (its identity is not this store's).
    #[error("{} names a manifest of another store (its store identity differs)", path.display())]
    Foreign {
        /// `HEAD`.
        path: PathBuf,
    },
    /// A manifest (or `HEAD`) is malformed.
    #[error("manifest {}: {problem}", path.display())]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: ManifestError,
    },
    /// The `store-id` file does not hold an identity.
    #[error("store identity {} is malformed (it holds \"{found}\")", path.display())]
    StoreId {
        /// The file.
        path: PathBuf,
        /// A short excerpt of what it holds.
        found: String,
    },
}

impl LayoutError {
    /// Whether this is a file that does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, LayoutError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// Whether this is damage a writer repairs by publishing anew: a file that is missing,
    /// malformed, or not a regular file (a link, a FIFO).
    pub fn is_damage(&self) -> bool {
        match self {
            LayoutError::Io { source, .. } => {
                source.kind() == io::ErrorKind::NotFound || is_not_regular(source)
            }
            LayoutError::Manifest { .. } => true,
            _ => false,
        }
    }
}

/// Why manifest bytes were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Not a manifest.
    #[error("bad magic bytes")]
    Magic,
    /// A version this build does not know.
    #[error("unsupported manifest version {found} (this build reads version {expected})")]
    Version {
        /// The version this build reads.
        expected: u32,
        /// The version found.
        found: u32,
    },
    /// Reserved header bytes that are not zero.
    #[error("reserved header bytes are not zero")]
    Reserved,
    /// The body's checksum disagrees.
    #[error("checksum mismatch")]
    Checksum,
    /// The bytes end early or run on.
    #[error("truncated or oversized at byte {at}")]
    Length {
        /// Where.
        at: usize,
    },
    /// A segment file name that is not a plain file name.
    #[error("invalid segment file name {0:?}")]
    FileName(String),
    /// Deleted ordinals not ascending or out of range.
    #[error("deleted ordinals of {0} are not ascending below the document count")]
    Deleted(String),
}

/// Whether `name` is a plain file name we could have written: no separators, no dot-files.
pub fn valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

impl Manifest {
    /// Encodes the manifest.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&self.generation.to_le_bytes());
        body.extend_from_slice(&self.commit_seq.to_le_bytes());
        body.extend_from_slice(&self.store_id);
        body.extend_from_slice(&(self.segments.len() as u32).to_le_bytes());
        for s in &self.segments {
            body.extend_from_slice(&(s.file.len() as u32).to_le_bytes());
            body.extend_from_slice(s.file.as_bytes());
            body.extend_from_slice(&s.doc_count.to_le_bytes());
            body.extend_from_slice(&s.checksum.to_le_bytes());
            body.extend_from_slice(&(s.deleted.len() as u32).to_le_bytes());
            for d in &s.deleted {
                body.extend_from_slice(&d.to_le_bytes());
            }
        }
        let mut out = Vec::with_capacity(MANIFEST_HEADER_LEN + body.len());
        out.extend_from_slice(&MANIFEST_MAGIC);
        out.extend_from_slice(&MANIFEST_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(&twox_hash::XxHash3_64::oneshot(&body).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes and checks manifest bytes; never panics, whatever the bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let mut r = Cursor { bytes, at: 0 };
        if r.take(8)? != MANIFEST_MAGIC {
            return Err(ManifestError::Magic);
        }
        let version = r.u32()?;
        if version != MANIFEST_VERSION {
            return Err(ManifestError::Version { expected: MANIFEST_VERSION, found: version });
        }
        if r.u32()? != 0 {
            return Err(ManifestError::Reserved);
        }
        let body_len = r.u64()?;
        let checksum = r.u64()?;
        if body_len != (bytes.len() - MANIFEST_HEADER_LEN) as u64 {
            return Err(ManifestError::Length { at: bytes.len() });
        }
        if twox_hash::XxHash3_64::oneshot(&bytes[MANIFEST_HEADER_LEN..]) != checksum {
            return Err(ManifestError::Checksum);
        }
        let generation = r.u64()?;
        let commit_seq = r.u64()?;
        let mut store_id = [0u8; 16];
        store_id.copy_from_slice(r.take(16)?);
        let count = r.u32()?;
        let mut segments = Vec::new();
        for _ in 0..count {
            let len = r.u32()? as usize;
            let name = std::str::from_utf8(r.take(len)?)
                .map_err(|_| ManifestError::FileName(String::from("<not utf-8>")))?;
            if !valid_file_name(name) {
                return Err(ManifestError::FileName(excerpt(name.as_bytes())));
            }
            let doc_count = r.u32()?;
            let checksum = r.u64()?;
            let n_deleted = r.u32()? as usize;
            if n_deleted > (bytes.len() - r.at) / 4 {
                return Err(ManifestError::Length { at: r.at });
            }
            let mut deleted = Vec::with_capacity(n_deleted);
            for _ in 0..n_deleted {
                deleted.push(r.u32()?);
            }
            if deleted.windows(2).any(|w| w[0] >= w[1])
                || deleted.last().is_some_and(|&l| l >= doc_count)
            {
                return Err(ManifestError::Deleted(name.to_owned()));
            }
            segments.push(SegmentEntry { file: name.to_owned(), doc_count, checksum, deleted });
        }
        if r.at != bytes.len() {
            return Err(ManifestError::Length { at: r.at });
        }
        Ok(Manifest { generation, commit_seq, store_id, segments })
    }

    /// Live documents across all segments.
    pub fn live_docs(&self) -> u64 {
        self.segments.iter().map(|s| u64::from(s.live())).sum()
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ManifestError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(ManifestError::Length { at: self.at })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u32(&mut self) -> Result<u32, ManifestError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> Result<u64, ManifestError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
}

/// `<store>/segments/<file>`.
pub fn segment_path(store: &Path, file: &str) -> PathBuf {
    store.join(SEGMENTS_DIR).join(file)
}

/// `<store>/manifests/<file>`.
pub fn manifest_path(store: &Path, file: &str) -> PathBuf {
    store.join(MANIFESTS_DIR).join(file)
}

/// `<store>/HEAD`.
pub fn head_path(store: &Path) -> PathBuf {
    store.join(HEAD)
}

/// `<store>/beacon`.
pub fn beacon_path(store: &Path) -> PathBuf {
    store.join(BEACON)
}

/// The file name of generation `generation`'s manifest.
pub fn manifest_file_name(generation: u64) -> String {
    format!("{generation:016}.man")
}

/// Opens the store file at `path` with `options`, without following a symbolic link at
/// `path` and without blocking (a FIFO or a device at `path` cannot make the open hang), and
/// refuses anything but a regular file. The error says which it found.
pub fn open_file(path: &Path, options: &mut fs::OpenOptions) -> io::Result<fs::File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let file = options.open(path).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ELOOP) {
            return not_regular("a symbolic link");
        }
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ENXIO) {
            return not_regular("a FIFO or socket");
        }
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::EISDIR) {
            return not_regular("a directory");
        }
        e
    })?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(not_regular(if kind.is_dir() { "a directory" } else { "a FIFO or device" }));
    }
    Ok(file)
}

fn not_regular(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("is {what}, not a regular file (store files are never followed or waited on)"),
    )
}

/// Whether `e` is [`open_file`] refusing something that is not a regular file.
pub fn is_not_regular(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidInput
}

/// Reads a whole store file through [`open_file`]; refuses one longer than `limit` bytes.
pub fn read_file(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = open_file(path, fs::OpenOptions::new().read(true))?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("longer than the {limit} bytes this file may hold"),
        ));
    }
    Ok(bytes)
}

/// A short, escaped excerpt of file content for an error message: never more than a few
/// dozen characters of whatever a file holds.
pub fn excerpt(bytes: &[u8]) -> String {
    const MAX: usize = 24;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
    let mut out: String = text.escape_debug().collect();
    if bytes.len() > MAX {
        out.push_str("...");
    }
    out
}

/// Reads `HEAD` and the manifest it names. `Ok(None)` when nothing was published yet.
pub fn read_head(store: &Path) -> Result<Option<(String, Manifest)>, LayoutError> {
    let head = head_path(store);
    let name = match read_file(&head, HEAD_MAX_LEN) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LayoutError::Io { what: "reading", path: head, source }),
    };
    let trimmed = std::str::from_utf8(&name).map(str::trim).unwrap_or("");
    if !valid_file_name(trimmed) {
        return Err(LayoutError::Manifest {
            path: head,
            problem: ManifestError::FileName(excerpt(&name)),
        });
    }
    let path = manifest_path(store, trimmed);
    let bytes = read_file(&path, MANIFEST_MAX_LEN).map_err(|source| LayoutError::Io {
        what: "reading",
        path: path.clone(),
        source,
    })?;
    let manifest =
        Manifest::from_bytes(&bytes).map_err(|problem| LayoutError::Manifest { path, problem })?;
    Ok(Some((trimmed.to_owned(), manifest)))
}

/// Reads the store's identity from `<store>/store-id`; `Ok(None)` if the file does not exist.
pub fn read_store_id(store: &Path) -> Result<Option<[u8; 16]>, LayoutError> {
    let path = store.join(STORE_ID);
    let bytes = match read_file(&path, 64) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LayoutError::Io { what: "reading", path, source }),
    };
    parse_store_id(&bytes).map(Some).ok_or(LayoutError::StoreId { path, found: excerpt(&bytes) })
}

fn parse_store_id(bytes: &[u8]) -> Option<[u8; 16]> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    if text.len() != 32 {
        return None;
    }
    let value = u128::from_str_radix(text, 16).ok()?;
    Some(value.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            generation: 3,
            commit_seq: 9,
            store_id: *b"0123456789abcdef",
            segments: vec![
                SegmentEntry {
                    file: "a.seg".into(),
                    doc_count: 10,
                    checksum: 7,
                    deleted: vec![1, 4],
                },
                SegmentEntry { file: "b.seg".into(), doc_count: 2, checksum: 8, deleted: vec![] },
            ],
        }
    }

    #[test]
    fn manifest_round_trips() {
        let m = sample();
        assert_eq!(Manifest::from_bytes(&m.to_bytes()), Ok(m));
    }

    #[test]
    fn every_flipped_bit_and_truncation_is_refused() {
        let bytes = sample().to_bytes();
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(Manifest::from_bytes(&b).is_err(), "bit {bit} flipped was accepted");
        }
        for len in 0..bytes.len() {
            assert!(Manifest::from_bytes(&bytes[..len]).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Manifest::from_bytes(&longer).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn open_file_refuses_links_fifos_and_directories_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"content").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        for (path, what) in
            [(&link, "symbolic link"), (&fifo, "FIFO"), (&dir.path().to_owned(), "directory")]
        {
            for write in [false, true] {
                let err = open_file(path, fs::OpenOptions::new().read(!write).write(write))
                    .expect_err("only regular files open");
                assert!(is_not_regular(&err), "{err}");
                assert!(err.to_string().contains(what), "{}: {err}", path.display());
            }
        }
        assert_eq!(read_file(&target, 7).unwrap(), b"content");
        assert_eq!(read_file(&target, 6).unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert_eq!(fs::read(&target).unwrap(), b"content", "the link's target untouched");
    }

    #[test]
    fn excerpts_are_short_and_escaped() {
        assert_eq!(excerpt(b"0000000000000001.man\n"), "0000000000000001.man\\n");
        let long = excerpt(&[b'x'; 10_000]);
        assert!(long.len() < 40 && long.ends_with("..."), "{long}");
        assert_eq!(excerpt(b"\x1b[31m"), "\\u{1b}[31m");
    }

    #[test]
    fn refuses_unknown_version_and_path_like_names() {
        let mut b = sample().to_bytes();
        b[8..12].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(Manifest::from_bytes(&b), Err(ManifestError::Version { expected: 2, found: 3 }));
        let mut m = sample();
        m.segments[0].file = "../../etc/passwd".into();
        assert!(matches!(Manifest::from_bytes(&m.to_bytes()), Err(ManifestError::FileName(_))));
        let mut m = sample();
        m.segments[0].deleted = vec![4, 1];
        assert!(matches!(Manifest::from_bytes(&m.to_bytes()), Err(ManifestError::Deleted(_))));
    }
}
