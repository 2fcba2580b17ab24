//! A run's `--work-dir`: its checkpoints (`last.ckpt`, `best.ckpt`) and its curve
//! (`curve.csv`), and how a run starts there or resumes.
//!
//! - A directory that does not exist is created (its parent must exist).
//! - A fresh run refuses a directory that already holds a run, so that nothing of it is
//!   overwritten: `--resume` continues it, another `--work-dir` starts apart.
//! - Checkpoints are replaced atomically ([`crate::outputs`]), so a kill at any moment leaves
//!   the previous one whole. The curve is appended to and synced before each checkpoint that
//!   counts its bytes; rows written after the last checkpoint are cut off on resume.

use crate::checkpoint::{self, Checkpoint};
use crate::outputs::Output;
use crate::shown;
use anyhow::{Context, Result, anyhow, bail};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The header row of a curve.
pub const CURVE_HEADER: &str = "step,loss,val_loss\n";

/// The directory, created if missing unless the run `resumes` (there is nothing to resume in
/// a directory that does not exist); an existing path must be a directory.
pub fn prepare(dir: &Path, resumes: bool) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!(
            "--work-dir {}: not a directory; give a directory (it is created if missing)",
            shown(dir)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && resumes => bail!(
            "--work-dir {}: no such directory, so no run to resume; leave out --resume to \
             start one there",
            shown(dir)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(dir)
            .with_context(|| format!("--work-dir {}: cannot create it", shown(dir))),
        Err(e) => Err(e).with_context(|| format!("--work-dir {}", shown(dir))),
    }
}

/// The paths of a work directory's files.
pub fn paths(dir: &Path) -> [PathBuf; 3] {
    [checkpoint::LAST, checkpoint::BEST, checkpoint::CURVE].map(|name| dir.join(name))
}

/// A work directory whose paths passed the output checks.
pub struct WorkDir {
    pub dir: PathBuf,
    pub last: Output,
    pub best: Output,
    pub curve: Output,
}

impl WorkDir {
    /// Whether the directory already holds a run (a checkpoint or a curve).
    pub fn holds_a_run(&self) -> bool {
        [self.last.path(), self.best.path(), self.curve.path()]
            .iter()
            .any(|p| p.symlink_metadata().is_ok())
    }

    /// The checkpoint to resume from.
    pub fn read_last(&self) -> Result<Checkpoint> {
        let path = self.last.path();
        if path.symlink_metadata().is_err() {
            bail!(
                "{}: no checkpoint to resume from; leave out --resume to start a run in {}",
                shown(path),
                shown(&self.dir)
            );
        }
        let max = 4 * crate::shapes::max_model_bytes() as u64;
        let (name, bytes) = crate::data::read_at_most(path, max, "checkpoint")?;
        if bytes.len() as u64 > max {
            bail!("{name}: longer than any checkpoint this build writes ({max} bytes at most)");
        }
        Checkpoint::from_bytes(&bytes).map_err(|e| anyhow!("{name}: {e:#}"))
    }

    /// Writes `ckpt` as the last checkpoint, and as the best one too if `best`.
    pub fn write(&self, ckpt: &Checkpoint, best: bool) -> Result<()> {
        let bytes = ckpt.to_bytes()?;
        if best {
            self.best.write(&bytes)?;
        }
        self.last.write(&bytes)
    }
}

/// The curve of a run with a work directory: appended to as the run goes.
pub struct Curve {
    file: BufWriter<File>,
    path: PathBuf,
    len: u64,
}

impl Curve {
    /// A new, empty curve (replacing none: a fresh run's directory holds no run).
    pub fn create(path: &Path) -> Result<Curve> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .with_context(|| format!("{}: cannot create the curve", shown(path)))?;
        Ok(Curve {
            file: BufWriter::new(file),
            path: path.to_path_buf(),
            len: 0,
        })
    }

    /// The curve of a resumed run: its first `len` bytes (the rows of the steps the checkpoint
    /// holds) are returned and kept, and anything after them is cut off.
    pub fn resume(path: &Path, len: u64) -> Result<(Curve, String)> {
        let name = shown(path);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("{name}: cannot open the run's curve"))?;
        let found = file.metadata()?.len();
        if !file.metadata()?.is_file() || found < len {
            bail!(
                "{name}: {found} bytes, but the checkpoint counts {len}: the curve was changed \
                 since; the run cannot be resumed exactly"
            );
        }
        let mut rows = String::new();
        (&mut file)
            .take(len)
            .read_to_string(&mut rows)
            .with_context(|| format!("{name}: cannot read the curve"))?;
        file.set_len(len)?;
        file.seek(SeekFrom::Start(len))?;
        Ok((
            Curve {
                file: BufWriter::new(file),
                path: path.to_path_buf(),
                len,
            },
            rows,
        ))
    }

    pub fn write(&mut self, row: &str) -> Result<()> {
        self.file
            .write_all(row.as_bytes())
            .with_context(|| format!("{}: cannot write the curve", shown(&self.path)))?;
        self.len += row.len() as u64;
        Ok(())
    }

    /// Flushes the rows to disk and returns the curve's length, for a checkpoint to count.
    pub fn sync(&mut self) -> Result<u64> {
        self.file
            .flush()
            .and_then(|()| self.file.get_ref().sync_data())
            .with_context(|| format!("{}: cannot write the curve", shown(&self.path)))?;
        Ok(self.len)
    }
}

/// One row of a curve: the step, its loss, and its validation loss if one was measured.
pub fn parse_row(row: &str) -> Option<(u64, f32, Option<f64>)> {
    let mut fields = row.split(',');
    let step = fields.next()?.parse().ok()?;
    let loss = fields.next()?.parse().ok()?;
    let val = match fields.next()? {
        "" => None,
        v => Some(v.parse().ok()?),
    };
    fields.next().is_none().then_some((step, loss, val))
}
