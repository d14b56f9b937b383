//! The BERT encoder of all-MiniLM-L6-v2 in inference mode, on plain `f32` slices: the same
//! computation as `candle-transformers`' BERT and Hugging Face's `BertModel` (absolute
//! positions, erf GELU, post-layer-norm), shaped for a 2-core CPU.
//!
//! - One sequence at a time, never padded: a document batch runs one whole sequence per core
//!   (single-threaded products, no synchronisation inside a pass), a query splits its products
//!   across the cores ([`Parallelism`]).
//! - The weights are transposed once at load (`in × out`, row-major), the three attention
//!   projections stacked into one product; biases are written into the product's destination
//!   first and the product accumulates onto them; the residual likewise, then layer norm in place.
//!   The weights are kept once, packed in blocks of 16 columns at load: products of at most
//!   [`FEW_ROWS`] rows (a query's) stream them, longer ones pack their rows in panels of 6 and
//!   run the same 6 × 16 FMA kernel over each weight run while it sits in the first-level cache
//!   (`gemm` would pack the 42.5 MB of weights again for every text).
//! - Attention runs per head on the small `len × len` score matrix; softmax uses a vectorizable
//!   `exp`. All buffers live in a [`Scratch`] sized once for [`MAX_TOKENS`].
//!
//! candle only reads the weights (`VarBuilder`, shape-checked); it runs nothing here.

use crate::elementwise::{layer_norm as layer_norm_rows, softmax_rows};
use crate::gelu::gelu_slice;
use crate::matmul::{few_product, matmul, panel_product, Packed, Panels, Parallelism, View};
use crate::MAX_TOKENS;
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
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

/// A layer norm's scale and shift.
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// A linear layer, its weight (transposed to `in × out`) packed block by block.
struct Linear {
    packed: Packed,
    bias: Vec<f32>,
    outputs: usize,
}

