//! Access events: which memories apprentices used, recorded by the writer, and the metrics
//! drawn from them (counts, co-access pairs, cross-domain links over time, rising and fading).
//!
//! Apprentices never write: their responses list the memories they used, the supervisor side
//! hands those to the writer ([`MemoryStore::record_access`]), which appends one checksummed
//! frame per response to `<store>/access/events.log` (0600, directory 0700), with one
//! `fdatasync`. Frame, little-endian:
//!
//! ```text
//! magic "MCAE" u32 · payload length u32 · xxh3-64 of the payload u64 · payload:
//!   time (µs since the epoch) i64 · kind length u8 · kind (UTF-8) · count u32 · ids 16 × count
//! ```
//!
//! A reader skips a damaged or torn frame (it resynchronises on the next magic whose checksum
//! holds) and counts the bytes it skipped; nothing else is lost. The log is append-only and
//! derived data: losing it loses metrics, never memories.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use atomic_write::seam;

use serde::Serialize;
use uuid::Uuid;

use crate::store::{Error, MemoryStore, Result};

use semantic_index::access::{decode_frames, encode_frame, AccessFrame};
pub use semantic_index::access::{ACCESS_DIR, ACCESS_LOG};
/// Time buckets of the cross-domain series.
const DAY_MICROS: i64 = 86_400_000_000;

/// One response's use of memories.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccessEvent {
    /// When it was recorded, in microseconds since the Unix epoch.
    pub time_micros: i64,
    /// The kind of apprentice that used them.
    pub kind: String,
    /// The memories used, in the response's order.
    pub ids: Vec<Uuid>,
}

/// The access log's path in store `dir`.
pub fn access_log_path(dir: &Path) -> PathBuf {
    semantic_index::access::access_log_path(dir)
}

fn io_error<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io { what, path: path.to_owned(), source }
}

fn encode(event: &AccessEvent) -> Vec<u8> {
    encode_frame(&AccessFrame {
        time_micros: event.time_micros,
        kind: event.kind.clone(),
        ids: event.ids.iter().map(|id| *id.as_bytes()).collect(),
    })
}

/// Decodes every intact frame of `bytes`; returns the events and how many bytes were skipped
/// as damaged or torn. Never panics, whatever the bytes.
pub fn decode_events(bytes: &[u8]) -> (Vec<AccessEvent>, u64) {
    let mut events = Vec::new();
    let skipped = decode_frames(bytes, |f| {
        events.push(AccessEvent {
            time_micros: f.time_micros,
            kind: f.kind,
            ids: f.ids.into_iter().map(Uuid::from_bytes).collect(),
        });
    });
    (events, skipped)
}

/// Reads the access log of store `dir` (no log: no events).
pub fn read_events(dir: &Path) -> Result<(Vec<AccessEvent>, u64)> {
    let path = access_log_path(dir);
    let file = match semantic_index::layout::open_file(&path, fs::OpenOptions::new().read(true)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(io_error("opening", &path)(e)),
    };
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut &file, &mut bytes).map_err(io_error("reading", &path))?;
    Ok(decode_events(&bytes))
}

/// Appends `event` durably (one write, one `fdatasync`).
pub(crate) fn append(dir: &Path, event: &AccessEvent) -> Result<()> {
    let sub = dir.join(ACCESS_DIR);
    crate::records::private_dir(&sub)?;
    let path = access_log_path(dir);
    let mut options = fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file =
        seam::open_creating(&path, || semantic_index::layout::open_file(&path, &mut options))
            .map_err(io_error("opening", &path))?;
    seam::append(&file, &path, &encode(event)).map_err(io_error("appending to", &path))?;
    seam::sync_data(&file, &path).map_err(io_error("syncing", &path))
}

/// One memory's accesses.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemoryAccess {
    /// The memory.
    pub id: Uuid,
    /// Its domain (empty if it is no longer in the index).
    pub domain: String,
    /// Its gist (empty if it is no longer in the index).
    pub gist: String,
    /// Responses that used it.
    pub count: u64,
    /// Of those, in the older half of the log's time span.
    pub older: u64,
    /// Of those, in the newer half.
    pub newer: u64,
}

/// Two memories used in the same response.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CoAccess {
    /// The lesser id.
    pub a: Uuid,
    /// The greater id.
    pub b: Uuid,
    /// Responses that used both.
    pub count: u64,
    /// Whether their domains differ (a cross-domain link).
    pub cross_domain: bool,
}

/// Cross-domain links of one day.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DayLinks {
    /// The day (UTC), `YYYY-MM-DD`.
    pub day: String,
    /// Co-accessed pairs of different domains that day, counted per response.
    pub cross_domain: u64,
    /// All co-accessed pairs that day.
    pub pairs: u64,
}

