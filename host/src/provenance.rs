//! Where a model came from, as `train` records it in the model file's metadata: the seeds, the
//! data's hash and the rules the words were read with, so that `eval` finds the model's own
//! split by itself and names a different words file as such.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The provenance keys of a model file's metadata; each absent from files not written by
/// `train` (PyTorch's, earlier versions').
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Provenance {
    /// `--seed` of the run.
    pub seed: Option<u64>,
    /// `--split-seed`; files of earlier versions split with `seed`.
    pub split_seed: Option<u64>,
    /// SHA-256 of the words as trained on (see [`crate::train::data_hash`]).
    pub data_sha256: Option<String>,
    /// Whether the words were lowercased (`--lowercase`).
    pub lowercase: bool,
    /// Whether words outside a given alphabet were left out (`--skip-bad-words`).
    pub skip_bad_words: bool,
}

impl Provenance {
    /// The seed the model's split was made with: `split_seed`, or for files of earlier
    /// versions, whose one seed also split, `seed`.
    pub fn split_seed(&self) -> Option<u64> {
        self.split_seed.or(self.seed)
    }
}

#[derive(Deserialize)]
struct Header {
    #[serde(rename = "__metadata__", default)]
    metadata: BTreeMap<String, String>,
}

/// The provenance in a model file's bytes (already accepted by the loader); nothing for a
/// `.cmlp` file or a header without it.
pub fn read(bytes: &[u8]) -> Provenance {
    let header = bytes
        .get(..8)
        .and_then(|n| usize::try_from(u64::from_le_bytes(n.try_into().ok()?)).ok())
        .and_then(|n| bytes.get(8..8usize.checked_add(n)?));
    let Some(Ok(Header { metadata })) = header.map(serde_json::from_slice::<Header>) else {
        return Provenance::default();
    };
    let number = |key: &str| metadata.get(key).and_then(|v| v.parse().ok());
    let flag = |key: &str| metadata.get(key).is_some_and(|v| v == "true");
    Provenance {
        seed: number("seed"),
        split_seed: number("split_seed"),
        data_sha256: metadata.get("data_sha256").cloned(),
        lowercase: flag("lowercase"),
        skip_bad_words: flag("skip_bad_words"),
    }
}
