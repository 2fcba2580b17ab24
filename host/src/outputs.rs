//! Output files: every path checked before any work starts, and every file replaced
//! atomically, last of all, with the mode and owner of the file it replaces.
//!
//! The rules, each tested in `host/tests/hostile.rs`:
//! - An output's directory must exist and take new files; the output itself must not be a
//!   directory, a device, a FIFO or a socket (it is never replaced, even as root).
//! - A symbolic link is written through: its target is replaced, atomically, and the link
//!   stays a link (as `sed -i --follow-symlinks`, editors and most tools do).
//! - No output may be the same file as an input or another output. Files are compared by
//!   identity (device and inode), and paths not yet created by their canonical directory, so
//!   hard links, symlinks and `./x` against `x` are all caught.
//! - A file is written to a temporary file beside it, flushed to disk, then renamed over it: a
//!   reader sees the old file or the new one, never a mix. The new file keeps the replaced
//!   file's permissions (and owner, where allowed); a new file gets 0666 less the umask.
//! - Temporary files are named `.NAME.PID.XXXXXX.charmlp-tmp`. One left by a process that no
//!   longer runs (killed by SIGKILL or a power cut) is removed by the next write of the same
//!   name once nothing has written to it for an hour; until then it is a hidden file that
//!   nothing reads.
//! - Immutable and append-only files, and another user's file in a sticky directory, cannot be
//!   renamed over: they are refused before the work.

use crate::shown;
use anyhow::{Context, Result, anyhow, bail};
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{BufWriter, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

const TMP_SUFFIX: &str = ".charmlp-tmp";

/// An output path that passed the checks.
#[derive(Debug)]
pub struct Output {
    /// The path as the user gave it, for messages.
    given: PathBuf,
    /// The file that will be replaced: symbolic links followed.
    resolved: PathBuf,
    /// The replaced file's metadata, if it exists.
    existing: Option<Metadata>,
}

/// The file `given` names once every symbolic link on the way is followed, the link targets
/// need not exist yet (writing through a dangling link creates its target), but their
/// directories must.
fn resolve(given: &Path) -> Result<PathBuf> {
    let mut path = given.to_path_buf();
    // Linux gives up after 40 links too (ELOOP).
    for _ in 0..40 {
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&path)?;
                if target.as_os_str().as_encoded_bytes().ends_with(b"/") {
                    bail!(
                        "a symbolic link to {}, a directory's path, not a file's",
                        shown(&target)
                    );
                }
                path = match path.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => {
                let name = path
                    .file_name()
                    .ok_or_else(|| anyhow!("a symbolic link to a directory, not a file"))?;
                let parent = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                let dir = fs::canonicalize(parent).with_context(|| {
                    format!(
                        "directory {} does not exist or cannot be entered; create it first \
                         (mkdir -p)",
                        shown(parent)
                    )
                })?;
                return Ok(dir.join(name));
            }
        }
    }
    bail!("too many levels of symbolic links")
}

