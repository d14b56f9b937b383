//! Stand-in vectors for benches that need a store with vectors but not the model's meaning:
//! each keyword gets a fixed pseudo-random direction, and a text's vector is the normalized sum
//! of its keywords' (texts that share words point alike). Embedding 100,000 memories with the
//! real model would take most of an hour on this machine; the search paths' costs depend on
//! the vectors' count and dimensions, not on where they came from.
//!
//! ```
//! let a = benches::word_vectors::text_vector("crash safe record log", 16);
//! let b = benches::word_vectors::text_vector("record log crash", 16);
//! let c = benches::word_vectors::text_vector("zebra stripes", 16);
//! let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
//! assert!((dot(&a, &a) - 1.0).abs() < 1e-5);
//! assert!(dot(&a, &b) > dot(&a, &c));
//! ```

use std::path::Path;

use semantic_index::vectors::{encode, vectors_path, VECTORS_DIR};

use crate::corpus::Corpus;

/// Dimensions of the model's vectors (all-MiniLM-L6-v2).
pub const DIM: usize = 384;

/// The unit vector of `text` (`dim` dimensions): the sum of its keywords' directions.
pub fn text_vector(text: &str, dim: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; dim];
    for word in semantic_index::keywords(text) {
        // FNV-1a of the word seeds a splitmix64 stream: one direction per word.
        let mut state = word.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        for x in &mut v {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            *x += (z >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0;
        }
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    } else {
        v[0] = 1.0;
    }
    v
}

/// Writes the vector file of the store's one live segment `segment_file` from the corpus (each
/// memory's question and insights), in the segment's ordinal order, as the writer does with the
/// model's vectors. Returns the file's size in MiB.
pub fn write_vectors(store: &Path, segment_file: &str, corpus: &Corpus) -> anyhow::Result<f64> {
    let reader = shm_reader::Reader::open(store)?;
    let snapshot = reader.snapshot();
    let index = snapshot
        .segment_files()
        .position(|(f, _)| f == segment_file)
        .ok_or_else(|| anyhow::anyhow!("segment {segment_file} is not live"))?;
    let count = snapshot.segment_doc_count(index).unwrap_or(0);
    let by_id: std::collections::HashMap<[u8; 16], usize> =
        corpus.memories.iter().enumerate().map(|(i, m)| (m.id, i)).collect();
    let mut ids = Vec::with_capacity(count as usize);
    let mut flat = Vec::with_capacity(count as usize * DIM);
    for ordinal in 0..count {
        let id = snapshot
            .segment_doc_id(index, ordinal)
            .ok_or_else(|| anyhow::anyhow!("ordinal {ordinal} unreadable"))?;
        let m = &corpus.memories[*by_id
            .get(&id)
            .ok_or_else(|| anyhow::anyhow!("a memory of the segment is not in the corpus"))?];
        let mut text = m.question.clone();
        for insight in &m.insights {
            text.push(' ');
            text.push_str(insight);
        }
        ids.push(id);
        flat.extend(text_vector(&text, DIM));
    }
    let bytes = encode(&ids, &flat, DIM, "bench-words")?;
    std::fs::create_dir_all(store.join(VECTORS_DIR))?;
    let path = vectors_path(store, segment_file);
    std::fs::write(&path, &bytes)?;
    Ok(bytes.len() as f64 / (1024.0 * 1024.0))
}
