//! The model: tokenization, batching, the BERT forward pass, pooling.

use crate::bert::{Bert, Config};
use crate::{Error, DIM, MAX_TOKENS};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::path::Path;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

/// Tokens (padding included) one forward pass holds at most: batches are cut so that
/// `texts × longest` stays under it, after sorting by length, so padding stays small.
const TOKENS_PER_BATCH: usize = 2048;

/// all-MiniLM-L6-v2, loaded once; embeds documents in batches and queries one at a time.
/// `Send + Sync`: one embedder serves every thread.
pub struct Embedder {
    model: Bert,
    tokenizer: Tokenizer,
    device: Device,
}

/// What a call to [`Embedder::embed_documents`] did, for throughput figures.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Texts embedded.
    pub texts: usize,
    /// Real tokens, `[CLS]`/`[SEP]` included, after truncation.
    pub tokens: usize,
    /// Tokens the forward passes ran on, padding included.
    pub padded_tokens: usize,
    /// Forward passes.
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
        Ok(Self { model, tokenizer, device })
    }

    /// The vector of one text (a query): [`DIM`] floats, unit length.
    pub fn embed_query(&self, text: &str) -> Result<Vec<f32>, Error> {
        let mut out = vec![0.0; DIM];
        self.embed_into(text, &mut out)?;
        Ok(out)
    }

    /// Writes the vector of one text into `out` (exactly [`DIM`] long), for callers that size
    /// their query buffer once.
    pub fn embed_into(&self, text: &str, out: &mut [f32]) -> Result<(), Error> {
        if out.len() != DIM {
            return Err(Error::Tokenizer(format!(
                "output buffer of {} floats, not {DIM}",
                out.len()
            )));
        }
        let encoding = self.encode(text)?;
        let pooled = self.forward(&[&encoding])?;
        out.copy_from_slice(&pooled[..DIM]);
        Ok(())
    }

    /// Number of tokens the model sees for `text` (`[CLS]`/`[SEP]` included, at most
    /// [`MAX_TOKENS`]).
    pub fn count_tokens(&self, text: &str) -> Result<usize, Error> {
        Ok(self.encode(text)?.get_ids().len())
    }

    /// The vectors of many texts (documents), `texts.len() × DIM` floats in input order.
    /// Texts are sorted by length and cut into batches of similar length, so little of the work
    /// is padding; `progress` is called with the number of texts done after each batch.
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
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let mut out = vec![0.0f32; texts.len() * DIM];
        let mut stats = Stats { texts: texts.len(), ..Stats::default() };
        let mut start = 0;
        while start < order.len() {
            // Sorted ascending: the batch's last text is its longest.
            let mut end = start + 1;
            while end < order.len()
                && (end + 1 - start) * encodings[order[end]].get_ids().len() <= TOKENS_PER_BATCH
            {
                end += 1;
            }
            let batch: Vec<&Encoding> = order[start..end].iter().map(|&i| &encodings[i]).collect();
            let longest = batch.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
            stats.tokens += batch.iter().map(|e| e.get_ids().len()).sum::<usize>();
            stats.padded_tokens += longest * batch.len();
            stats.batches += 1;
            let pooled = self.forward(&batch)?;
            for (row, &i) in order[start..end].iter().enumerate() {
                out[i * DIM..(i + 1) * DIM].copy_from_slice(&pooled[row * DIM..(row + 1) * DIM]);
            }
            progress(end);
            start = end;
        }
        Ok((out, stats))
    }

    fn encode(&self, text: &str) -> Result<Encoding, Error> {
        self.tokenizer.encode(text, true).map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// One forward pass over `batch` padded to its longest; returns `batch.len() × DIM` pooled,
    /// normalized floats.
    fn forward(&self, batch: &[&Encoding]) -> Result<Vec<f32>, Error> {
        let rows = batch.len();
        let len = batch.iter().map(|e| e.get_ids().len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0u32; rows * len];
        let mut mask = vec![0f32; rows * len];
        for (r, e) in batch.iter().enumerate() {
            let n = e.get_ids().len();
            ids[r * len..r * len + n].copy_from_slice(e.get_ids());
            mask[r * len..r * len + n].fill(1.0);
        }
        let ids = Tensor::from_vec(ids, (rows, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (rows, len), &self.device)?;
        let hidden = self.model.forward(&ids, &mask)?;
        // Mean over the real tokens, then unit length (sentence-transformers' pooling).
        let mask = mask.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f32::MAX)?;
        let unit = mean.broadcast_div(&norm)?;
        Ok(unit.flatten_all()?.to_vec1::<f32>()?)
    }
}