/// What the access log says: [`MemoryStore::access_metrics`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AccessMetrics {
    /// Events (responses) recorded.
    pub events: u64,
    /// Memory uses in all events.
    pub accesses: u64,
    /// Distinct memories used.
    pub memories: u64,
    /// Bytes of the log skipped as damaged or torn.
    pub skipped_bytes: u64,
    /// Events per apprentice kind.
    pub by_kind: BTreeMap<String, u64>,
    /// The most used memories, most first (ties: id).
    pub top: Vec<MemoryAccess>,
    /// The pairs most often used together, most first.
    pub pairs: Vec<CoAccess>,
    /// Cross-domain links per day, oldest first.
    pub days: Vec<DayLinks>,
    /// Memories used more in the newer half of the span than in the older half, by gain.
    pub rising: Vec<MemoryAccess>,
    /// Memories used less in the newer half than in the older half, by loss.
    pub fading: Vec<MemoryAccess>,
    /// The split between older and newer (µs since the epoch; 0 when there are no events).
    pub split_micros: i64,
}

/// Computes the metrics of `events`; `domain_of` gives a memory's domain and gist.
pub fn compute_access_metrics(
    events: &[AccessEvent],
    top: usize,
    mut domain_of: impl FnMut(&Uuid) -> Option<(String, String)>,
) -> AccessMetrics {
    let mut m = AccessMetrics { events: events.len() as u64, ..AccessMetrics::default() };
    if events.is_empty() {
        return m;
    }
    let first = events.iter().map(|e| e.time_micros).min().unwrap_or(0);
    let last = events.iter().map(|e| e.time_micros).max().unwrap_or(0);
    m.split_micros = first + (last - first) / 2;
    let mut per: HashMap<Uuid, (u64, u64, u64)> = HashMap::new();
    let mut pairs: HashMap<(Uuid, Uuid), u64> = HashMap::new();
    let mut domains: HashMap<Uuid, Option<(String, String)>> = HashMap::new();
    let mut days: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for e in events {
        *m.by_kind.entry(e.kind.clone()).or_default() += 1;
        let mut ids = e.ids.clone();
        ids.sort_unstable();
        ids.dedup();
        m.accesses += ids.len() as u64;
        let newer = e.time_micros > m.split_micros || first == last;
        for id in &ids {
            let c = per.entry(*id).or_default();
            c.0 += 1;
            if newer {
                c.2 += 1;
            } else {
                c.1 += 1;
            }
            domains.entry(*id).or_insert_with(|| domain_of(id));
        }
        let day = e.time_micros.div_euclid(DAY_MICROS);
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                *pairs.entry((*a, *b)).or_default() += 1;
                let d = days.entry(day).or_default();
                d.1 += 1;
                if cross(&domains, a, b) {
                    d.0 += 1;
                }
            }
        }
    }
    m.memories = per.len() as u64;
    let access = |id: &Uuid, (count, older, newer): (u64, u64, u64)| {
        let (domain, gist) = domains.get(id).cloned().flatten().unwrap_or_default();
        MemoryAccess { id: *id, domain, gist, count, older, newer }
    };
    let mut all: Vec<MemoryAccess> = per.iter().map(|(id, c)| access(id, *c)).collect();
    all.sort_by(|a, b| b.count.cmp(&a.count).then(a.id.cmp(&b.id)));
    // Rising and fading need a span to compare: with one instant there is no older half.
    if first != last {
        let mut rising: Vec<&MemoryAccess> = all.iter().filter(|a| a.newer > a.older).collect();
        rising.sort_by(|a, b| (b.newer - b.older).cmp(&(a.newer - a.older)).then(a.id.cmp(&b.id)));
        m.rising = rising.into_iter().take(top).cloned().collect();
        let mut fading: Vec<&MemoryAccess> = all.iter().filter(|a| a.older > a.newer).collect();
        fading.sort_by(|a, b| (b.older - b.newer).cmp(&(a.older - a.newer)).then(a.id.cmp(&b.id)));
        m.fading = fading.into_iter().take(top).cloned().collect();
    }
    all.truncate(top);
    m.top = all;
    let mut pairs: Vec<CoAccess> = pairs
        .into_iter()
        .map(|((a, b), count)| CoAccess { a, b, count, cross_domain: cross(&domains, &a, &b) })
        .collect();
    pairs.sort_by(|x, y| y.count.cmp(&x.count).then(x.a.cmp(&y.a)).then(x.b.cmp(&y.b)));
    pairs.truncate(top);
    m.pairs = pairs;
    m.days = days
        .into_iter()
        .map(|(day, (cross_domain, pairs))| DayLinks {
            day: chrono::DateTime::from_timestamp_micros(day * DAY_MICROS)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            cross_domain,
            pairs,
        })
        .collect();
    m
}

