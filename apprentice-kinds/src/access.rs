//! What the witness reads of the access log (`semantic_index::access`): the memories
//! apprentices used, as the store's writer recorded them. Read-only, through one bounded buffer
//! reused across invitations: the log's last [`TAIL`] bytes.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use semantic_index::access::{access_log_path, decode_frames};

use crate::plural;
use crate::quotes::short_id;

/// The most bytes of the log read per invitation (its newest frames).
pub(crate) const TAIL: u64 = 512 * 1024;

/// A reused buffer for the log's tail.
#[derive(Debug, Default)]
pub(crate) struct AccessTail {
    buf: Vec<u8>,
}

/// One matching memory, as the witness knows it.
pub(crate) struct Matched<'a> {
    pub(crate) id: [u8; 16],
    pub(crate) domain: &'a str,
    pub(crate) gist: &'a str,
}

impl AccessTail {
    /// Reads the newest part of store `dir`'s access log; `None` if there is no log.
    fn read(&mut self, dir: &Path) -> Option<(&[u8], bool)> {
        let path = access_log_path(dir);
        let mut file =
            semantic_index::layout::open_file(&path, std::fs::OpenOptions::new().read(true))
                .ok()?;
        let len = file.metadata().ok()?.len();
        let start = len.saturating_sub(TAIL);
        file.seek(SeekFrom::Start(start)).ok()?;
        self.buf.clear();
        file.take(TAIL).read_to_end(&mut self.buf).ok()?;
        Some((&self.buf, start > 0))
    }

    /// The witness's lines on how apprentices used the `matched` memories.
    pub(crate) fn patterns(&mut self, dir: &Path, matched: &[Matched<'_>]) -> Vec<String> {
        let Some((bytes, partial)) = self.read(dir) else {
            return vec![
                "Access patterns: no apprentice use recorded yet (`mcs invite` and `mcs circle` record it)."
                    .to_owned(),
            ];
        };
        let index: HashMap<[u8; 16], usize> =
            matched.iter().enumerate().map(|(i, m)| (m.id, i)).collect();
        // (time, matching memories used) per response that used any.
        let mut events: Vec<(i64, Vec<usize>)> = Vec::new();
        let mut total = 0u64;
        let skipped = decode_frames(bytes, |f| {
            total += 1;
            let mut used: Vec<usize> =
                f.ids.iter().filter_map(|id| index.get(id).copied()).collect();
            used.sort_unstable();
            used.dedup();
            if !used.is_empty() {
                events.push((f.time_micros, used));
            }
        });
        let scope = if partial {
            format!(
                "{} in the log's newest {} KiB",
                plural(total, "response", "responses"),
                TAIL / 1024
            )
        } else {
            format!("{} recorded", plural(total, "response", "responses"))
        };
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
                    crate::clip(matched[i].gist, 60),
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
