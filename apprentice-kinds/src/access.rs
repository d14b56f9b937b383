//! What the witness reads of the access log (`semantic_index::access`): the memories
//! apprentices used, as the store's writer recorded them. Read-only and incremental: each
//! invitation reads only the bytes appended since the last one, into a compact window of the
//! newest responses (their times and the ids they used, with an index from id to responses),
//! so an invitation costs one `open`, one `fstat` and a read of what is new, whatever the log's
//! size.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use semantic_index::access::{access_log_path, decode_frames_ending};

use crate::plural;
use crate::quotes::short_id;

/// The most bytes of the log read at once: on first reading, or when more than this was
/// appended since, the witness starts from the log's newest `TAIL` bytes.
pub(crate) const TAIL: u64 = 512 * 1024;
/// The most ids the window keeps (16 bytes each, plus 4 in the index): beyond, the oldest
/// responses are dropped until half remain.
const WINDOW_IDS: usize = 32 * 1024;

type Hasher = foldhash::fast::RandomState;

/// The access log as the witness has read it so far.
#[derive(Debug, Default)]
pub(crate) struct AccessTail {
    /// Read scratch for the bytes appended since the last read (at most [`TAIL`]).
    buf: Vec<u8>,
    /// The log file's identity (device, inode) when known: a replaced log is read anew.
    file: Option<(u64, u64)>,
    /// Log bytes consumed: the end of the last intact frame read.
    offset: u64,
    /// Whether older responses than the window's exist (a tail read, or dropped ones).
    partial: bool,
    /// Damaged bytes skipped among the frames read.
    skipped: u64,
    /// Bytes after the last intact frame at the last read (torn, or being appended).
    trailing: u64,
    /// The window's responses: time and the end of its uses in `ids`.
    frames: Vec<(i64, u32)>,
    /// Every use, response by response: the memory's id.
    ids: Vec<[u8; 16]>,
    /// Beside `ids`: the response (index into `frames`) and the previous use of the same
    /// memory ([`NONE`] for its first), so each memory's uses form a list.
    links: Vec<(u32, u32)>,
    /// Id → its newest use (index into `ids`).
    last_use: HashMap<[u8; 16], u32, Hasher>,
}

/// The end of a memory's list of uses.
const NONE: u32 = u32::MAX;

/// One matching memory, as the witness knows it.
pub(crate) struct Matched<'a> {
    pub(crate) id: [u8; 16],
    pub(crate) domain: &'a str,
    /// The memory (its gist is read only when a line names it).
    pub(crate) doc: shm_reader::DocRef<'a>,
}

impl AccessTail {
    fn reset(&mut self) {
        self.offset = 0;
        self.partial = false;
        self.skipped = 0;
        self.trailing = 0;
        self.frames.clear();
        self.ids.clear();
        self.links.clear();
        self.last_use.clear();
    }

    /// Adds one use of memory `id` by the newest response (`frame`); a response that names a
    /// memory twice uses it once.
    fn add_use(&mut self, frame: u32, id: [u8; 16]) {
        let previous = self.last_use.get(&id).copied().unwrap_or(NONE);
        if previous != NONE && self.links[previous as usize].0 == frame {
            return;
        }
        self.last_use.insert(id, self.ids.len() as u32);
        self.ids.push(id);
        self.links.push((frame, previous));
    }

