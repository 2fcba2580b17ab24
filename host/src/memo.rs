//! Next-character distributions already computed, by context, for `sample`.
//!
//! A model's names revisit few contexts: every name starts from the boundary's, and 200,000 of
//! makemore's names (1.4 million characters) visit a few thousand contexts. A distribution is a
//! pure function of the model, its context, the temperature and the top-k, so after the first
//! names almost every character is a look-up, and the names are bit for bit those computed
//! afresh (`names_are_the_same_with_any_memory` in `shapes`).

use charmlp_core::{Temperature, Token};

/// Bytes of distributions kept: past this, new contexts are computed each time they come.
/// Makemore's 27 symbols and context 3 need at most 27³ rows, 2.1 MB.
const MEMO_BYTES: usize = 64 << 20;

/// Distributions [V] by context [T], for one temperature and top-k.
pub struct Memo<const V: usize, const T: usize> {
    /// The temperature and top-k the rows were computed with.
    how: Option<(Temperature, Option<usize>)>,
    index: foldhash::HashMap<[Token; T], u32>,
    rows: Vec<[f32; V]>,
    max_rows: usize,
}

impl<const V: usize, const T: usize> Memo<V, T> {
    /// A memo of at most [`MEMO_BYTES`] of rows.
    pub fn new() -> Self {
        Self::with_max_rows(MEMO_BYTES / size_of::<[f32; V]>())
    }

    /// A memo of at most `max_rows` distributions (0: none kept).
    pub fn with_max_rows(max_rows: usize) -> Self {
        Memo {
            how: None,
            index: Default::default(),
            rows: Vec::new(),
            max_rows: max_rows.min(u32::MAX as usize),
        }
    }

    /// Forgets every row unless it was computed with this temperature and top-k.
    pub fn settle(&mut self, temperature: Temperature, top_k: Option<usize>) {
        if self.how != Some((temperature, top_k)) {
            self.index.clear();
            self.rows.clear();
            self.how = Some((temperature, top_k));
        }
    }

    pub fn get(&self, context: &[Token; T]) -> Option<&[f32; V]> {
        self.index.get(context).map(|&i| &self.rows[i as usize])
    }

    /// Keeps `probs` as the distribution after `context`, if there is room.
    pub fn insert(&mut self, context: [Token; T], probs: &[f32; V]) {
        if self.rows.len() < self.max_rows {
            self.index.insert(context, self.rows.len() as u32);
            self.rows.push(*probs);
        }
    }
}
