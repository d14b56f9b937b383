use proptest::prelude::*;
use shm_reader::{DeletedSet, Hits, Query, Ranking, SearchOptions};

use crate::util::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn search_equals_brute_force(docs in corpus_strategy(120), query in query_strategy(), options in options_strategy()) {
        let segment = segment_of(&docs, 1);
        let q = Query::from_keywords(&query);
        let mut hits = Hits::with_capacity(16);
        segment.search(&q, &options, &DeletedSet::empty(), 0, &mut hits);
        let got: Vec<_> = hits.iter().map(|h| (h.id, h.score)).collect();
        assert_same(&got, &brute_force(&docs, q.keywords(), &options))?;
        // Every hit explains its score, part by part.
        for h in hits.iter() {
            let e = segment.explain(&q, h.ordinal, &options).unwrap();
            prop_assert_eq!(e.score, h.score);
            prop_assert_eq!(e.overlap, h.overlap);
            prop_assert_eq!(e.matched.len() as u32, h.overlap);
            prop_assert!((e.jaccard + e.score_boost + e.sacred_boost - h.score).abs() < 1e-12);
        }
    }

    #[test]
    fn long_queries_over_several_windows_equal_brute_force(
        docs in proptest::collection::vec(doc_strategy(), 600..1500),
        query in proptest::collection::vec(query_word(), 5..24),
        options in options_strategy(),
    ) {
        // Long (related-style) queries over more documents than one window: this is where the
        // essential-term pruning and the forward-list lookups take over once the top-k fills.
        let docs = distinct(docs);
        let segment = segment_of(&docs, 1);
        let q = Query::from_keywords(&query);
        let mut hits = Hits::with_capacity(16);
        segment.search(&q, &options, &DeletedSet::empty(), 0, &mut hits);
        let got: Vec<_> = hits.iter().map(|h| (h.id, h.score)).collect();
        assert_same(&got, &brute_force(&docs, q.keywords(), &options))?;
        for h in hits.iter() {
            prop_assert_eq!(segment.explain(&q, h.ordinal, &options).unwrap().overlap, h.overlap);
        }
    }

    #[test]
    fn deletions_are_never_returned(docs in corpus_strategy(60), query in query_strategy(), delete_every in 2usize..5) {
        let segment = segment_of(&docs, 1);
        let (deleted, deleted_ids) = every_nth_deleted(&segment, delete_every);
        let live: Vec<_> = docs.iter().filter(|d| !deleted_ids.contains(&d.id)).cloned().collect();
        let q = Query::from_keywords(&query);
        let options = jaccard_default();
        let mut hits = Hits::with_capacity(10);
        segment.search(&q, &options, &deleted, 0, &mut hits);
        let got: Vec<_> = hits.iter().map(|h| (h.id, h.score)).collect();
        assert_same(&got, &brute_force(&live, q.keywords(), &options))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn ranked_search_equals_brute_force(docs in corpus_strategy(120), query in query_strategy(), options in ranked_options_strategy()) {
        let segment = segment_of(&docs, 1);
        let q = Query::from_keywords(&query);
        let mut hits = Hits::with_capacity(16);
        segment.search(&q, &options, &DeletedSet::empty(), 0, &mut hits);
        let got: Vec<_> = hits.iter().map(|h| (h.id, h.score)).collect();
        assert_same(&got, &brute_force_ranked(&[&docs], q.terms(), &options))?;
        // Every hit explains its score, term by term.
        for h in hits.iter() {
            let e = segment.explain(&q, h.ordinal, &options).unwrap();
            prop_assert_eq!(e.score, h.score);
            prop_assert_eq!(e.overlap, h.overlap);
            let sum: f64 = e.terms.iter().map(|t| t.contribution).sum();
            prop_assert!((sum - e.jaccard).abs() < 1e-9, "{} vs {}", sum, e.jaccard);
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn ranked_long_queries_and_ties_equal_brute_force(
        docs in proptest::collection::vec(doc_strategy(), 300..2000),
        query in proptest::collection::vec(query_word(), 1..24),
        options in ranked_options_strategy(),
        delete_every in 0usize..5,
    ) {
        // More documents than a window and than a block, many equal scores (same words, same
        // boosts): ties are broken by timestamp then id, as brute force does.
        let docs = distinct(docs);
        let segment = segment_of(&docs, 1);
        let (deleted, deleted_ids) = every_nth_deleted(&segment, delete_every);
        let q = Query::from_keywords(&query);
        let mut hits = Hits::with_capacity(16);
        segment.search(&q, &options, &deleted, 0, &mut hits);
        let got: Vec<_> = hits.iter().map(|h| (h.id, h.score)).collect();
        assert_same(&got, &brute_force_ranked_live(&docs, q.terms(), &options, &deleted_ids))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The ranked search seeds its bar from single terms' impacts and block maxima before any
    /// hit (rank.rs `seed`); a seed that came from a deleted, excluded or out-of-range document,
    /// or that ignored a boost below 0 (a negative weight), would drop a true hit. Brute force
    /// decides.
    #[test]
    fn seeded_bars_equal_brute_force(
        docs in proptest::collection::vec(doc_strategy(), 200..1500),
        query in proptest::collection::vec(query_word(), 1..6),
        limit in 1usize..14,
        weights in prop::sample::select(vec![(0.2, 0.3), (0.0, 0.0), (-0.2, 0.3), (0.2, -0.3)]),
        sacred_only in any::<bool>(),
        exclude in prop::option::of(0usize..4),
        delete_every in 0usize..4,
    ) {
        let docs = distinct(docs);
        let segment = segment_of(&docs, 1);
        let (deleted, deleted_ids) = every_nth_deleted(&segment, delete_every);
        let mut options = SearchOptions {
            limit,
            sacred_only,
            w_score: weights.0,
            w_sacred: weights.1,
            ranking: Ranking::Bm25f,
            ..SearchOptions::default()
        };
        let q = Query::from_keywords(&query);
        // Excluded (as a related search does): one of the best documents, those a seed counts.
        if let Some(i) = exclude {
            let all = SearchOptions { limit: docs.len(), ..options.clone() };
            options.exclude = brute_force_ranked(&[&docs], q.terms(), &all).get(i).map(|h| h.0);
        }
        let mut hits = Hits::with_capacity(16);
        segment.search(&q, &options, &deleted, 0, &mut hits);
        let got: Vec<_> = hits.iter().map(|h| (h.id, h.score)).collect();
        assert_same(&got, &brute_force_ranked_live(&docs, q.terms(), &options, &deleted_ids))?;
    }
}

/// How many times each keyword occurs in a document's text fields, counted naively.
fn occurrences(d: &semantic_index::Document, word: &str) -> usize {
    let fields = std::iter::once(&d.question)
        .chain(d.insights.iter().take(semantic_index::DOCUMENT_INSIGHTS))
        .chain(std::iter::once(&d.synthesis));
    fields
        .flat_map(|f| f.split(|c: char| !c.is_alphanumeric()))
        .filter(|w| w.to_lowercase() == word)
        .count()
}

/// Every document's keywords (in bytewise order, whether their term is frequent or not), its
/// keyword count and the frequency of each of `words` read back as counted naively.
fn assert_frequencies<W: AsRef<str>>(docs: &[semantic_index::Document], words: &[W]) {
    let segment = segment_of(docs, 1);
    for d in docs {
        let view = segment.doc(segment.find(&d.id).unwrap()).unwrap();
        let mut want = semantic_index::document_keywords(&d.question, &d.insights, &d.synthesis);
        want.sort_unstable();
        assert_eq!(view.keywords().collect::<Vec<_>>(), want, "{:?}", d.question);
        assert_eq!(view.keyword_count() as usize, want.len());
        for w in words {
            let w = w.as_ref();
            let want = occurrences(d, w).min(255) as u8;
            assert_eq!(view.term_frequency(w), want, "{w:?} in {:?}", d.question);
        }
    }
    segment.verify().unwrap();
}

proptest! {
    #[test]
    fn term_frequencies_equal_naive_counts(docs in corpus_strategy(200)) {
        let words: Vec<String> =
            VOCAB.iter().map(|w| w.to_string()).chain((0..RARE).map(rare)).collect();
        assert_frequencies(&docs, &words);
    }
}

#[test]
fn keywords_read_back_with_every_bitmap_chunk() {
    // 200 words each in about two thirds of 130 documents: every word is frequent (a bitmap),
    // so a document's block has 200 words and its frequent terms are gathered in four chunks
    // of 64 (the last partial); some documents end in the first chunk, some have none at all.
    let words: Vec<String> = (0..200).map(word).collect();
    let docs: Vec<semantic_index::Document> = (0..130usize)
        .map(|i| {
            let question: Vec<&str> = words
                .iter()
                .enumerate()
                .filter(|&(j, _)| match i % 13 {
                    0 => false,
                    1 => j < 40 && j % 3 == 0,
                    2 => j == 199,
                    _ => (i * 7 + j * 13) % 3 != 0,
                })
                .map(|(_, w)| w.as_str())
                .chain(["unique", "words"])
                .collect();
            semantic_index::Document {
                id: [i as u8; 16],
                question: question.join(" "),
                ..Default::default()
            }
        })
        .collect();
    let mut b = semantic_index::SegmentBuilder::new();
    for d in &docs {
        b.add(d).unwrap();
    }
    assert!(b.data().unwrap().frequent_terms.len() >= 129, "expected over two chunks of bitmaps");
    assert_frequencies(&docs, &words[..3]);
}

#[test]
fn term_frequencies_stored_sparsely_read_back() {
    // Mostly distinct words, a few repeated (one past the u8 range): the builder stores
    // the exceptions only, and the reader finds every frequency, 1 or not.
    let words: Vec<String> = (0..300).map(word).collect();
    let docs: Vec<semantic_index::Document> = (0..100usize)
        .map(|i| {
            let mut question: Vec<&str> = words[i..i + 20].iter().map(String::as_str).collect();
            if i % 10 == 0 {
                question.extend(std::iter::repeat_n(words[i].as_str(), i / 10 + 1));
            }
            if i == 50 {
                question.extend(std::iter::repeat_n(words[i + 1].as_str(), 300));
            }
            semantic_index::Document {
                id: [i as u8; 16],
                question: question.join(" "),
                ..Default::default()
            }
        })
        .collect();
    let mut b = semantic_index::SegmentBuilder::new();
    for d in &docs {
        b.add(d).unwrap();
    }
    let data = b.data().unwrap();
    assert!(data.frequencies.is_empty(), "expected the sparse form");
    assert_eq!(data.frequency_exceptions.len(), 11);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    assert_frequencies(&docs, &words);
    assert_eq!(segment_of(&docs, 1).doc(0).unwrap().term_frequency("absent"), 0);
}

#[test]
fn doc_views_lookup_and_sacred_order() {
    let docs: Vec<semantic_index::Document> = (0..20u8)
        .map(|i| semantic_index::Document {
            id: [i; 16],
            domain: format!("d{}", i % 3),
            question: format!("memory number {i} about segments"),
            score: f32::from(i) / 20.0,
            sacred: i % 4 == 0,
            timestamp_micros: i64::from(i % 7),
            ..Default::default()
        })
        .collect();
    let segment = segment_of(&docs, 5);
    assert_eq!(segment.generation(), 5);
    assert_eq!(segment.len(), 20);
    for d in &docs {
        let o = segment.find(&d.id).unwrap();
        let view = segment.doc(o).unwrap();
        assert_eq!(view.id(), d.id);
        assert_eq!(view.domain(), d.domain);
        assert_eq!(view.gist(), d.question);
        assert_eq!(view.sacred(), d.sacred);
        assert_eq!(view.timestamp_micros(), d.timestamp_micros);
        let mut kws: Vec<&str> = view.keywords().collect();
        kws.sort_unstable();
        let mut want = semantic_index::keywords(&d.question);
        want.sort_unstable();
        assert_eq!(kws, want);
        assert_eq!(view.keyword_count() as usize, want.len());
    }
    assert_eq!(segment.find(&[99; 16]), None);
    let sacred: Vec<(i64, [u8; 16])> = segment
        .sacred()
        .map(|o| segment.doc(o).unwrap())
        .map(|d| (d.timestamp_micros(), d.id()))
        .collect();
    let mut want: Vec<(i64, [u8; 16])> =
        docs.iter().filter(|d| d.sacred).map(|d| (d.timestamp_micros, d.id)).collect();
    want.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    assert_eq!(sacred, want);
    segment.verify().unwrap();
}

#[test]
fn hits_respect_capacity_and_limit() {
    let docs: Vec<semantic_index::Document> = (0..50u8)
        .map(|i| semantic_index::Document {
            id: [i; 16],
            question: "shared memory".into(),
            ..Default::default()
        })
        .collect();
    let segment = segment_of(&docs, 1);
    let q = Query::from_text("memory");
    let mut hits = Hits::with_capacity(7);
    segment.search(
        &q,
        &SearchOptions { limit: 100, ..jaccard_default() },
        &DeletedSet::empty(),
        0,
        &mut hits,
    );
    assert_eq!(hits.len(), 7);
    segment.search(
        &q,
        &SearchOptions { limit: 3, ..jaccard_default() },
        &DeletedSet::empty(),
        0,
        &mut hits,
    );
    assert_eq!(hits.len(), 7, "a smaller limit never drops hits already kept");
    hits.clear();
    segment.search(
        &q,
        &SearchOptions { limit: 3, ..jaccard_default() },
        &DeletedSet::empty(),
        0,
        &mut hits,
    );
    assert_eq!(hits.len(), 3);
    // Ties on score and timestamp: id ascending.
    let ids: Vec<u8> = hits.iter().map(|h| h.id[0]).collect();
    assert_eq!(ids, [0, 1, 2]);
}

/// A word made of letters only (keywords keep letters), distinct for every `i`.
fn word(mut i: usize) -> String {
    let mut w = String::from("zq");
    for _ in 0..4 {
        w.push(char::from(b'a' + (i % 26) as u8));
        i /= 26;
    }
    w
}

#[test]
fn more_terms_than_narrow_forward_lists_hold_search_exactly() {
    // 700 memories of 100 words of their own each, plus shared words: 70,000+ terms, so
    // forward lists are stored wide (u32), and term ordinals above 65,535 are searched.
    let terms = semantic_index::format::NARROW_TERMS + 4_464;
    let docs: Vec<semantic_index::Document> = (0..terms / 100)
        .map(|d| semantic_index::Document {
            id: (d as u128).to_be_bytes(),
            domain: format!("d{}", d % 3),
            question: (d * 100..d * 100 + 100).map(word).collect::<Vec<_>>().join(" "),
            insights: vec![format!("{} {}", VOCAB[d % 5], VOCAB[d % 7])],
            score: (d % 10) as f32 / 10.0,
            sacred: d % 9 == 0,
            timestamp_micros: (d % 13) as i64,
            ..Default::default()
        })
        .collect();
    let segment = segment_of(&docs, 1);
    assert!(segment.term_count() as usize > semantic_index::format::NARROW_TERMS);
    segment.verify().unwrap();
    let options = jaccard_default();
    let mut hits = Hits::with_capacity(10);
    for (i, d) in docs.iter().enumerate().step_by(37) {
        let q = Query::from_keywords([
            word(i * 100 + 99),
            word((i * 7919) % terms),
            VOCAB[i % 5].to_string(),
        ]);
        hits.clear();
        segment.search(&q, &options, &DeletedSet::empty(), 0, &mut hits);
        let got: Vec<_> = hits.iter().map(|h| (h.id, h.score)).collect();
        assert_same(&got, &brute_force(&docs, q.keywords(), &options)).unwrap();
        let own = Query::from_keywords([word(i * 100), word(i * 100 + 99)]);
        hits.clear();
        segment.search(&own, &options, &DeletedSet::empty(), 0, &mut hits);
        let got: Vec<_> = hits.iter().map(|h| h.id).collect();
        assert_eq!(got, [d.id], "memory {i} alone has its own words");
        let view = segment.doc(segment.find(&d.id).unwrap()).unwrap();
        let mut kws: Vec<&str> = view.keywords().collect();
        kws.sort_unstable();
        let mut want = semantic_index::document_keywords(&d.question, &d.insights, &d.synthesis);
        want.sort_unstable();
        assert_eq!(kws, want);
    }
}

#[test]
fn postings_over_several_pages_search_exactly() {
    // Three posting pages (ordinals past 65,535 and 131,071): cursors cross pages, skip pages
    // a term is absent from, and seek into a later page at the start of the unsacred run
    // (half the memories are sacred, so it starts past the first page).
    let page = semantic_index::format::POSTING_PAGE as usize;
    let n = 2 * page + 5_000;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |m: usize| {
        state =
            state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize % m
    };
    let docs: Vec<semantic_index::Document> = (0..n)
        .map(|i| {
            let mut words: Vec<String> =
                (0..1 + next(4)).map(|_| VOCAB[next(VOCAB.len())].to_string()).collect();
            // A rare word per 3,000 memories, and one only the last page has.
            words.push(word(i % 3_000));
            if i % 1_000 == 0 && i > 2 * page {
                words.push("lastpageonly".into());
            }
            semantic_index::Document {
                id: (i as u128).to_be_bytes(),
                domain: format!("d{}", i % 3),
                question: words.join(" "),
                score: (next(8) as f32) / 8.0,
                sacred: i % 2 == 0,
                timestamp_micros: (i % 100) as i64,
                ..Default::default()
            }
        })
        .collect();
    let sets: Vec<Vec<String>> = docs
        .iter()
        .map(|d| semantic_index::document_keywords(&d.question, &d.insights, &d.synthesis))
        .collect();
    let brute = |query: &[String], o: &SearchOptions| {
        let mut scored: Vec<([u8; 16], f64, i64)> = Vec::new();
        for (d, kws) in docs.iter().zip(&sets) {
            if o.sacred_only && !d.sacred || o.domain.as_ref().is_some_and(|x| *x != d.domain) {
                continue;
            }
            let overlap = query.iter().filter(|k| kws.contains(k)).count();
            if overlap > 0 {
                let s = shm_reader::score(
                    overlap as u32,
                    query.len() as u32,
                    kws.len() as u32,
                    d.score,
                    d.sacred,
                    o,
                );
                scored.push((d.id, s, d.timestamp_micros));
            }
        }
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
        scored.truncate(o.limit);
        scored.into_iter().map(|(id, s, _)| (id, s)).collect::<Vec<_>>()
    };
    let segment = segment_of(&docs, 1);
    assert_eq!(segment.len() as usize, n);
    segment.verify().unwrap();
    let queries: Vec<Vec<String>> = vec![
        vec!["lastpageonly".into()],
        vec![word(7)],
        vec![word(2_999), "lastpageonly".into()],
        vec![VOCAB[0].into(), word(11)],
        vec![VOCAB[1].into(), VOCAB[2].into(), VOCAB[3].into(), "lastpageonly".into()],
        vec![VOCAB[4].into()],
        vec![VOCAB[5].into(), VOCAB[6].into(), word(123), word(2_500)],
    ];
    let option_sets = [
        jaccard_default(),
        SearchOptions { limit: 50, ..jaccard_default() },
        SearchOptions { sacred_only: true, ..jaccard_default() },
        SearchOptions { domain: Some("d2".into()), ..jaccard_default() },
        SearchOptions { w_score: 0.0, w_sacred: 0.0, limit: 20, ..jaccard_default() },
    ];
    let mut hits = Hits::with_capacity(50);
    for kws in &queries {
        let q = Query::from_keywords(kws);
        for o in &option_sets {
            hits.clear();
            segment.search(&q, o, &DeletedSet::empty(), 0, &mut hits);
            let got: Vec<_> = hits.iter().map(|h| (h.id, h.score)).collect();
            assert_same(&got, &brute(q.keywords(), o)).unwrap();
            // The same under BM25F: postings over many blocks, windows and skips.
            let o = SearchOptions { ranking: Ranking::Bm25f, ..o.clone() };
            hits.clear();
            segment.search(&q, &o, &DeletedSet::empty(), 0, &mut hits);
            let got: Vec<_> = hits.iter().map(|h| (h.id, h.score)).collect();
            assert_same(&got, &brute_force_ranked(&[&docs], q.terms(), &o)).unwrap();
        }
    }
}

/// A query of already-analyzed terms ranks exactly as the query they came from under BM25F,
/// whatever their order or repeats, and finds nothing under Jaccard (it has no keywords).
#[test]
fn queries_from_analyzed_terms_rank_as_their_source() {
    let docs: Vec<semantic_index::Document> = (0..400usize)
        .map(|i| semantic_index::Document {
            id: (i as u128).to_be_bytes(),
            domain: format!("d{}", i % 3),
            question: format!(
                "{} {} {}ing {}s",
                VOCAB[i % VOCAB.len()],
                VOCAB[(i * 7 + 3) % VOCAB.len()],
                VOCAB[(i * 5 + 1) % VOCAB.len()],
                word(i % 37)
            ),
            score: (i % 8) as f32 / 8.0,
            sacred: i % 5 == 0,
            ..Default::default()
        })
        .collect();
    let segment = segment_of(&docs, 1);
    let texts = ["Crashing stores were indexed", "memory mapped segments and sockets", "zzz"];
    let mut hits = Hits::with_capacity(20);
    let bm25f = SearchOptions { ranking: Ranking::Bm25f, limit: 20, ..SearchOptions::default() };
    for text in texts {
        let source = Query::from_text(text);
        let mut reversed: Vec<&String> = source.terms().iter().rev().collect();
        reversed.extend(source.terms());
        let from_terms = Query::from_terms(reversed);
        let mut sorted = source.terms().to_vec();
        sorted.sort();
        let mut got_terms = from_terms.terms().to_vec();
        got_terms.sort();
        assert_eq!(got_terms, sorted, "{text}: the same terms, once each");
        hits.clear();
        segment.search(&source, &bm25f, &DeletedSet::empty(), 0, &mut hits);
        let want: Vec<_> = hits.iter().map(|h| (h.id, h.score)).collect();
        assert_eq!(want.is_empty(), text == "zzz", "{text}: {want:?}");
        hits.clear();
        segment.search(&from_terms, &bm25f, &DeletedSet::empty(), 0, &mut hits);
        let got: Vec<_> = hits.iter().map(|h| (h.id, h.score)).collect();
        assert_eq!(got, want, "{text}");
        assert!(from_terms.is_empty_for(Ranking::Jaccard), "{text}: no keywords");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Limits from 64 on collect into a heap during the search: the order, the ties and the
    /// cut-off at `k` are brute force's, for both rankings, and a second segment searched into
    /// the same buffer merges with the sorted hits of the first.
    #[test]
    fn large_limits_equal_brute_force(
        a in proptest::collection::vec(doc_strategy(), 100..900),
        b in proptest::collection::vec(doc_strategy(), 0..300),
        query in proptest::collection::vec(query_word(), 1..8),
        limit in prop::sample::select(vec![63usize, 64, 65, 100, 200, 300]),
        options in options_strategy(),
        ranked in any::<bool>(),
    ) {
        let a = distinct(a);
        let b: Vec<_> = distinct(b).into_iter().filter(|d| a.binary_search_by_key(&d.id, |x| x.id).is_err()).collect();
        let ranking = if ranked { Ranking::Bm25f } else { Ranking::Jaccard };
        let options = SearchOptions { limit, ranking, ..options };
        let q = Query::from_keywords(&query);
        let mut hits = Hits::with_capacity(256);
        let seg_a = segment_of(&a, 1);
        seg_a.search(&q, &options, &DeletedSet::empty(), 0, &mut hits);
        let got: Vec<_> = hits.iter().map(|h| (h.id, h.score)).collect();
        let want = |docs: &[semantic_index::Document], o: &SearchOptions| {
            let o = SearchOptions { limit: o.limit.min(256), ..o.clone() };
            if ranked { brute_force_ranked(&[docs], q.terms(), &o) } else { brute_force(docs, q.keywords(), &o) }
        };
        assert_same(&got, &want(&a, &options))?;
        if !ranked {
            // Jaccard needs no corpus statistics, so two segments rank as one corpus.
            segment_of(&b, 2).search(&q, &options, &DeletedSet::empty(), 1, &mut hits);
            let got: Vec<_> = hits.iter().map(|h| (h.id, h.score)).collect();
            let both = distinct(a.iter().chain(&b).cloned().collect());
            assert_same(&got, &want(&both, &options))?;
        }
    }
}
