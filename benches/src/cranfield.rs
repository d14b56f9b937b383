//! The Cranfield collection (documents, queries, graded judgements) and the ranking metrics
//! `cargo xtask relevance` reports.
//!
//! The files are read where they are (the directory `cargo xtask relevance --data` names; the
//! collection is not part of the repository), never copied. The query
//! labels in `cran.qry` are not the query numbers of `cranqrel`: the k-th query in the file is
//! query k there.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;

/// One abstract.
#[derive(Clone, Debug, PartialEq)]
pub struct CranDoc {
    /// Its number (`.I`).
    pub number: u32,
    /// The title (`.T`).
    pub title: String,
    /// The abstract (`.W`).
    pub text: String,
}

/// The collection.
#[derive(Clone, Debug)]
pub struct Cranfield {
    /// The documents in file order.
    pub docs: Vec<CranDoc>,
    /// The queries, query k at index k - 1.
    pub queries: Vec<String>,
    /// (query k, doc number) → grade 1..=4 (1 is best); grade -1 rows are left out.
    pub judgements: HashMap<(u32, u32), i32>,
}

/// Splits a SMART-format file into records of (`.I` label, field letter → text).
fn records(text: &str) -> Vec<(String, HashMap<char, String>)> {
    let mut out: Vec<(String, HashMap<char, String>)> = Vec::new();
    let mut field = ' ';
    for line in text.lines() {
        if let Some(label) = line.strip_prefix(".I") {
            out.push((label.trim().to_owned(), HashMap::new()));
            field = ' ';
        } else if line.len() == 2 && line.starts_with('.') {
            field = line.chars().nth(1).unwrap_or(' ');
        } else if let Some((_, fields)) = out.last_mut() {
            let s = fields.entry(field).or_default();
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(line.trim());
        }
    }
    out
}

impl Cranfield {
    /// Reads `cran.all.1400`, `cran.qry` and `cranqrel` from `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Cranfield> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .with_context(|| format!("reading {}", dir.join(name).display()))
        };
        let mut docs = Vec::new();
        for (label, mut f) in records(&read("cran.all.1400")?) {
            let number =
                label.parse().with_context(|| format!("cran.all.1400: bad .I {label:?}"))?;
            docs.push(CranDoc {
                number,
                title: f.remove(&'T').unwrap_or_default(),
                text: f.remove(&'W').unwrap_or_default(),
            });
        }
        let queries: Vec<String> = records(&read("cran.qry")?)
            .into_iter()
            .map(|(_, mut f)| f.remove(&'W').unwrap_or_default())
            .collect();
        let mut judgements = HashMap::new();
        for (n, line) in read("cranqrel")?.lines().enumerate() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.is_empty() {
                continue;
            }
            let parse = |i: usize| -> anyhow::Result<i64> {
                cols.get(i)
                    .and_then(|c| c.parse().ok())
                    .with_context(|| format!("cranqrel line {}: {line:?}", n + 1))
            };
            let (q, d, g) = (parse(0)?, parse(1)?, parse(2)?);
            if (1..=4).contains(&g) {
                judgements.insert((q as u32, d as u32), g as i32);
            }
        }
        anyhow::ensure!(docs.len() == 1400, "expected 1400 documents, read {}", docs.len());
        anyhow::ensure!(queries.len() == 225, "expected 225 queries, read {}", queries.len());
        Ok(Cranfield { docs, queries, judgements })
    }

    /// The grade of `doc` for query `k` (1-based), if judged relevant at some level.
    pub fn grade(&self, k: u32, doc: u32) -> Option<i32> {
        self.judgements.get(&(k, doc)).copied()
    }
}

/// nDCG@10, AP and P@10 of one ranking, averaged by [`Metrics::add`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    ndcg10: f64,
    ap: f64,
    p10: f64,
    queries: u32,
}

/// Gain of a grade: 2^(5 - grade) - 1 for grades 1..=4.
pub fn gain(grade: i32) -> f64 {
    if (1..=4).contains(&grade) {
        2f64.powi(5 - grade) - 1.0
    } else {
        0.0
    }
}