fn cross(domains: &HashMap<Uuid, Option<(String, String)>>, a: &Uuid, b: &Uuid) -> bool {
    match (domains.get(a).and_then(Option::as_ref), domains.get(b).and_then(Option::as_ref)) {
        (Some((da, _)), Some((db, _))) => da != db,
        _ => false,
    }
}

impl MemoryStore {
    /// Records that an apprentice of `kind` used `ids` in one response: one durable frame in
    /// the access log. Apprentices never write; the supervisor side calls this with what their
    /// responses listed. Needs the writer ([`Error::ReadOnly`] otherwise).
    pub fn record_access(&mut self, kind: &str, ids: &[Uuid]) -> Result<()> {
        if !self.is_writable() {
            return Err(Error::ReadOnly(self.dir().to_owned()));
        }
        if ids.is_empty() {
            return Ok(());
        }
        let event = AccessEvent {
            time_micros: chrono::Utc::now().timestamp_micros(),
            kind: kind.to_owned(),
            ids: ids.to_vec(),
        };
        append(self.dir(), &event)
    }

    /// The access metrics of this store: counts, the `top` most used memories, co-access pairs,
    /// cross-domain links per day, rising and fading memories. Domains and gists come from the
    /// index (a forgotten memory keeps its counts with an empty domain).
    pub fn access_metrics(&mut self, top: usize) -> Result<AccessMetrics> {
        let (events, skipped) = read_events(self.dir())?;
        let snapshot = self.snapshot_checked()?;
        let mut m = compute_access_metrics(&events, top, |id| {
            snapshot.get(id.as_bytes()).map(|d| (d.domain().to_owned(), d.gist().to_owned()))
        });
        m.skipped_bytes = skipped;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    fn event(t: i64, ids: &[u8]) -> AccessEvent {
        AccessEvent {
            time_micros: t * DAY_MICROS,
            kind: "navigator".into(),
            ids: ids.iter().map(|&n| id(n)).collect(),
        }
    }

    #[test]
    fn events_round_trip_through_frames() {
        let events = [event(1, &[1, 2]), event(2, &[3])];
        let bytes: Vec<u8> = events.iter().flat_map(encode).collect();
        assert_eq!(decode_events(&bytes), (events.to_vec(), 0));
    }

    #[test]
    fn metrics_count_pairs_links_and_trends() {
        // Days 0-1 (older half): 1+2 twice, 3 once. Days 3-4 (newer): 2+3 twice, 4 once.
        let events =
            [event(0, &[1, 2]), event(1, &[2, 1, 3]), event(3, &[2, 3]), event(4, &[3, 2, 4])];
        let domain = |u: &Uuid| {
            let d = if u.as_bytes()[0] <= 2 { "storage" } else { "search" };
            Some((d.to_string(), format!("m{}", u.as_bytes()[0])))
        };
        let m = compute_access_metrics(&events, 10, domain);
        assert_eq!((m.events, m.accesses, m.memories), (4, 10, 4));
        let counts: Vec<(Uuid, u64)> = m.top.iter().map(|a| (a.id, a.count)).collect();
        assert_eq!(counts, [(id(2), 4), (id(3), 3), (id(1), 2), (id(4), 1)]);
        let pairs: Vec<(Uuid, Uuid, u64, bool)> =
            m.pairs.iter().map(|p| (p.a, p.b, p.count, p.cross_domain)).collect();
        assert_eq!(
            pairs,
            [
                (id(2), id(3), 3, true),
                (id(1), id(2), 2, false),
                (id(1), id(3), 1, true),
                (id(2), id(4), 1, true),
                (id(3), id(4), 1, false),
            ]
        );
        let days: Vec<(&str, u64, u64)> =
            m.days.iter().map(|d| (d.day.as_str(), d.cross_domain, d.pairs)).collect();
        assert_eq!(
            days,
            [
                ("1970-01-01", 0, 1),
                ("1970-01-02", 2, 3),
                ("1970-01-04", 1, 1),
                ("1970-01-05", 2, 3)
            ]
        );
        let rising: Vec<Uuid> = m.rising.iter().map(|a| a.id).collect();
        let fading: Vec<Uuid> = m.fading.iter().map(|a| a.id).collect();
        assert_eq!(rising, [id(3), id(4)]);
        assert_eq!(fading, [id(1)]);
        assert_eq!(m.top[0].domain, "storage");
    }
}
