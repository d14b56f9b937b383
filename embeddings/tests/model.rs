//! Tests that need the installed model (feature `model-tests`, which CI enables after
//! `cargo xtask model`). They fail, never pass silently, when the model is missing.

use embeddings::{default_model_dir, Embedder, DIM};

fn embedder() -> Embedder {
    let dir = default_model_dir().expect("a model directory");
    match Embedder::load(&dir) {
        Ok(e) => e,
        Err(e) => panic!("the model-tests feature needs the model: {e}"),
    }
}

fn reference() -> Vec<(String, Vec<f32>)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("minilm-reference.json");
    let text = std::fs::read_to_string(&path).expect("the reference vectors");
    let json: serde_json::Value = serde_json::from_str(&text).expect("reference JSON");
    json["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .map(|v| {
            let text = v["text"].as_str().expect("text").to_string();
            let emb = v["embedding"]
                .as_array()
                .expect("embedding")
                .iter()
                .map(|x| x.as_f64().expect("a number") as f32)
                .collect();
            (text, emb)
        })
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn hello_world_matches_the_published_prefix() {
    let v = embedder().embed_query("hello world").unwrap();
    assert_eq!(v.len(), DIM);
    let expected = [-0.034477f32, 0.031023, 0.006735, 0.026109, -0.039362];
    assert!(max_diff(&v[..5], &expected) < 1e-4, "hello world starts {:?}", &v[..5]);
}

#[test]
fn queries_match_the_reference_vectors() {
    let e = embedder();
    let reference = reference();
    assert_eq!(reference.len(), 7);
    for (text, expected) in &reference {
        assert_eq!(expected.len(), DIM, "{text}");
        let v = e.embed_query(text).unwrap();
        let d = max_diff(&v, expected);
        assert!(d < 1e-4, "{text:?}: max difference {d}");
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{text:?}: norm {norm}");
    }
}

#[test]
fn batches_padding_included_give_the_single_vectors() {
    let e = embedder();
    let reference = reference();
    let texts: Vec<&str> = reference.iter().map(|(t, _)| t.as_str()).collect();
    let mut seen = Vec::new();
    let (flat, stats) = e.embed_documents(&texts, &mut |done| seen.push(done)).unwrap();
    assert_eq!(flat.len(), texts.len() * DIM);
    assert_eq!(stats.texts, texts.len());
    assert!(stats.padded_tokens >= stats.tokens);
    assert_eq!(seen.last(), Some(&texts.len()));
    for (i, (text, expected)) in reference.iter().enumerate() {
        let d = max_diff(&flat[i * DIM..(i + 1) * DIM], expected);
        assert!(d < 1e-4, "{text:?} in a batch: max difference {d}");
    }
}

#[test]
fn long_texts_are_cut_at_256_tokens() {
    let e = embedder();
    let long = "memory ".repeat(1000);
    assert_eq!(e.count_tokens(&long).unwrap(), embeddings::MAX_TOKENS);
    let v = e.embed_query(&long).unwrap();
    assert!(v.iter().all(|x| x.is_finite()));
}