    /// Reads what was appended to store `dir`'s access log since the last call; `false` if
    /// there is no log.
    fn update(&mut self, dir: &Path) -> bool {
        let path = access_log_path(dir);
        let Ok(mut file) =
            semantic_index::layout::open_file(&path, std::fs::OpenOptions::new().read(true))
        else {
            self.reset();
            self.file = None;
            return false;
        };
        let Ok(meta) = file.metadata() else { return false };
        let identity = file_identity(&meta);
        let len = meta.len();
        if identity != self.file || len < self.offset {
            // Another log, or one cut shorter: read it anew.
            self.reset();
            self.file = identity;
        }
        if len - self.offset > TAIL {
            // Too much is new: the window restarts at the log's newest bytes.
            self.reset();
            self.offset = len - TAIL;
            self.partial = true;
        }
        if len == self.offset {
            self.trailing = 0;
            return true;
        }
        self.buf.clear();
        let read = file
            .seek(SeekFrom::Start(self.offset))
            .and_then(|_| (&mut file).take(len - self.offset).read_to_end(&mut self.buf));
        if read.is_err() {
            return true;
        }
        let mut end = 0;
        let mut buf = std::mem::take(&mut self.buf);
        let skipped = decode_frames_ending(&buf, |frame, at| {
            let index = self.frames.len() as u32;
            for id in &frame.ids {
                self.add_use(index, *id);
            }
            self.frames.push((frame.time_micros, self.ids.len() as u32));
            end = at;
        });
        let read = buf.len();
        buf.clear();
        self.buf = buf;
        // Bytes after the last intact frame are left for the next read (a frame being
        // appended); skipped bytes before it are damage, or the cut of a tail read.
        self.trailing = (read - end) as u64;
        self.skipped += skipped.saturating_sub(self.trailing);
        self.offset += end as u64;
        if self.ids.len() > WINDOW_IDS {
            self.shrink();
        }
        true
    }

    /// Drops the oldest responses until at most half the window's uses remain, and relinks
    /// the rest.
    fn shrink(&mut self) {
        let keep_from = self.ids.len() - WINDOW_IDS / 2;
        let first = self.frames.partition_point(|&(_, end)| (end as usize) <= keep_from);
        let cut = if first == 0 { 0 } else { self.frames[first - 1].1 as usize };
        let frames: Vec<(i64, u32)> = self.frames[first..].to_vec();
        let ids: Vec<[u8; 16]> = self.ids[cut..].to_vec();
        self.frames.clear();
        self.ids.clear();
        self.links.clear();
        self.last_use.clear();
        let mut start = 0usize;
        for (time, end) in frames {
            let index = self.frames.len() as u32;
            for &id in &ids[start..end as usize - cut] {
                self.add_use(index, id);
            }
            start = end as usize - cut;
            self.frames.push((time, self.ids.len() as u32));
        }
        self.partial = true;
    }

