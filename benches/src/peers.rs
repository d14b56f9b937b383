//! The peers a user would pick instead, on the same corpus and queries: tantivy (mmap directory,
//! the keywords as an OR query, top 10) and SQLite FTS5 (a real database file, MATCH with OR,
//! bm25, LIMIT 10). Built only with the `peers` feature.

use std::path::Path;

use anyhow::Context;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{IndexRecordOption, Schema, Value, STORED, TEXT};
use tantivy::{doc, Index, IndexReader, TantivyDocument, Term};

use crate::corpus::CorpusMemory;

fn text(m: &CorpusMemory) -> String {
    let mut s = m.question.clone();
    for i in &m.insights {
        s.push(' ');
        s.push_str(i);
    }
    s.push(' ');
    s.push_str(&m.synthesis);
    s
}

/// The best `k` documents for `terms` as an OR query (BM25), as the values of their `id` field.
fn top_ids(
    reader: &IndexReader,
    text: tantivy::schema::Field,
    id: tantivy::schema::Field,
    terms: &[String],
    k: usize,
) -> anyhow::Result<Vec<u64>> {
    let clauses: Vec<(Occur, Box<dyn Query>)> = terms
        .iter()
        .map(|w| {
            let q: Box<dyn Query> = Box::new(TermQuery::new(
                Term::from_field_text(text, w),
                IndexRecordOption::WithFreqs,
            ));
            (Occur::Should, q)
        })
        .collect();
    let searcher = reader.searcher();
    let top =
        searcher.search(&BooleanQuery::new(clauses), &TopDocs::with_limit(k).order_by_score())?;
    let mut out = Vec::with_capacity(top.len());
    for (_score, addr) in top {
        let d: TantivyDocument = searcher.doc(addr)?;
        out.push(d.get_first(id).and_then(|v| v.as_u64()).unwrap_or(u64::MAX));
    }
    Ok(out)
}

/// tantivy on an mmap directory.
pub struct Tantivy {
    reader: IndexReader,
    text: tantivy::schema::Field,
    id: tantivy::schema::Field,
}

impl Tantivy {
    /// Indexes `memories` into `dir` (one commit).
    pub fn build(memories: &[CorpusMemory], dir: &Path) -> anyhow::Result<Tantivy> {
        let mut sb = Schema::builder();
        let text_field = sb.add_text_field("text", TEXT);
        let id_field = sb.add_u64_field("id", STORED);
        let index = Index::create_in_dir(dir, sb.build()).context("tantivy index")?;
        let mut writer: tantivy::IndexWriter = index.writer(200_000_000)?;
        for (i, m) in memories.iter().enumerate() {
            writer.add_document(doc!(text_field => text(m), id_field => i as u64))?;
        }
        writer.commit()?;
        writer.wait_merging_threads()?;
        Tantivy::open(dir)
    }

    /// Opens an existing index in `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Tantivy> {
        let index = Index::open_in_dir(dir)?;
        let schema = index.schema();
        let text = schema.get_field("text")?;
        let id = schema.get_field("id")?;
        let reader = index.reader()?;
        Ok(Tantivy { reader, text, id })
    }

    /// Top 10 memory indices for the keywords as an OR query.
    pub fn search(&self, keywords: &[String], k: usize) -> anyhow::Result<Vec<u64>> {
        top_ids(&self.reader, self.text, self.id, keywords, k)
    }
}

/// SQLite FTS5 in a real database file.
pub struct Sqlite {
    conn: rusqlite::Connection,
}