struct Layer {
    /// Query, key and value projections side by side: one product gives all three.
    qkv: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

/// The encoder: embeddings, then the layers.
pub(crate) struct Bert {
    words: Vec<f32>,
    positions: Vec<f32>,
    /// Token type 0's row (every input here is one segment).
    type0: Vec<f32>,
    embeddings_norm: Norm,
    layers: Vec<Layer>,
    vocab: usize,
    heads: usize,
    head_dim: usize,
    hidden: usize,
    inner: usize,
    eps: f32,
}

/// One pass's buffers, sized once for [`MAX_TOKENS`]; one per thread.
pub(crate) struct Scratch {
    x: Vec<f32>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    attended: Vec<f32>,
    inner: Vec<f32>,
    scores: Vec<f32>,
    panels: Panels,
    /// Products of at most this many rows take [`few_product`] ([`FEW_ROWS`]; tests lower it
    /// to send short texts through [`panel_product`]).
    pub(crate) few_rows: usize,
}

fn flat(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

fn norm(vb: VarBuilder<'_>, h: usize) -> Result<Norm> {
    Ok(Norm { gamma: flat(&vb.get(h, "weight")?)?, beta: flat(&vb.get(h, "bias")?)? })
}

/// Reads `out × in` weights (PyTorch's layout), stacked along `out` when there are several.
fn linear(parts: &[VarBuilder<'_>], inputs: usize, outputs: usize) -> Result<Linear> {
    let mut weights = Vec::with_capacity(parts.len());
    let mut bias = Vec::with_capacity(outputs * parts.len());
    for vb in parts {
        weights.push(vb.get((outputs, inputs), "weight")?);
        bias.extend(flat(&vb.get(outputs, "bias")?)?);
    }
    let weight = flat(&Tensor::cat(&weights, 0)?.t()?.contiguous()?)?;
    let outputs = outputs * parts.len();
    let packed = Packed::new(&weight, inputs, outputs);
    Ok(Linear { packed, bias, outputs })
}

impl Bert {
    pub(crate) fn load(vb: VarBuilder<'_>, c: &Config) -> Result<Bert> {
        if c.hidden_act != "gelu"
            || c.num_attention_heads == 0
            || !c.hidden_size.is_multiple_of(c.num_attention_heads)
            || c.max_position_embeddings < MAX_TOKENS
            || c.type_vocab_size == 0
        {
            candle_core::bail!(
                "unsupported config: hidden_act {:?}, {} wide with {} heads, {} positions",
                c.hidden_act,
                c.hidden_size,
                c.num_attention_heads,
                c.max_position_embeddings
            );
        }
        let h = c.hidden_size;
        let e = vb.pp("embeddings");
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention.self");
            layers.push(Layer {
                qkv: linear(&[a.pp("query"), a.pp("key"), a.pp("value")], h, h)?,
                attention_out: linear(&[l.pp("attention.output.dense")], h, h)?,
                attention_norm: norm(l.pp("attention.output.LayerNorm"), h)?,
                intermediate: linear(&[l.pp("intermediate.dense")], h, c.intermediate_size)?,
                output: linear(&[l.pp("output.dense")], c.intermediate_size, h)?,
                output_norm: norm(l.pp("output.LayerNorm"), h)?,
            });
        }
        let types = flat(&e.pp("token_type_embeddings").get((c.type_vocab_size, h), "weight")?)?;
        Ok(Bert {
            words: flat(&e.pp("word_embeddings").get((c.vocab_size, h), "weight")?)?,
            positions: flat(
                &e.pp("position_embeddings").get((c.max_position_embeddings, h), "weight")?,
            )?,
            type0: types[..h].to_vec(),
            embeddings_norm: norm(e.pp("LayerNorm"), h)?,
            layers,
            vocab: c.vocab_size,
            heads: c.num_attention_heads,
            head_dim: h / c.num_attention_heads,
            hidden: h,
            inner: c.intermediate_size,
            eps: c.layer_norm_eps as f32,
        })
    }

    /// Buffers for one pass of up to [`MAX_TOKENS`] tokens.
    pub(crate) fn scratch(&self) -> Scratch {
        let n = MAX_TOKENS;
        Scratch {
            x: vec![0.0; n * self.hidden],
            qkv: vec![0.0; n * 3 * self.hidden],
            context: vec![0.0; n * self.hidden],
            attended: vec![0.0; n * self.hidden],
            inner: vec![0.0; n * self.inner],
            scores: vec![0.0; n * n],
            panels: Panels::new(n),
            few_rows: FEW_ROWS,
        }
    }

    /// The sentence vector of `ids` (at most [`MAX_TOKENS`], `[CLS]`/`[SEP]` included): the mean
    /// of the last layer's states, unit length, written into `out` (`hidden` floats). `None`
    /// when an id lies beyond the vocabulary or there are no ids.
    pub(crate) fn embed(
        &self,
        ids: &[u32],
        s: &mut Scratch,
        parallelism: Parallelism,
        out: &mut [f32],
    ) -> Option<()> {
        let n = ids.len();
        let h = self.hidden;
        if n == 0 || n > MAX_TOKENS || out.len() != h {
            return None;
        }
        let x = &mut s.x[..n * h];
        for (i, (&id, row)) in ids.iter().zip(x.chunks_exact_mut(h)).enumerate() {
            let id = id as usize;
            if id >= self.vocab {
                return None;
            }
            let word = &self.words[id * h..(id + 1) * h];
            let position = &self.positions[i * h..(i + 1) * h];
            for (((v, w), p), t) in row.iter_mut().zip(word).zip(position).zip(&self.type0) {
                *v = w + p + t;
            }
        }
        layer_norm(x, &self.embeddings_norm, self.eps);
        for layer in &self.layers {
            self.layer(layer, n, s, parallelism);
        }
        // Mean over the tokens, then unit length (sentence-transformers' pooling).
        out.fill(0.0);
        for row in s.x[..n * h].chunks_exact(h) {
            for (o, v) in out.iter_mut().zip(row) {
                *o += v;
            }
        }
        let inv_n = 1.0 / n as f32;
        out.iter_mut().for_each(|o| *o *= inv_n);
        let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        out.iter_mut().for_each(|o| *o /= norm);
        Some(())
    }

    fn layer(&self, layer: &Layer, n: usize, s: &mut Scratch, parallelism: Parallelism) {
        let h = self.hidden;
        let d = self.head_dim;
        let width = 3 * h;
        let few_rows = s.few_rows;
        // Q, K, V for every token: `n × 3h`, bias first.
        let qkv = &mut s.qkv[..n * width];
        linear_into(&layer.qkv, &s.x[..n * h], qkv, &mut s.panels, few_rows, parallelism);
        // Attention per head on `n × n` scores; the context lands in its head's columns.
        let scale = 1.0 / (d as f32).sqrt();
        let scores = &mut s.scores[..n * n];
        let context = &mut s.context[..n * h];
        for head in 0..self.heads {
            let q = View::rows(&qkv[head * d..], width);
            // Kᵀ: element (r, c) is K's (c, r).
            let k_t = View { data: &qkv[h + head * d..], rs: 1, cs: width };
            matmul((n, n, d), scores, n, false, q, k_t, scale, Parallelism::None);
            softmax_rows(scores, n);
            let v = View::rows(&qkv[2 * h + head * d..], width);
            matmul(
                (n, d, n),
                &mut context[head * d..],
                h,
                false,
                View::rows(scores, n),
                v,
                1.0,
                Parallelism::None,
            );
        }
        // Output projection onto bias + residual, then layer norm.
        let attended = &mut s.attended[..n * h];
        let panels = &mut s.panels;
        residual_into(
            &layer.attention_out,
            context,
            &s.x[..n * h],
            attended,
            panels,
            few_rows,
            parallelism,
        );
        layer_norm(attended, &layer.attention_norm, self.eps);
        // Feed-forward: GELU(attended·W₁ + b₁)·W₂ + b₂ + attended, then layer norm.
        let inner = &mut s.inner[..n * self.inner];
        for row in inner.chunks_exact_mut(self.inner) {
            row.copy_from_slice(&layer.intermediate.bias);
        }
        product(&layer.intermediate, attended, inner, panels, few_rows, parallelism, true);
        let x = &mut s.x[..n * h];
        residual_into(&layer.output, inner, attended, x, panels, few_rows, parallelism);
        layer_norm(x, &layer.output_norm, self.eps);
    }
}

/// `out = input·W + b` (`out` is `rows × outputs`).
fn linear_into(
    l: &Linear,
    input: &[f32],
    out: &mut [f32],
    panels: &mut Panels,
    few_rows: usize,
    parallelism: Parallelism,
) {
    for row in out.chunks_exact_mut(l.outputs) {
        row.copy_from_slice(&l.bias);
    }
    product(l, input, out, panels, few_rows, parallelism, false);
}

/// `out = input·W + b + residual` (all `rows × outputs`).
fn residual_into(
    l: &Linear,
    input: &[f32],
    residual: &[f32],
    out: &mut [f32],
    panels: &mut Panels,
    few_rows: usize,
    parallelism: Parallelism,
) {
    for (row, res) in out.chunks_exact_mut(l.outputs).zip(residual.chunks_exact(l.outputs)) {
        for ((o, r), b) in row.iter_mut().zip(res).zip(&l.bias) {
            *o = r + b;
        }
    }
    product(l, input, out, panels, few_rows, parallelism, false);
}

/// Products of at most this many rows (a query's) stream the weights with each core taking half
/// the columns ([`few_product`]); more rows are packed in panels ([`panel_product`]).
pub(crate) const FEW_ROWS: usize = 32;

/// `out += input·W`, then (with `gelu`) `out = GELU(out)`: fused into the panel kernel for long
/// inputs, a separate pass for short ones.
fn product(
    l: &Linear,
    input: &[f32],
    out: &mut [f32],
    panels: &mut Panels,
    few_rows: usize,
    parallelism: Parallelism,
    gelu: bool,
) {
    let rows = out.len() / l.outputs;
    let split = matches!(parallelism, Parallelism::Rayon(t) if t > 1);
    if rows <= few_rows {
        few_product(rows, out, l.outputs, input, &l.packed, panels, split);
        if gelu {
            gelu_slice(out);
        }
    } else {
        panel_product(rows, out, l.outputs, input, &l.packed, panels, split, gelu);
    }
}

/// Layer norm of each row of `x` in place (biased variance, as PyTorch).
fn layer_norm(x: &mut [f32], n: &Norm, eps: f32) {
    layer_norm_rows(x, &n.gamma, &n.beta, eps);
}
