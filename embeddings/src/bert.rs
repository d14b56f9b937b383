//! The BERT encoder of all-MiniLM-L6-v2 in inference mode, on candle's tensors and layers
//! (`candle-nn`'s `Linear`, `LayerNorm`, `Embedding`, softmax). The same computation as
//! `candle-transformers`' BERT and Hugging Face's `BertModel` (absolute positions, erf GELU,
//! post-layer-norm), written here so the crate does not build all of candle-transformers' models,
//! and so the three attention projections run as one matrix product over the whole batch.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{embedding, layer_norm, linear, Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;

/// The fields of `config.json` the encoder needs.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Config {
    pub(crate) vocab_size: usize,
    pub(crate) hidden_size: usize,
    pub(crate) num_hidden_layers: usize,
    pub(crate) num_attention_heads: usize,
    pub(crate) intermediate_size: usize,
    pub(crate) max_position_embeddings: usize,
    pub(crate) type_vocab_size: usize,
    pub(crate) layer_norm_eps: f64,
    pub(crate) hidden_act: String,
}

struct Layer {
    /// Query, key and value projections stacked: one product gives all three.
    qkv: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// The encoder: embeddings, then the layers.
pub(crate) struct Bert {
    words: Embedding,
    positions: Embedding,
    types: Embedding,
    embeddings_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    hidden: usize,
}

impl Bert {
    pub(crate) fn load(vb: VarBuilder<'_>, c: &Config) -> Result<Bert> {
        if c.hidden_act != "gelu" || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            candle_core::bail!(
                "unsupported config: hidden_act {:?}, {} wide with {} heads",
                c.hidden_act,
                c.hidden_size,
                c.num_attention_heads
            );
        }
        let h = c.hidden_size;
        let e = vb.pp("embeddings");
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention.self");
            let parts = ["query", "key", "value"]
                .map(|p| (a.pp(p).get((h, h), "weight"), a.pp(p).get(h, "bias")));
            let mut weights = Vec::with_capacity(3);
            let mut biases = Vec::with_capacity(3);
            for (w, b) in parts {
                weights.push(w?);
                biases.push(b?);
            }
            let qkv = Linear::new(Tensor::cat(&weights, 0)?, Some(Tensor::cat(&biases, 0)?));
            layers.push(Layer {
                qkv,
                attention_out: linear(h, h, l.pp("attention.output.dense"))?,
                attention_norm: layer_norm(
                    h,
                    c.layer_norm_eps,
                    l.pp("attention.output.LayerNorm"),
                )?,
                intermediate: linear(h, c.intermediate_size, l.pp("intermediate.dense"))?,
                output: linear(c.intermediate_size, h, l.pp("output.dense"))?,
                output_norm: layer_norm(h, c.layer_norm_eps, l.pp("output.LayerNorm"))?,
            });
        }
        Ok(Bert {
            words: embedding(c.vocab_size, h, e.pp("word_embeddings"))?,
            positions: embedding(c.max_position_embeddings, h, e.pp("position_embeddings"))?,
            types: embedding(c.type_vocab_size, h, e.pp("token_type_embeddings"))?,
            embeddings_norm: layer_norm(h, c.layer_norm_eps, e.pp("LayerNorm"))?,
            layers,
            heads: c.num_attention_heads,
            head_dim: h / c.num_attention_heads,
            hidden: h,
        })
    }

    /// The last layer's states, `(rows, len, hidden)`, for `ids` `(rows, len)` (u32) and `mask`
    /// `(rows, len)` (f32, 1 for a token, 0 for padding).
    pub(crate) fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (rows, len) = ids.dims2()?;
        let positions = Tensor::arange(0u32, len as u32, ids.device())?;
        let x = self
            .words
            .forward(ids)?
            .broadcast_add(&self.positions.forward(&positions)?)?
            .broadcast_add(&self.types.forward(&Tensor::zeros(1, DType::U32, ids.device())?)?)?;
        let x = self.embeddings_norm.forward(&x)?;
        // Padding gets a large negative score before the softmax: (rows, 1, 1, len).
        let bias = ((mask.ones_like()? - mask)? * -1e9)?.reshape((rows, 1, 1, len))?;
        let mut x = x.reshape((rows * len, self.hidden))?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        for layer in &self.layers {
            let qkv = layer.qkv.forward(&x)?.reshape((rows, len, 3, self.heads, self.head_dim))?;
            // (rows, heads, len, head_dim) each.
            let part = |i: usize| qkv.narrow(2, i, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous();
            let (q, k, v) = (part(0)?, part(1)?, part(2)?);
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&bias)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let context = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((rows * len, self.hidden))?;
            let attended =
                layer.attention_norm.forward(&(layer.attention_out.forward(&context)? + &x)?)?;
            let inner = crate::gelu::gelu_erf(layer.intermediate.forward(&attended)?)?;
            x = layer.output_norm.forward(&(layer.output.forward(&inner)? + &attended)?)?;
        }
        x.reshape((rows, len, self.hidden))
    }
}
