//! Deterministic splits by source recording (so no piece of one recording lands in two splits),
//! stratified by category: within each category the sources are ordered by a stable hash of
//! their path and dealt 80/10/10, with at least one valid and one test source once a category
//! has three or more.

use crate::manifest::Split;
use std::collections::{BTreeMap, HashMap};

/// FNV-1a, 64-bit: a hash that never changes between Rust versions or machines.
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Assigns a split to every `(source, category)`; the same input always gives the same answer.
pub fn assign_splits<'a>(sources: impl IntoIterator<Item = (&'a str, &'a str)>) -> HashMap<String, Split> {
    let mut by_cat: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (src, cat) in sources {
        let v = by_cat.entry(cat).or_default();
        if !v.contains(&src) {
            v.push(src);
        }
    }
    let mut out = HashMap::new();
    for (_, mut srcs) in by_cat {
        srcs.sort_by_key(|s| (stable_hash(s), *s));
        let n = srcs.len();
        let (n_test, n_valid) =
            if n >= 3 { ((n as f64 * 0.1).round().max(1.0) as usize, (n as f64 * 0.1).round().max(1.0) as usize) } else { (0, 0) };
        for (i, s) in srcs.into_iter().enumerate() {
            let split = if i < n_test {
                Split::Test
            } else if i < n_test + n_valid {
                Split::Valid
            } else {
                Split::Train
            };
            out.insert(s.to_string(), split);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_deterministic_and_stratified() {
        let items: Vec<(String, String)> =
            (0..50).map(|i| (format!("pkg/file{i}.wav"), if i % 2 == 0 { "a".into() } else { "b".into() })).collect();
        let a = assign_splits(items.iter().map(|(s, c)| (s.as_str(), c.as_str())));
        let b = assign_splits(items.iter().rev().map(|(s, c)| (s.as_str(), c.as_str())));
        assert_eq!(a, b, "order of input must not matter");
        for cat in ["a", "b"] {
            let n_test = items.iter().filter(|(s, c)| c == cat && a[s] == Split::Test).count();
            let n_valid = items.iter().filter(|(s, c)| c == cat && a[s] == Split::Valid).count();
            assert!((2..=3).contains(&n_test) && (2..=3).contains(&n_valid), "{cat}: {n_test} {n_valid}");
        }
        assert_eq!(stable_hash("abc"), 0xe71fa2190541574b);
    }
}
