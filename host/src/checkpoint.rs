//! Checkpoints of a training run in its `--work-dir`: everything a run needs to go on exactly as
//! if it had never stopped, in one safetensors file written atomically.
//!
//! - the tensor `model`: the model file's bytes as `train` writes them (parameters, running
//!   batch-norm statistics, alphabet, provenance), read back with every check of the loader;
//! - `optim.m` and `optim.v`: the optimizer's buffers (none for plain SGD);
//! - metadata: the format, the steps done, the recipe (JSON), the batch generator's state, the
//!   data's hash, the optimizer's update count, the length of `curve.csv` at this step, the
//!   best validation loss so far, and a SHA-256 of all of it.
//!
//! The curve is the run's own record of every loss: `curve.csv` is appended to as the run goes,
//! cut back to the checkpoint's length on resume, and replayed to rebuild what watches the run
//! (the divergence watch, the plot's summary), so the checkpoint need not hold them.

use crate::recipe::Recipe;
use anyhow::{Context, Result, anyhow, bail};
use rand_xoshiro::Xoshiro256PlusPlus;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;

/// The checkpoint a run resumes from.
pub const LAST: &str = "last.ckpt";
/// The checkpoint of the lowest validation loss so far.
pub const BEST: &str = "best.ckpt";
/// Every step's loss and the validation losses, as `--curve` writes them.
pub const CURVE: &str = "curve.csv";

/// The `format` of a checkpoint's metadata.
pub const FORMAT: &str = "charmlp-checkpoint";
const VERSION: &str = "1";

/// A run's state after `step` steps.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// Steps done: the next step to run.
    pub step: u64,
    pub recipe: Recipe,
    pub data_sha256: String,
    pub rng: Xoshiro256PlusPlus,
    /// Bytes of `curve.csv` that belong to the steps done, and their SHA-256.
    pub curve_len: u64,
    pub curve_sha256: String,
    /// The lowest validation loss so far, and after how many steps.
    pub best: Option<(u64, f64)>,
    /// The model file's bytes.
    pub model: Vec<u8>,
    pub optim_updates: u64,
    /// The optimizer's buffers by name ("m", "v").
    pub optim: Vec<(String, Vec<f32>)>,
}

impl Checkpoint {
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let floats = float_bytes(&self.optim);
        let mut tensors = vec![(
            "model".to_string(),
            TensorView::new(Dtype::U8, vec![self.model.len()], &self.model)?,
        )];
        for (name, bytes) in &floats {
            tensors.push((
                name.clone(),
                TensorView::new(Dtype::F32, vec![bytes.len() / 4], bytes)?,
            ));
        }
        let (best_step, best_val) = match self.best {
            Some((step, val)) => (step.to_string(), val.to_string()),
            None => (String::new(), String::new()),
        };
        let mut metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("format_version".to_string(), VERSION.to_string()),
            ("step".to_string(), self.step.to_string()),
            ("recipe".to_string(), serde_json::to_string(&self.recipe)?),
            ("data_sha256".to_string(), self.data_sha256.clone()),
            ("rng".to_string(), serde_json::to_string(&self.rng)?),
            ("curve_len".to_string(), self.curve_len.to_string()),
            ("curve_sha256".to_string(), self.curve_sha256.clone()),
            ("best_step".to_string(), best_step),
            ("best_val".to_string(), best_val),
            ("optim_updates".to_string(), self.optim_updates.to_string()),
        ]);
        let sum = digest(&metadata, &self.model, &floats);
        metadata.insert("sha256".to_string(), sum);
        Ok(safetensors::serialize(tensors, Some(metadata))?)
    }

    /// A checkpoint from a file's bytes; every field must be there and well formed.
    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint> {
        let file = SafeTensors::deserialize(bytes)
            .map_err(|e| anyhow!("not a checkpoint (not safetensors: {e})"))?;
        let (_, header) = SafeTensors::read_metadata(bytes)?;
        let empty = HashMap::new();
        let meta = header.metadata().as_ref().unwrap_or(&empty);
        let get = |key: &str| {
            meta.get(key).map(String::as_str).ok_or_else(|| {
                anyhow!("not a checkpoint of this version: no {key:?} in its metadata")
            })
        };
        if get("format")? != FORMAT || get("format_version")? != VERSION {
            bail!(
                "not a checkpoint of this version (format {:?} version {:?}; this build reads {FORMAT:?} version {VERSION})",
                get("format")?,
                get("format_version")?
            );
        }
        let number = |key: &str| -> Result<u64> {
            get(key)?
                .parse()
                .map_err(|_| anyhow!("its {key} is not a whole number"))
        };
        let best = match (get("best_step")?, get("best_val")?) {
            ("", "") => None,
            (step, val) => Some((
                step.parse().context("its best_step")?,
                val.parse().context("its best_val")?,
            )),
        };
        let model = file.tensor("model")?;
        if model.dtype() != Dtype::U8 {
            bail!("its model tensor is not bytes (U8)");
        }
        let mut optim = Vec::new();
        for name in ["m", "v"] {
            if let Ok(t) = file.tensor(&format!("optim.{name}")) {
                if t.dtype() != Dtype::F32 {
                    bail!("its optim.{name} tensor is not F32");
                }
                let xs = t
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                optim.push((name.to_string(), xs));
            }
        }
        if file.len() != 1 + optim.len() {
            bail!("it holds tensors other than model, optim.m and optim.v");
        }
        let floats = float_bytes(&optim);
        if digest(meta, model.data(), &floats) != get("sha256")? {
            bail!(
                "its SHA-256 does not match its contents: the file was changed or damaged since \
                 it was written; put back a copy, or start again with another --work-dir"
            );
        }
        Ok(Checkpoint {
            step: number("step")?,
            recipe: serde_json::from_str(get("recipe")?).context("its recipe")?,
            data_sha256: get("data_sha256")?.to_string(),
            rng: generator(get("rng")?)?,
            curve_len: number("curve_len")?,
            curve_sha256: get("curve_sha256")?.to_string(),
            best,
            model: model.data().to_vec(),
            optim_updates: number("optim_updates")?,
            optim,
        })
    }
}

