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
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && dir.symlink_metadata().is_ok_and(|m| m.is_symlink()) =>
        {
            bail!(
                "--work-dir {}: a symbolic link to a directory that does not exist; create it, \
                 or give another path",
                shown(dir)
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(dir)
            .with_context(|| format!("--work-dir {}: cannot create it", shown(dir))),
        Err(e) => Err(e).with_context(|| format!("--work-dir {}", shown(dir))),
    }
}

/// The paths of a work directory's files.
pub fn paths(dir: &Path) -> [PathBuf; 3] {
    [checkpoint::LAST, checkpoint::BEST, checkpoint::CURVE].map(|name| dir.join(name))
}

/// The lock file of a work directory: held (`flock`) while a process uses the directory.
pub const LOCK: &str = "lock";

/// Locks `dir` for this process, or says which is using it. The lock goes with the returned
/// file (and with the process: a killed run leaves no stale lock).
pub fn lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK);
    if let Ok(m) = path.symlink_metadata()
        && !m.is_file()
    {
        bail!(
            "{}: not a regular file; a work directory's lock file must be one: remove it",
            shown(&path)
        );
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("{}: cannot open the work directory's lock", shown(&path)))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "--work-dir {}: in use by another charmlp (it holds {}); wait for it to end, or \
             give another --work-dir",
            shown(dir),
            shown(&path)
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("{}: cannot lock it", shown(&path)))
        }
    }
}

/// A work directory whose paths passed the output checks, locked for this run.
pub struct WorkDir {
    pub dir: PathBuf,
    pub last: Output,
    pub best: Output,
    pub curve: Output,
    pub _lock: File,
}

impl WorkDir {
    /// Whether the directory already holds a run: a checkpoint. A curve without one is what a
    /// run killed before its first checkpoint leaves; a fresh run starts it again.
    pub fn holds_a_run(&self) -> bool {
        self.last.path().symlink_metadata().is_ok()
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
    /// SHA-256 of the rows so far, kept as they are written.
    hash: sha2::Sha256,
}

/// SHA-256 (hex) of a hasher's bytes so far.
fn hex(hash: &sha2::Sha256) -> String {
    crate::sha256_hex(hash.clone())
}

impl Curve {
    /// A new, empty curve (replacing any left by a run killed before its first checkpoint: a
    /// fresh run's directory holds no checkpoint).
    pub fn create(path: &Path) -> Result<Curve> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .with_context(|| format!("{}: cannot create the curve", shown(path)))?;
        Ok(Curve {
            file: BufWriter::new(file),
            path: path.to_path_buf(),
            len: 0,
            hash: sha2::Sha256::default(),
        })
    }

    /// The curve of a resumed run: its first `len` bytes (the rows of the steps the checkpoint
    /// holds, whose SHA-256 must be `sha256`) are returned and kept, and anything after them is
    /// cut off.
    pub fn resume(path: &Path, len: u64, sha256: &str) -> Result<(Curve, String)> {
        let name = shown(path);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("{name}: cannot open the run's curve"))?;
        let found = file.metadata()?.len();
        let changed = || {
            anyhow!(
                "{name}: the curve was changed since the checkpoint (which counts {len} bytes \
                 of it, with their SHA-256); the run cannot be resumed exactly: put back a copy, \
                 or start again with another --work-dir"
            )
        };
        if !file.metadata()?.is_file() || found < len {
            return Err(changed());
        }
        let mut bytes = Vec::new();
        (&mut file)
            .take(len)
            .read_to_end(&mut bytes)
            .with_context(|| format!("{name}: cannot read the curve"))?;
        let mut hash = sha2::Sha256::default();
        sha2::Digest::update(&mut hash, &bytes);
        if hex(&hash) != sha256 {
            return Err(changed());
        }
        let rows = String::from_utf8(bytes).map_err(|_| changed())?;
        file.set_len(len)?;
        file.seek(SeekFrom::Start(len))?;
        Ok((
            Curve {
                file: BufWriter::new(file),
                path: path.to_path_buf(),
                len,
                hash,
            },
            rows,
        ))
    }

    pub fn write(&mut self, row: &str) -> Result<()> {
        self.file
            .write_all(row.as_bytes())
            .with_context(|| format!("{}: cannot write the curve", shown(&self.path)))?;
        self.len += row.len() as u64;
        sha2::Digest::update(&mut self.hash, row.as_bytes());
        Ok(())
    }

    /// Flushes the rows to disk and returns the curve's length and SHA-256, for a checkpoint
    /// to hold.
    pub fn sync(&mut self) -> Result<(u64, String)> {
        self.file
            .flush()
            .and_then(|()| self.file.get_ref().sync_data())
            .with_context(|| format!("{}: cannot write the curve", shown(&self.path)))?;
        Ok((self.len, hex(&self.hash)))
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