    /// The witness's lines on how apprentices used the `matched` memories.
    pub(crate) fn patterns(&mut self, dir: &Path, matched: &[Matched<'_>]) -> Vec<String> {
        if !self.update(dir) {
            return vec![
                "Access patterns: no apprentice use recorded yet (`mcs invite` and `mcs circle` record it)."
                    .to_owned(),
            ];
        }
        let (total, partial) = (self.frames.len() as u64, self.partial);
        // (response, matching memory) for every use of a matching memory, by response: the
        // responses that used any, each with the matching memories it used.
        let mut uses: Vec<(u32, usize)> = Vec::new();
        for (i, m) in matched.iter().enumerate() {
            let mut at = self.last_use.get(&m.id).copied().unwrap_or(NONE);
            while let Some(&(frame, previous)) = self.links.get(at as usize) {
                uses.push((frame, i));
                at = previous;
            }
        }
        uses.sort_unstable();
        uses.dedup();
        let mut events: Vec<(i64, Vec<usize>)> = Vec::new();
        for chunk in uses.chunk_by(|a, b| a.0 == b.0) {
            let time = self.frames[chunk[0].0 as usize].0;
            events.push((time, chunk.iter().map(|&(_, i)| i).collect()));
        }
        let scope = if partial {
            format!("the log's newest {}", plural(total, "response", "responses"))
        } else {
            format!("{} recorded", plural(total, "response", "responses"))
        };
        let skipped = self.skipped + self.trailing;
        let damaged = if skipped > 0 && !partial {
            format!(", {skipped} damaged bytes skipped")
        } else {
            String::new()
        };
        if events.is_empty() {
            return vec![format!(
                "Access patterns: no apprentice has used these {} yet ({scope}{damaged}).",
                plural(matched.len() as u64, "memory", "memories")
            )];
        }
        let first = events.iter().map(|e| e.0).min().unwrap_or(0);
        let last = events.iter().map(|e| e.0).max().unwrap_or(0);
        let split = first + (last - first) / 2;
        let mut uses = vec![(0u64, 0u64); matched.len()];
        let mut pairs: HashMap<(usize, usize), u64> = HashMap::new();
        for (t, used) in &events {
            for &i in used {
                if *t > split || first == last {
                    uses[i].1 += 1;
                } else {
                    uses[i].0 += 1;
                }
            }
            for (k, &a) in used.iter().enumerate() {
                for &b in &used[k + 1..] {
                    *pairs.entry((a, b)).or_default() += 1;
                }
            }
        }
        let count = |i: usize| uses[i].0 + uses[i].1;
        let mut used: Vec<usize> = (0..matched.len()).filter(|&i| count(i) > 0).collect();
        used.sort_by(|&a, &b| count(b).cmp(&count(a)).then(a.cmp(&b)));
        let all_uses: u64 = used.iter().map(|&i| count(i)).sum();
        let top: Vec<String> = used
            .iter()
            .take(3)
            .map(|&i| {
                format!(
                    "\"{}\" [{}] ({})",
                    crate::clip(matched[i].doc.gist(), 60),
                    short_id(&matched[i].id),
                    plural(count(i), "use", "uses")
                )
            })
            .collect();
        let mut lines = vec![format!(
            "Access patterns: apprentices used {} of the {} matching memories {} in {} ({scope}{damaged}); most used: {}.",
            used.len(),
            matched.len(),
            plural(all_uses, "time", "times"),
            plural(events.len() as u64, "response", "responses"),
            top.join(", ")
        )];
        let mut pairs: Vec<((usize, usize), u64)> = pairs.into_iter().collect();
        pairs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let cross = |(a, b): (usize, usize)| matched[a].domain != matched[b].domain;
        if !pairs.is_empty() {
            let crossing = pairs.iter().filter(|(p, _)| cross(*p)).count();
            let shown: Vec<String> = pairs
                .iter()
                .take(3)
                .map(|&((a, b), n)| {
                    let link = if cross((a, b)) {
                        format!(", {} ↔ {}", matched[a].domain, matched[b].domain)
                    } else {
                        String::new()
                    };
                    format!(
                        "[{}] + [{}] {}{link}",
                        short_id(&matched[a].id),
                        short_id(&matched[b].id),
                        plural(n, "time", "times")
                    )
                })
                .collect();
            lines.push(format!(
                "Used together: {}; {crossing} of {} cross domains.",
                shown.join("; "),
                plural(pairs.len() as u64, "pair", "pairs")
            ));
        }
        if first != last {
            let mut moved: Vec<(usize, i64)> =
                used.iter().map(|&i| (i, uses[i].1 as i64 - uses[i].0 as i64)).collect();
            moved.sort_by(|a, b| b.1.abs().cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
            let say = |sign: i64| -> Vec<String> {
                moved
                    .iter()
                    .filter(|(_, d)| d.signum() == sign)
                    .take(3)
                    .map(|&(i, _)| {
                        format!("[{}] {} → {}", short_id(&matched[i].id), uses[i].0, uses[i].1)
                    })
                    .collect()
            };
            let (rising, fading) = (say(1), say(-1));
            let none = || "none".to_owned();
            lines.push(format!(
                "Rising: {}; fading: {} (uses in the older half of the span, then the newer).",
                if rising.is_empty() { none() } else { rising.join(", ") },
                if fading.is_empty() { none() } else { fading.join(", ") },
            ));
        }
        lines
    }
}

#[cfg(unix)]
fn file_identity(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_identity(_meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}