/// The batch generator's state: xoshiro256++ must not be all zeros (it would draw 0 forever,
/// and a batch draw wait forever for another number).
fn generator(json: &str) -> Result<Xoshiro256PlusPlus> {
    let rng: Xoshiro256PlusPlus = serde_json::from_str(json).context("its generator state")?;
    let state = serde_json::to_value(&rng)?;
    let words = state["s"].as_array().map_or(0, |s| s.len());
    if state["s"]
        .as_array()
        .is_some_and(|s| s.iter().all(|x| x == 0))
        || words != 4
    {
        bail!("its generator state is all zeros, which xoshiro256++ never reaches");
    }
    Ok(rng)
}

/// The model file inside `bytes` if they are a checkpoint (`None` if they are not one: a model
/// file, say), so that `sample`, `eval` and `export` read `best.ckpt` as a model.
pub fn model_in(bytes: &[u8]) -> Option<Result<Vec<u8>>> {
    let (_, header) = SafeTensors::read_metadata(bytes).ok()?;
    let format = header.metadata().as_ref()?.get("format")?;
    (format == FORMAT).then(|| Checkpoint::from_bytes(bytes).map(|c| c.model))
}

/// The optimizer's buffers as their tensors: `optim.<name>` and little-endian bytes, as
/// written and as digested.
fn float_bytes(optim: &[(String, Vec<f32>)]) -> Vec<(String, Vec<u8>)> {
    optim
        .iter()
        .map(|(name, xs)| {
            let bytes = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
            (format!("optim.{name}"), bytes)
        })
        .collect()
}

/// SHA-256 over a checkpoint's metadata (every key but `sha256`, in sorted order, each as
/// `key=value\n`), its model's bytes and its optimizer buffers (name, then bytes): a flipped
/// bit anywhere, the optimizer's state included (which no other check covers), is caught.
fn digest(meta: &HashMap<String, String>, model: &[u8], floats: &[(String, Vec<u8>)]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut keys: Vec<&String> = meta.keys().filter(|k| *k != "sha256").collect();
    keys.sort();
    for k in keys {
        h.update(format!("{k}={}\n", meta[k]).as_bytes());
    }
    h.update(model);
    for (name, bytes) in floats {
        h.update(name.as_bytes());
        h.update(bytes);
    }
    crate::sha256_hex(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An all-zero xoshiro state (which no seeding reaches, and which draws 0 forever) is
    /// refused; a real one reads back as it was written.
    #[test]
    fn a_generator_of_zeros_is_refused() {
        assert!(generator(r#"{"s":[0,0,0,0]}"#).is_err());
        let rng = crate::stream(7, crate::Stream::Batches);
        let json = serde_json::to_string(&rng).unwrap();
        let back = generator(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }
}
