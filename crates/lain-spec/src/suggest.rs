//! "Did you mean ...?" for misspelt keys.

/// The candidate closest to `word`, if it is close enough to be a likely
/// typo (edit distance within a third of the length, or a high Jaro-Winkler
/// similarity for long words with a changed suffix like `num_instance`).
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    // Keys are short; a huge "key" is no typo, and comparing it would cost
    // time and memory for nothing.
    if word.len() > 64 {
        return None;
    }
    let lower = word.to_ascii_lowercase();
    let limit = (lower.chars().count() / 3).max(1);
    let mut best: Option<(usize, &'a str)> = None;
    for &c in candidates {
        let d = strsim::damerau_levenshtein(&lower, c);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    if let Some((_, c)) = best {
        return Some(c);
    }
    let mut best_jw: Option<(f64, &'a str)> = None;
    for &c in candidates {
        let s = strsim::jaro_winkler(&lower, c);
        if s >= 0.9 && best_jw.is_none_or(|(bs, _)| s > bs) {
            best_jw = Some((s, c));
        }
    }
    best_jw.map(|(_, c)| c)
}

/// `" (did you mean `x`?)"` or nothing.
pub(crate) fn hint(word: &str, candidates: &[&str]) -> String {
    closest(word, candidates)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// `a, b, c` for "valid keys here are ..." lists.
pub(crate) fn list(candidates: &[&str]) -> String {
    candidates.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos() {
        let keys = ["num_instances", "memory", "cmd", "mountpoint", "setup_time"];
        assert_eq!(closest("num_instance", &keys), Some("num_instances"));
        assert_eq!(closest("memroy", &keys), Some("memory"));
        assert_eq!(closest("mountpoints", &keys), Some("mountpoint"));
        assert_eq!(closest("Memory", &keys), Some("memory"));
        assert_eq!(closest("schedule", &keys), None);
        assert_eq!(closest("", &keys), None);
    }
}