impl Sqlite {
    /// Creates the database at `path` and inserts `memories` in one transaction.
    pub fn build(memories: &[CorpusMemory], path: &Path) -> anyhow::Result<Sqlite> {
        let mut conn = rusqlite::Connection::open(path)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE VIRTUAL TABLE m USING fts5(body);")?;
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare("INSERT INTO m(rowid, body) VALUES (?1, ?2)")?;
            for (i, m) in memories.iter().enumerate() {
                stmt.execute(rusqlite::params![i as i64, text(m)])?;
            }
        }
        tx.commit()?;
        Ok(Sqlite { conn })
    }

    /// Top 10 rowids for the keywords joined with OR, ranked by bm25.
    pub fn search(&self, keywords: &[String], k: usize) -> anyhow::Result<Vec<i64>> {
        let q = keywords.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(" OR ");
        let mut stmt = self
            .conn
            .prepare_cached("SELECT rowid FROM m WHERE m MATCH ?1 ORDER BY bm25(m) LIMIT ?2")?;
        let rows = stmt.query_map(rusqlite::params![q, k as i64], |r| r.get::<_, i64>(0))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

/// tantivy over arbitrary (id, text) documents, queried with free text: the text goes through
/// tantivy's own default tokenizer (lowercase, no stemming, no stop words) and the tokens form
/// an OR query ranked by BM25.
pub struct TantivyText {
    index: Index,
    reader: IndexReader,
    text: tantivy::schema::Field,
    id: tantivy::schema::Field,
}

impl TantivyText {
    /// Indexes `docs` into `dir` (one commit).
    pub fn build(
        docs: impl Iterator<Item = (u64, String)>,
        dir: &Path,
    ) -> anyhow::Result<TantivyText> {
        std::fs::create_dir_all(dir)?;
        let mut sb = Schema::builder();
        let text = sb.add_text_field("text", TEXT);
        let id = sb.add_u64_field("id", STORED);
        let index = Index::create_in_dir(dir, sb.build()).context("tantivy index")?;
        let mut writer: tantivy::IndexWriter = index.writer(50_000_000)?;
        for (n, body) in docs {
            writer.add_document(doc!(text => body, id => n))?;
        }
        writer.commit()?;
        writer.wait_merging_threads()?;
        let reader = index.reader()?;
        Ok(TantivyText { index, reader, text, id })
    }

    /// The ids of the best `k` documents for `query`.
    pub fn search_text(&self, query: &str, k: usize) -> anyhow::Result<Vec<u64>> {
        let mut analyzer = self.index.tokenizer_for_field(self.text)?;
        let mut terms: Vec<String> = Vec::new();
        let mut stream = analyzer.token_stream(query);
        stream.process(&mut |t| {
            if !terms.contains(&t.text) {
                terms.push(t.text.clone());
            }
        });
        top_ids(&self.reader, self.text, self.id, &terms, k)
    }
}

/// The share of top-10 ids our BM25F (textbook parameters, every memory's text in one field)
/// has in common with tantivy's BM25 over the same analyzed tokens: both should compute BM25,
/// up to our impact quantization and tantivy's length buckets.
pub fn single_field_overlap(corpus: &crate::corpus::Corpus, dir: &Path) -> anyhow::Result<f64> {
    let texts: Vec<String> = corpus.memories.iter().map(text).collect();
    let mut builder =
        semantic_index::SegmentBuilder::new().rank_params(semantic_index::Bm25fParams::CLASSIC)?;
    let docs: Vec<semantic_index::Document> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| semantic_index::Document {
            id: (i as u128).to_be_bytes(),
            synthesis: t.clone(),
            ..Default::default()
        })
        .collect();
    builder.add_batch(&docs)?;
    let segment = shm_reader::Segment::from_bytes(shm_reader::aligned(&builder.to_bytes()?))?;
    let tdir = dir.join("tantivy-single-field");
    if tdir.exists() {
        std::fs::remove_dir_all(&tdir)?;
    }
    let tantivy = TantivyText::build(
        texts.iter().enumerate().map(|(i, t)| (i as u64, semantic_index::analyze(t).join(" "))),
        &tdir,
    )?;
    let options = shm_reader::SearchOptions { w_score: 0.0, w_sacred: 0.0, ..Default::default() };
    let mut hits = shm_reader::Hits::with_capacity(10);
    let (mut common, mut total) = (0usize, 0usize);
    for q in &corpus.queries {
        let text = q.join(" ");
        let query = shm_reader::Query::from_text(&text);
        hits.clear();
        segment.search(&query, &options, &shm_reader::DeletedSet::empty(), 0, &mut hits);
        let ours: Vec<u64> = hits.iter().map(|h| u128::from_be_bytes(h.id) as u64).collect();
        let theirs = tantivy.search_text(&query.terms().join(" "), 10)?;
        common += ours.iter().filter(|id| theirs.contains(id)).count();
        total += ours.len().max(theirs.len());
    }
    Ok(100.0 * common as f64 / total.max(1) as f64)
}