/// What kind of file a metadata describes, for messages.
fn kind(m: &Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = m.file_type();
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if m.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

#[cfg(unix)]
fn identity(m: &Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity(_: &Metadata) -> Option<(u64, u64)> {
    None
}

/// The identity of the regular file a standard stream reads or writes, if it is one.
fn stdio_identity(fd: std::os::fd::BorrowedFd<'_>) -> Option<(u64, u64)> {
    let file = File::from(fd.try_clone_to_owned().ok()?);
    let m = file.metadata().ok()?;
    if m.is_file() { identity(&m) } else { None }
}

impl Output {
    /// Checks one output path (see the module rules); `flag` names it in messages.
    fn check(flag: &str, given: &Path) -> Result<Output> {
        let shown = shown(given);
        let names_dir = given.as_os_str().as_encoded_bytes().ends_with(b"/");
        if names_dir || given.file_name().is_none() {
            bail!("{flag} {shown}: names a directory, not a file");
        }
        if given.as_os_str() == "-" {
            bail!(
                "{flag} -: charmlp writes files, not standard output; give a file name \
                 (to name a file '-', write ./-)"
            );
        }
        let not_regular = |m: &Metadata| {
            anyhow!(
                "{flag} {shown}: is {}; charmlp writes only regular files and will not \
                 replace it",
                kind(m)
            )
        };
        // The kernel's view first: /dev/stdout and /proc/self/fd/N are links that only it can
        // follow to a pipe or a terminal.
        if let Ok(m) = fs::metadata(given)
            && !m.is_file()
        {
            return Err(not_regular(&m));
        }
        let resolved = resolve(given).map_err(|e| anyhow!("{flag} {shown}: {e}"))?;
        let existing = match fs::metadata(&resolved) {
            Ok(m) if m.is_file() => Some(m),
            Ok(m) => return Err(not_regular(&m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("{flag} {shown}: cannot inspect")),
        };
        let out = Output {
            given: given.to_path_buf(),
            resolved,
            existing,
        };
        // Proves the directory takes new files (permissions, read-only mounts) before the work.
        let probe = out
            .temp()
            .with_context(|| format!("{flag} {shown}: cannot create files beside it"))?;
        if let Some(why) = out.unreplaceable(&probe) {
            bail!("{flag} {shown}: cannot be replaced: {why}; give another path");
        }
        Ok(out)
    }

    /// Why the existing file could not be renamed over though its directory takes new files,
    /// if it could not: an immutable or append-only file (`chattr +i`, `+a`, read with the
    /// FS_IOC_GETFLAGS ioctl on a read-only, non-blocking open, which changes nothing), or a
    /// sticky directory (`/tmp`) where only the file's or the directory's owner may replace
    /// it. `probe` is a file this process just created there: its owner is this process's
    /// user.
    fn unreplaceable(&self, probe: &tempfile::NamedTempFile) -> Option<String> {
        let existing = self.existing.as_ref()?;
        #[cfg(target_os = "linux")]
        {
            use rustix::fs::IFlags;
            use std::os::unix::fs::OpenOptionsExt;
            let flags = fs::OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                .open(&self.resolved)
                .ok()
                .and_then(|f| rustix::fs::ioctl_getflags(&f).ok());
            if let Some(flags) = flags {
                if flags.contains(IFlags::IMMUTABLE) {
                    return Some("it is immutable (chattr +i)".into());
                }
                if flags.contains(IFlags::APPEND) {
                    return Some("it is append-only (chattr +a)".into());
                }
            }
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let me = probe.as_file().metadata().ok()?.uid();
            let dir = fs::metadata(self.dir()).ok()?;
            let sticky = dir.permissions().mode() & 0o1000 != 0;
            if sticky && me != 0 && existing.uid() != me && dir.uid() != me {
                return Some(
                    "its directory is sticky (like /tmp), where only the file's owner may \
                     replace it"
                        .into(),
                );
            }
        }
        let _ = (existing, probe);
        None
    }

    /// The path as given, for messages.
    pub fn path(&self) -> &Path {
        &self.given
    }

    fn dir(&self) -> &Path {
        self.resolved.parent().unwrap_or(Path::new("."))
    }

    /// `.NAME.`, the start of this output's temporary files' names. A long name is cut so
    /// that the whole temporary name (PID, random part and suffix add up to 40 bytes at most)
    /// stays within the 255 bytes file systems allow, so any name that can be written can be
    /// written atomically.
    fn temp_stem(&self) -> OsString {
        let name = self.resolved.file_name().unwrap_or_default();
        let mut stem = OsString::from(".");
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let bytes = name.as_bytes();
            let mut cut = bytes.len().min(200);
            // Within a UTF-8 name, cut between characters, not inside one.
            while cut > 0 && cut < bytes.len() && (bytes[cut] & 0xc0) == 0x80 {
                cut -= 1;
            }
            stem.push(std::ffi::OsStr::from_bytes(&bytes[..cut]));
        }
        #[cfg(not(unix))]
        stem.push(name);
        stem.push(".");
        stem
    }

    /// A new temporary file beside the target, with the mode the target will keep.
    fn temp(&self) -> std::io::Result<tempfile::NamedTempFile> {
        let mut prefix = self.temp_stem();
        prefix.push(format!("{}.", std::process::id()));
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(TMP_SUFFIX);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // A replaced file keeps its mode; a new one gets 0666 less the umask, as the
            // kernel applies it at creation (tempfile's default would be 0600).
            let mode = self
                .existing
                .as_ref()
                .map_or(0o666, |m| m.permissions().mode() & 0o7777);
            builder.permissions(fs::Permissions::from_mode(mode));
        }
        let tmp = builder.tempfile_in(self.dir())?;
        #[cfg(unix)]
        if let Some(m) = &self.existing {
            use std::os::unix::fs::MetadataExt;
            // Only root may give a file away; for anyone else this fails and the new file is
            // theirs, as any file they write is.
            let _ = std::os::unix::fs::fchown(tmp.as_file(), Some(m.uid()), Some(m.gid()));
            // The umask applied at creation: set the mode again, exactly.
            use std::os::unix::fs::PermissionsExt;
            let mode = m.permissions().mode() & 0o7777;
            tmp.as_file()
                .set_permissions(fs::Permissions::from_mode(mode))?;
        }
        Ok(tmp)
    }

    /// Removes temporary files of this name left by processes that no longer run: names of
    /// exactly `.NAME.PID.XXXXXX.charmlp-tmp` (so another output's `.NAME.2.csv…` never
    /// matches), whose process is not in /proc and which nobody has written to for an hour
    /// (a process in another PID namespace, hidden from /proc, that still writes its file is
    /// left alone).
    fn remove_stale_temps(&self) {
        const QUIET_FOR: std::time::Duration = std::time::Duration::from_secs(3600);
        let stem = self.temp_stem();
        let stem = stem.as_encoded_bytes();
        let Ok(entries) = fs::read_dir(self.dir()) else {
            return;
        };
        if !Path::new("/proc/self").exists() {
            return;
        }
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(middle) = name
                .as_encoded_bytes()
                .strip_prefix(stem)
                .and_then(|n| n.strip_suffix(TMP_SUFFIX.as_bytes()))
            else {
                continue;
            };
            let Some((pid, random)) = std::str::from_utf8(middle)
                .ok()
                .and_then(|m| m.split_once('.'))
            else {
                continue;
            };
            let ours = random.len() == 6 && random.bytes().all(|b| b.is_ascii_alphanumeric());
            let Ok(pid) = pid.parse::<u32>() else {
                continue;
            };
            let quiet = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= QUIET_FOR);
            if ours
                && quiet
                && pid != std::process::id()
                && !Path::new("/proc").join(pid.to_string()).exists()
            {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Starts writing the file: a temporary file, committed by [`Pending::commit`].
    pub fn begin(&self) -> Result<Pending<'_>> {
        self.remove_stale_temps();
        let tmp = self.temp().with_context(|| {
            format!(
                "{}: cannot create a temporary file beside it",
                shown(&self.given)
            )
        })?;
        Ok(Pending {
            output: self,
            tmp: BufWriter::with_capacity(64 * 1024, tmp),
        })
    }

    /// Writes `contents` as the whole file, atomically.
    pub fn write(&self, contents: &[u8]) -> Result<()> {
        let mut pending = self.begin()?;
        pending.write_all(contents)?;
        pending.commit()
    }
}

/// A file being written: bytes go to its temporary file until [`Pending::commit`]. Dropped
/// without a commit, the temporary file is removed and the target is untouched.
pub struct Pending<'a> {
    output: &'a Output,
    tmp: BufWriter<tempfile::NamedTempFile>,
}

