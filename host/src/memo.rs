//! Next-character distributions already computed, by context, for `sample`.
//!
//! A model's names revisit few contexts: every name starts from the boundary's, and 200,000 of
//! makemore's names (1.4 million characters) visit a few thousand contexts. A distribution is a
//! pure function of the model, its context, the temperature and the top-k, so after the first
//! names almost every character is a look-up, and the names are bit for bit those computed
//! afresh (`names_are_the_same_with_any_memory` in `shapes`).

use charmlp_core::{Temperature, Token};

/// Bytes a memo may take, rows and index: past this, new contexts are computed each time they
/// come. Makemore's 27 symbols and context 3 have at most 27³ contexts, 2.5 MB of them.
const MEMO_BYTES: usize = 16 << 20;

/// Contexts computed before a memo judges itself: if they were found fewer than twice as often
/// as they were computed, contexts rarely repeat here (a large alphabet and a long context, a
/// high temperature) and the memo, costing about what it saves, goes. makemore's names find
/// their contexts dozens of times each.
const TRIAL: u64 = 4096;

/// Distributions [V] by context [T], for one temperature and top-k.
pub struct Memo<const V: usize, const T: usize> {
    /// The temperature and top-k the rows were computed with.
    how: Option<(Temperature, Option<usize>)>,
    index: foldhash::HashMap<[Token; T], u32>,
    rows: Vec<[f32; V]>,
    max_rows: usize,
    /// Contexts computed before the memo judges itself.
    trial: u64,
    /// Look-ups that found their row, and rows computed.
    hits: u64,
    misses: u64,
    /// Given up (see [`TRIAL`]): nothing kept, nothing found.
    off: bool,
}

impl<const V: usize, const T: usize> Memo<V, T> {
    /// A memo of at most [`MEMO_BYTES`]: a row, its key and index entry, and the hash
    /// table's slack (up to half its slots empty) per context.
    pub fn new() -> Self {
        let per_row = size_of::<[f32; V]>() + 2 * (size_of::<[Token; T]>() + size_of::<u32>() + 1);
        Self::with_max_rows(MEMO_BYTES / per_row)
    }

    /// A memo of at most `max_rows` distributions (0: none kept).
    pub fn with_max_rows(max_rows: usize) -> Self {
        Self::with_limits(max_rows, TRIAL)
    }

    /// A memo of at most `max_rows` distributions that judges itself after `trial` contexts.
    pub fn with_limits(max_rows: usize, trial: u64) -> Self {
        Memo {
            how: None,
            index: Default::default(),
            rows: Vec::new(),
            max_rows: max_rows.min(u32::MAX as usize),
            trial,
            hits: 0,
            misses: 0,
            off: false,
        }
    }

    /// Forgets every row unless it was computed with this temperature and top-k.
    pub fn settle(&mut self, temperature: Temperature, top_k: Option<usize>) {
        if self.how != Some((temperature, top_k)) {
            *self = Memo {
                how: Some((temperature, top_k)),
                ..Self::with_limits(self.max_rows, self.trial)
            };
        }
    }

    pub fn contains(&self, context: &[Token; T]) -> bool {
        self.index.contains_key(context)
    }

    /// The distribution after `context`, if kept; counts the look-up.
    pub fn get(&mut self, context: &[Token; T]) -> Option<&[f32; V]> {
        let row = self.index.get(context)?;
        self.hits += 1;
        Some(&self.rows[*row as usize])
    }

    /// Gives up if the trial is over and the memo has not paid (see [`TRIAL`]). Called between
    /// rounds of drawing only: within one, a context found kept must stay kept.
    pub fn judge(&mut self) {
        if !self.off && self.misses >= self.trial && self.hits < 2 * self.misses {
            (self.index, self.rows, self.off) = (Default::default(), Vec::new(), true);
        }
    }

    /// Whether the memo has given up.
    #[cfg(test)]
    pub fn is_off(&self) -> bool {
        self.off
    }

    /// Keeps `probs` as the distribution just computed after `context`, if there is room and
    /// the memo has not given up.
    pub fn insert(&mut self, context: [Token; T], probs: &[f32; V]) {
        self.misses += 1;
        if !self.off && self.rows.len() < self.max_rows {
            if self.rows.len() == self.rows.capacity() {
                // Doubling, but never past the bound.
                let more = self.rows.len().max(64).min(self.max_rows - self.rows.len());
                self.rows.reserve_exact(more);
            }
            self.index.insert(context, self.rows.len() as u32);
            self.rows.push(*probs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(i: u8) -> [Token; 3] {
        [Token::wrapping(i, 27); 3]
    }

    /// A memo whose contexts were computed at least as often as they were found gives up at
    /// its next judgement, not before (a round may still be using its rows), and keeps
    /// nothing after; one that pays stays.
    #[test]
    fn a_memo_that_does_not_pay_gives_up_between_rounds() {
        let row = [0.5f32; 27];
        let mut memo = Memo::<27, 3>::with_limits(100, 4);
        memo.settle(Temperature::ONE, None);
        for i in 0..6 {
            memo.insert(context(i), &row);
        }
        assert!(
            memo.contains(&context(5)),
            "inserting never takes rows away"
        );
        assert!(memo.get(&context(1)).is_some());
        memo.judge();
        assert!(memo.is_off());
        assert!(!memo.contains(&context(1)) && memo.get(&context(1)).is_none());
        memo.insert(context(7), &row);
        assert!(!memo.contains(&context(7)));
        // Another temperature starts afresh, with the same limits.
        memo.settle(Temperature::GREEDY, None);
        assert!(!memo.is_off());
        for i in 0..5 {
            memo.insert(context(i), &row);
            for _ in 0..3 {
                assert!(memo.get(&context(i)).is_some());
            }
        }
        memo.judge();
        assert!(!memo.is_off() && memo.contains(&context(4)));
    }

    /// Rows past the bound are not kept; the ones before stay.
    #[test]
    fn a_full_memo_keeps_what_it_has() {
        let mut memo = Memo::<27, 3>::with_max_rows(3);
        memo.settle(Temperature::ONE, None);
        for i in 0..5 {
            memo.insert(context(i), &[f32::from(i); 27]);
        }
        assert_eq!(memo.get(&context(2)).map(|r| r[0]), Some(2.0));
        assert!(!memo.contains(&context(3)));
        assert!(memo.rows.capacity() <= 3);
    }
}
