//! A model's own data and split, found from what its file records (see
//! [`crate::provenance`]): the words file given, or the built-in names if the model was
//! trained on them; the split seed and reading rules the model records unless flags say
//! otherwise. A words file or a split other than the model's is named in a note, since its val
//! and test words may be words the model was trained on.

use crate::data::{self, WordSplits, read_words, split_words};
use crate::provenance::Provenance;
use crate::shapes::Loaded;
use crate::{cli, train, words};
use anyhow::{Result, anyhow};
use std::path::Path;

/// How to read the data: the flags of `eval` and `sample`.
pub struct Reading<'a> {
    /// `--data`; `None` for the built-in names, if they are the model's.
    pub data: Option<&'a Path>,
    /// `--lowercase` (on anyway for a model trained with it).
    pub lowercase: bool,
    /// `--skip-bad-words` (on anyway for a model trained with it).
    pub skip_bad_words: bool,
    /// `--split-seed`; the model's by default.
    pub split_seed: Option<u64>,
}

/// The data and split found.
pub struct ModelData {
    pub splits: WordSplits,
    /// Words left out for characters outside the model's alphabet.
    pub skipped: usize,
    /// Where the data or split is not the model's own, why that matters.
    pub notes: Vec<String>,
}

pub enum Found {
    Data(ModelData),
    /// No `--data`, and the built-in names are not the model's: why.
    NotAtHand(&'static str),
}

pub fn find(model: &dyn Loaded, provenance: &Provenance, how: &Reading<'_>) -> Result<Found> {
    // The model's alphabet, fixed: a character it does not know is an error (or, with
    // --skip-bad-words, its word is left out and counted). The model's own reading rules
    // apply by themselves, so that its data reads as the words it was trained on.
    let rules = words::Rules {
        lowercase: how.lowercase || provenance.lowercase,
        alphabet: Some(words::Alphabet {
            chars: model.chars().to_vec(),
            source: words::MODELS,
        }),
        skip_bad_words: how.skip_bad_words || provenance.skip_bad_words,
    };
    const OTHER: &str = "trained on other words than the built-in names";
    let words = match how.data {
        Some(path) => read_words(Some(path), &rules)?,
        None if provenance.data_sha256.is_none() => {
            return Ok(Found::NotAtHand("the model records no training data"));
        }
        None => match read_words(None, &rules) {
            Ok(words) => words,
            Err(_) => return Ok(Found::NotAtHand(OTHER)),
        },
    };
    let source = how
        .data
        .map_or(data::BUILTIN_NAME.to_string(), data::input_name);
    let hash = train::data_hash(&words.words, model.chars());
    let own_data = provenance.data_sha256.as_deref() == Some(hash.as_str());
    if how.data.is_none() && !own_data {
        return Ok(Found::NotAtHand(OTHER));
    }
    let model_split = provenance.split_seed();
    let split_seed = how.split_seed.or(model_split).unwrap_or(cli::DEFAULT_SEED);
    let mut notes = Vec::new();
    if provenance.data_sha256.is_some() && !own_data {
        notes.push(format!(
            "{source} is not the data this model was trained on (its words' SHA-256 is not the \
             model's data_sha256): this split is not the model's, and its val and test words \
             may be training words"
        ));
    } else if let (Some(given), Some(own)) = (how.split_seed, model_split)
        && given != own
    {
        notes.push(format!(
            "--split-seed {given} is not the model's ({own}): this split's val and test words \
             include words the model was trained on; leave --split-seed out to use its own"
        ));
    }
    let skipped = words.skipped;
    let splits = split_words(words.words, split_seed).map_err(|e| anyhow!("{source}: {e}"))?;
    Ok(Found::Data(ModelData {
        splits,
        skipped,
        notes,
    }))
}