impl Pending<'_> {
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.tmp
            .write_all(bytes)
            .with_context(|| format!("{}: cannot write", shown(&self.output.given)))
    }

    /// Flushes to disk and renames over the target.
    pub fn commit(self) -> Result<()> {
        let fail = |what: &str| format!("{}: cannot {what}", shown(&self.output.given));
        let tmp = self
            .tmp
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| fail("write"))?;
        tmp.as_file()
            .sync_all()
            .with_context(|| fail("flush to disk"))?;
        // The target may have become something else since the checks (a race, or a hostile
        // neighbour): never rename over a directory or a device.
        if let Ok(m) = fs::metadata(&self.output.resolved)
            && !m.is_file()
        {
            bail!(
                "{}: is now {}; not replaced",
                shown(&self.output.given),
                kind(&m)
            );
        }
        tmp.persist(&self.output.resolved)
            .map_err(|e| e.error)
            .with_context(|| fail("replace"))?;
        // The rename itself reaches the disk when the directory does.
        if let Ok(dir) = File::open(self.output.dir()) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

/// A path already checked: its flag, the path as given, the identity of the file it names if
/// that exists, and its resolved path.
type Seen<'a> = (&'a str, &'a Path, Option<(u64, u64)>, Option<PathBuf>);

/// Checks a command's outputs against the rules and against its inputs: every output on its
/// own, then no two of all the paths naming the same file. `inputs` and `outputs` pair each
/// path with the flag that gave it.
pub fn check(inputs: &[(&str, &Path)], outputs: &[(&str, &Path)]) -> Result<Vec<Output>> {
    let checked = outputs
        .iter()
        .map(|(flag, path)| Output::check(flag, path))
        .collect::<Result<Vec<_>>>()?;
    let mut seen: Vec<Seen> = Vec::new();
    // Standard output and error are outputs too: a model written over them loses the lines.
    for (name, id) in [
        ("standard output", stdio_identity(std::io::stdout().as_fd())),
        ("standard error", stdio_identity(std::io::stderr().as_fd())),
    ] {
        if id.is_some() {
            seen.push((name, Path::new(""), id, None));
        }
    }
    for (flag, path) in inputs {
        // `-` is standard input: whatever file it reads from, not a file named "-".
        let (id, resolved) = if path.as_os_str() == "-" {
            (stdio_identity(std::io::stdin().as_fd()), None)
        } else {
            let id = fs::metadata(path).ok().as_ref().and_then(identity);
            (id, fs::canonicalize(path).ok())
        };
        seen.push((flag, path, id, resolved));
    }
    for ((flag, path), out) in outputs.iter().zip(&checked) {
        let id = out.existing.as_ref().and_then(identity);
        for (other_flag, other, other_id, other_resolved) in &seen {
            let same = match (id, other_id) {
                (Some(a), Some(b)) => a == *b,
                _ => other_resolved.as_ref() == Some(&out.resolved),
            };
            if same && other.as_os_str().is_empty() {
                bail!(
                    "{flag} {} is this command's {other_flag}; writing the file would lose \
                     what is printed: give {flag} another path",
                    shown(path)
                );
            }
            if same {
                bail!(
                    "{flag} {} and {other_flag} {} are the same file; writing one would \
                     destroy the other: give {flag} another path",
                    shown(path),
                    shown(other)
                );
            }
        }
        seen.push((flag, path, id, Some(out.resolved.clone())));
    }
    Ok(checked)
}
