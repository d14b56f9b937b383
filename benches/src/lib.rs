//! Benchmark support: the deterministic corpus and the peers measured beside memory circulation.
