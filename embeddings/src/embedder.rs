//! The model: tokenization, one pass per text (no padding), pooling; documents one whole text per
//! core, a query's products split across the cores.

use crate::bert::{Bert, Config, Scratch};
use crate::matmul::Parallelism;
use crate::{Error, DIM, MAX_TOKENS};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use tokenizers::{Tokenizer, TruncationParams};

/// all-MiniLM-L6-v2, loaded once; embeds documents on every core and queries one at a time.
/// `Send + Sync`: one embedder serves every thread.
pub struct Embedder {
    model: Bert,
    tokenizer: Tokenizer,
    /// The query path's buffers, sized once (a second concurrent query sizes its own).
    query_scratch: Mutex<Scratch>,
    threads: usize,
    /// The query path's threads, started once: a query's products run half on the caller's
    /// pool thread and half on the other (`None` on one core, or when no thread could start).
    pool: Option<rayon::ThreadPool>,
}

/// What a call to [`Embedder::embed_documents`] did, for throughput figures.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Texts embedded.
    pub texts: usize,
    /// Real tokens, `[CLS]`/`[SEP]` included, after truncation.
    pub tokens: usize,
    /// Tokens the forward passes ran on, padding included (each text runs alone, unpadded, so
    /// this equals `tokens`).
    pub padded_tokens: usize,
    /// Forward passes (one per text).
    pub batches: usize,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads the model from an installed directory (`config.json`, `tokenizer.json`,
    /// `model.safetensors`); [`Error::NotInstalled`] when the directory lacks them.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        if !crate::is_installed(dir) {
            return Err(Error::NotInstalled { dir: dir.into() });
        }
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| Error::Io { path, source })
        };
        let config_path = dir.join("config.json");
        let config: Config = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| Error::BadFile { path: config_path.clone(), what: e.to_string() })?;
        if config.hidden_size != DIM {
            return Err(Error::BadFile {
                path: config_path,
                what: format!("hidden_size {}, expected {DIM}", config.hidden_size),
            });
        }
        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| Error::BadFile { path: tokenizer_path.clone(), what: e.to_string() })?;
        // The file pads and truncates to 128; the model takes 256 and we pad per batch.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| Error::BadFile { path: tokenizer_path, what: e.to_string() })?;
        let device = Device::Cpu;
        let vb =
            VarBuilder::from_buffered_safetensors(read("model.safetensors")?, DType::F32, &device)?;
        let model = Bert::load(vb, &config)?;
        let query_scratch = Mutex::new(model.scratch());
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pool = (threads > 1)
            .then(|| rayon::ThreadPoolBuilder::new().num_threads(threads).build().ok())
            .flatten();
        Ok(Self { model, tokenizer, query_scratch, threads, pool })
    }

    /// The vector of one text (a query): [`DIM`] floats, unit length.
    pub fn embed_query(&self, text: &str) -> Result<Vec<f32>, Error> {
        let mut out = vec![0.0; DIM];
        self.embed_into(text, &mut out)?;
        Ok(out)
    }

    /// Writes the vector of one text into `out` (exactly [`DIM`] long), for callers that size
    /// their query buffer once. Its matrix products use every core.
    pub fn embed_into(&self, text: &str, out: &mut [f32]) -> Result<(), Error> {
        if out.len() != DIM {
            return Err(Error::Tokenizer(format!(
                "output buffer of {} floats, not {DIM}",
                out.len()
            )));
        }
        let encoding = self.encode(text)?;
        let parallelism = match &self.pool {
            Some(_) => Parallelism::Rayon(self.threads),
            None => Parallelism::None,
        };
        let mut own = None;
        let mut shared = match self.query_scratch.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        let scratch = match shared.as_deref_mut() {
            Some(s) => s,
            None => own.insert(self.model.scratch()),
        };
        let ids = encoding.get_ids();
        let done = match &self.pool {
            Some(pool) => pool.install(|| self.model.embed(ids, scratch, parallelism, out)),
            None => self.model.embed(ids, scratch, parallelism, out),
        };
        done.ok_or_else(|| bad_ids(ids))
    }

    /// Number of tokens the model sees for `text` (`[CLS]`/`[SEP]` included, at most
    /// [`MAX_TOKENS`]).
    pub fn count_tokens(&self, text: &str) -> Result<usize, Error> {
        Ok(self.encode(text)?.get_ids().len())
    }

    /// The vectors of many texts (documents), `texts.len() × DIM` floats in input order.
    /// Each core takes whole texts, longest first, and runs each alone (no padding, no
    /// synchronisation inside a pass); `progress` is called with the number of texts done as
    /// they finish.
    pub fn embed_documents(
        &self,
        texts: &[&str],
        progress: &mut dyn FnMut(usize),
    ) -> Result<(Vec<f32>, Stats), Error> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].get_ids().len()));
        let tokens = encodings.iter().map(|e| e.get_ids().len()).sum();
        let stats =
            Stats { texts: texts.len(), tokens, padded_tokens: tokens, batches: texts.len() };
        let mut out = vec![0.0f32; texts.len() * DIM];
        let next = AtomicUsize::new(0);
        let mut failed = None;
        std::thread::scope(|scope| {
            let (tx, rx) = mpsc::channel::<(usize, Option<[f32; DIM]>)>();
            for _ in 0..self.threads.clamp(1, texts.len().max(1)) {
                let (tx, next, order, encodings) = (tx.clone(), &next, &order, &encodings);
                scope.spawn(move || {
                    let mut scratch = self.model.scratch();
                    let mut v = [0.0f32; DIM];
                    while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let ids = encodings[i].get_ids();
                        let ok = self.model.embed(ids, &mut scratch, Parallelism::None, &mut v);
                        if tx.send((i, ok.map(|()| v))).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            for (done, (i, v)) in rx.into_iter().enumerate() {
                match v {
                    Some(v) => out[i * DIM..(i + 1) * DIM].copy_from_slice(&v),
                    None => {
                        failed.get_or_insert(i);
                    }
                }
                progress(done + 1);
            }
        });
        if let Some(i) = failed {
            return Err(bad_ids(encodings[i].get_ids()));
        }
        Ok((out, stats))
    }

    fn encode(&self, text: &str) -> Result<tokenizers::Encoding, Error> {
        self.tokenizer.encode(text, true).map_err(|e| Error::Tokenizer(e.to_string()))
    }
}

/// The error for token ids the model cannot take (a tokenizer that does not match the model).
fn bad_ids(ids: &[u32]) -> Error {
    Error::Tokenizer(format!(
        "{} token ids (at most {MAX_TOKENS} allowed), the largest {}: not ids this model has",
        ids.len(),
        ids.iter().max().copied().unwrap_or(0)
    ))
}

#[cfg(all(test, feature = "model-tests"))]
mod tests {
    use super::*;

    /// The reference vectors are short texts (a query's product path); forcing them through the
    /// many-row path (panels of six, as every document over 32 tokens takes) checks that path
    /// against the reference too.
    #[test]
    fn the_document_product_path_matches_the_reference() {
        let e = Embedder::load(&crate::default_model_dir().unwrap()).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(include_str!("../tests/minilm-reference.json")).unwrap();
        let vectors = json["vectors"].as_array().unwrap();
        assert_eq!(vectors.len(), 7);
        let mut worst = 0.0f32;
        for v in vectors {
            let text = v["text"].as_str().unwrap();
            let expected: Vec<f32> = v["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            let ids = e.encode(text).unwrap().get_ids().to_vec();
            for (few_rows, parallelism) in [
                (0, Parallelism::None),
                (0, Parallelism::Rayon(2)),
                (crate::bert::FEW_ROWS, Parallelism::Rayon(2)),
            ] {
                let mut s = e.model.scratch();
                s.few_rows = few_rows;
                let mut out = [0.0f32; DIM];
                let mut run = || e.model.embed(&ids, &mut s, parallelism, &mut out);
                match &e.pool {
                    Some(pool) => pool.install(run),
                    None => run(),
                }
                .unwrap();
                let d = out.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(d < 1e-4, "{text:?} with few_rows {few_rows}: max difference {d}");
                worst = worst.max(d);
            }
        }
        eprintln!("worst difference from the reference: {worst:e}");
    }
}