impl Metrics {
    /// Adds query `k`'s ranking (doc numbers, best first). Queries without a document of
    /// grade 1-3 are skipped, as trec_eval does; returns whether it counted.
    pub fn add(&mut self, c: &Cranfield, k: u32, ranking: &[u32]) -> bool {
        let judged: Vec<i32> =
            c.judgements.iter().filter(|((q, _), _)| *q == k).map(|(_, g)| *g).collect();
        let relevant = judged.iter().filter(|g| **g <= 3).count();
        if relevant == 0 {
            return false;
        }
        let dcg = |gains: &mut dyn Iterator<Item = f64>| -> f64 {
            gains.take(10).enumerate().map(|(i, g)| g / (i as f64 + 2.0).log2()).sum()
        };
        let got = dcg(&mut ranking.iter().map(|d| c.grade(k, *d).map_or(0.0, gain)));
        let mut ideal: Vec<f64> = judged.iter().map(|g| gain(*g)).collect();
        ideal.sort_by(|a, b| b.total_cmp(a));
        let best = dcg(&mut ideal.into_iter());
        self.ndcg10 += if best > 0.0 { got / best } else { 0.0 };

        let is_rel = |d: &u32| c.grade(k, *d).is_some_and(|g| g <= 3);
        let (mut hits, mut sum) = (0usize, 0.0);
        for (i, d) in ranking.iter().enumerate() {
            if is_rel(d) {
                hits += 1;
                sum += hits as f64 / (i as f64 + 1.0);
            }
        }
        self.ap += sum / relevant as f64;
        self.p10 += ranking.iter().take(10).filter(|d| is_rel(d)).count() as f64 / 10.0;
        self.queries += 1;
        true
    }

    /// (nDCG@10, MAP, P@10, queries counted).
    pub fn means(&self) -> (f64, f64, f64, u32) {
        let n = f64::from(self.queries.max(1));
        (self.ndcg10 / n, self.ap / n, self.p10 / n, self.queries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Cranfield {
        let mut judgements = HashMap::new();
        judgements.insert((1, 10), 1);
        judgements.insert((1, 20), 3);
        judgements.insert((1, 30), 4);
        judgements.insert((2, 10), 4);
        Cranfield { docs: vec![], queries: vec![], judgements }
    }

    #[test]
    fn perfect_ranking_scores_one_and_misses_score_zero() {
        let c = tiny();
        let mut m = Metrics::default();
        assert!(m.add(&c, 1, &[10, 20, 30]));
        let (ndcg, map, p10, n) = m.means();
        assert!((ndcg - 1.0).abs() < 1e-12);
        assert!((map - 1.0).abs() < 1e-12);
        assert!((p10 - 0.2).abs() < 1e-12);
        assert_eq!(n, 1);
        // Query 2 has only a grade-4 judgement: not counted.
        assert!(!m.add(&c, 2, &[10]));
        let mut m = Metrics::default();
        m.add(&c, 1, &[99, 98]);
        assert_eq!(m.means().0, 0.0);
    }

    #[test]
    fn gains_and_average_precision_follow_the_definitions() {
        assert_eq!([gain(1), gain(2), gain(3), gain(4), gain(-1)], [15.0, 7.0, 3.0, 1.0, 0.0]);
        let c = tiny();
        let mut m = Metrics::default();
        // Relevant (grades 1-3): 10 and 20. Ranked at 2 and 4: AP = (1/2 + 2/4) / 2.
        m.add(&c, 1, &[30, 10, 99, 20]);
        assert!((m.means().1 - 0.5).abs() < 1e-12);
        // DCG = 1/log2(2) + 15/log2(3) + 3/log2(5); ideal = 15 + 3/log2(3) + 1/log2(4).
        let dcg = 1.0 + 15.0 / 3f64.log2() + 3.0 / 5f64.log2();
        let ideal = 15.0 + 3.0 / 3f64.log2() + 0.5;
        assert!((m.means().0 - dcg / ideal).abs() < 1e-12);
    }

    #[test]
    fn smart_records_split_fields() {
        let r = records(".I 1\n.T\nflow of\nair\n.W\nsome text\n.I 2\n.W\nmore\n");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].1[&'T'], "flow of air");
        assert_eq!(r[1].1[&'W'], "more");
    }
}
