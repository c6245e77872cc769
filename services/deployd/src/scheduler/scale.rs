//! Which instance numbers to add or remove when a proc is scaled.
//!
//! Instances are numbered from 1, as in LAIN. Scaling down removes the
//! highest numbers first so that the survivors keep the low, stable
//! numbers (`web-1` stays `web-1`), and scaling up fills the lowest free
//! numbers, closing gaps left by failures.

use std::collections::BTreeSet;

/// The instances to remove to go from `current` down to `desired`,
/// highest number first (the order to stop them in). Empty when
/// `current` has no more than `desired` distinct instances.
pub fn instances_to_remove(current: &[u32], desired: u32) -> Vec<u32> {
    let distinct: BTreeSet<u32> = current.iter().copied().collect();
    let excess = distinct.len().saturating_sub(desired as usize);
    distinct.into_iter().rev().take(excess).collect()
}

/// The instance numbers to add to go from `current` up to `desired`: the
/// lowest numbers from 1 that are not in use, ascending.
pub fn instances_to_add(current: &[u32], desired: u32) -> Vec<u32> {
    let distinct: BTreeSet<u32> = current.iter().copied().filter(|&n| n > 0).collect();
    let missing = (desired as usize).saturating_sub(distinct.len());
    (1..=u32::MAX)
        .filter(|n| !distinct.contains(n))
        .take(missing)
        .collect()
}
