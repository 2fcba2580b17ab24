//! The README's Hardening promises, one test a class of hostile use: finite divergence,
//! colliding paths, outputs checked before the work, devices, FIFOs and symlinks as paths,
//! closed and full stdout, endless inputs, numeric extremes, crafted model files and
//! messages. Each failed on the code before these promises were made.

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin_cmd;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

fn charmlp() -> Command {
    cargo_bin_cmd!("charmlp")
}

fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_charmlp"))
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// 300 made-up names.
    fn words(&self) -> PathBuf {
        let names: Vec<String> = (0..300)
            .map(|i| {
                format!(
                    "{}{}a{}",
                    ["ma", "jo", "li"][i % 3],
                    "r".repeat(i % 4),
                    "n".repeat(i % 2)
                )
            })
            .collect();
        self.write("words.txt", names.join("\n"))
    }

    /// A model trained for a few steps.
    fn model(&self, name: &str) -> PathBuf {
        let out = self.path(name);
        charmlp()
            .args(["train", "--steps", "200", "--data"])
            .arg(self.words())
            .arg("--out")
            .arg(&out)
            .assert()
            .success();
        out
    }

    /// `train` for one step on `data`, into `never.cmlp` (the failing cases must not create it).
    fn one_step(&self, data: &Path) -> Command {
        let mut c = charmlp();
        c.args(["train", "--steps", "1", "--data"])
            .arg(data)
            .arg("--out")
            .arg(self.path("never.cmlp"));
        c
    }

    /// Names in the directory, temporary files included.
    fn listing(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.0.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// Runs `cmd`, expects exit status 1 and an `error:` message holding every needle, and no panic.
/// Some cases ask for a billion steps, which only a check before the work can fail in time; a
/// timeout turns a regression there into a failure instead of a hang.
fn fails(cmd: &mut Command, needles: &[&str]) -> String {
    cmd.timeout(std::time::Duration::from_secs(120));
    let out = cmd.assert().code(1).get_output().clone();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{n:?} not in: {stderr}");
    }
    stderr
}

/// Runs a command that must succeed; its standard output.
fn succeeds(cmd: &mut Command) -> String {
    String::from_utf8(cmd.assert().success().get_output().stdout.clone()).unwrap()
}

fn is_root() -> bool {
    // The owner of a file this process creates is this process's user.
    use std::os::unix::fs::MetadataExt;
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().metadata().unwrap().uid() == 0
}

#[test]
fn finite_divergence_writes_nothing_and_names_the_step_and_flag() {
    let d = Dir::new();
    let model = d.model("m.cmlp");
    let before = std::fs::read(&model).unwrap();
    let data = d.words();
    // lr 1000 keeps every number finite (loss ≈ 30); lr 1e6 used to overflow calibration.
    for (flags, flag) in [
        (&["--lr", "1000"][..], "--lr 1000 applies"),
        (&["--lr", "1e6"][..], "--lr 1e6 applies"),
        (
            &["--lr-decay-step", "300", "--lr-final", "5000"][..],
            "--lr-final 5000 applies",
        ),
    ] {
        let e = fails(
            charmlp()
                .args(["train", "--steps", "2000", "--data"])
                .arg(&data)
                .arg("--out")
                .arg(&model)
                .args(flags),
            &["diverged at step", flag, "No model was written"],
        );
        assert!(
            !e.contains("00000000"),
            "a number printed digit by digit: {e}"
        );
        assert_eq!(
            std::fs::read(&model).unwrap(),
            before,
            "{flags:?} replaced the model"
        );
    }
    assert_eq!(d.listing(), ["m.cmlp", "words.txt"]);
}

#[test]
fn an_output_that_is_an_input_or_another_output_is_refused_before_any_work() {
    let d = Dir::new();
    let data = d.words();
    let words = std::fs::read(&data).unwrap();
    let model = d.model("m.cmlp");
    let model_bytes = std::fs::read(&model).unwrap();
    std::os::unix::fs::symlink(&data, d.path("link.txt")).unwrap();
    std::fs::hard_link(&data, d.path("hard.txt")).unwrap();
    // A billion steps: only a check before the work can fail in time.
    let train = |data: &Path, extra: &[&str]| {
        let mut c = charmlp();
        c.args(["train", "--steps", "1000000000", "--data"])
            .arg(data)
            .args(extra)
            .current_dir(d.0.path());
        c
    };
    let same = "are the same file";
    fails(
        &mut train(&data, &["--out", "words.txt"]),
        &[same, "--out", "--data"],
    );
    fails(&mut train(&data, &["--out", "./words.txt"]), &[same]);
    fails(
        &mut train(&d.path("link.txt"), &["--out", "words.txt"]),
        &[same],
    );
    fails(
        &mut train(&d.path("hard.txt"), &["--out", "words.txt"]),
        &[same],
    );
    fails(
        &mut train(&data, &["--out", "m.cmlp", "--curve", "m.cmlp"]),
        &[same, "--curve"],
    );
    fails(
        &mut train(&data, &["--out", "m.cmlp", "--plot", "./m.cmlp"]),
        &[same, "--plot"],
    );
    fails(
        &mut train(&data, &["--out", "x.cmlp", "--curve", "c", "--plot", "c"]),
        &[same],
    );
    fails(
        charmlp()
            .args(["export", "--lang", "c", "--model"])
            .arg(&model)
            .arg("--out")
            .arg(d.path("./m.cmlp")),
        &[same, "--model"],
    );
    assert_eq!(std::fs::read(&data).unwrap(), words);
    assert_eq!(std::fs::read(&model).unwrap(), model_bytes);
}

#[test]
fn every_output_is_checked_before_the_work_starts() {
    let d = Dir::new();
    let data = d.words();
    let model = d.model("m.cmlp");
    let before = std::fs::read(&model).unwrap();
    std::fs::create_dir(d.path("adir")).unwrap();
    for (flag, path, needle) in [
        ("--out", "no/such/m.cmlp", "does not exist"),
        ("--plot", "no/such/p.svg", "does not exist"),
        ("--curve", "adir", "is a directory"),
        ("--out", "adir/", "names a directory"),
    ] {
        let mut c = charmlp();
        c.args(["train", "--steps", "1000000000", "--data"])
            .arg(&data)
            .current_dir(d.0.path());
        if flag != "--out" {
            c.arg("--out").arg(&model);
        }
        c.arg(flag).arg(path);
        fails(&mut c, &[flag, needle]);
    }
    assert_eq!(std::fs::read(&model).unwrap(), before);
}

#[test]
fn devices_fifos_and_directories_are_never_replaced() {
    let d = Dir::new();
    let data = d.words();
    let fifo = d.path("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    let mut targets = vec![(fifo.clone(), "FIFO")];
    if !made.is_ok_and(|s| s.success()) {
        println!("skipped the FIFO: mkfifo is not available");
        targets.clear();
    }
    if is_root() {
        // A device node of our own (a second /dev/null): safe to test, unlike /dev/null.
        let null = d.path("null");
        let ok = std::process::Command::new("mknod")
            .arg(&null)
            .args(["c", "1", "3"])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            targets.push((null, "character device"));
        } else {
            println!("skipped the device: mknod failed");
        }
    } else {
        println!("skipped the device: only root can make one, and only root could replace it");
    }
    for (target, kind) in &targets {
        fails(
            charmlp()
                .args(["train", "--steps", "100", "--data"])
                .arg(&data)
                .arg("--out")
                .arg(target),
            &[kind, "will not replace it"],
        );
        let m = std::fs::symlink_metadata(target).unwrap();
        assert!(!m.is_file(), "{} became a regular file", target.display());
    }
}

#[cfg(unix)]
#[test]
fn a_symlink_is_written_through_and_a_replaced_file_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let d = Dir::new();
    let data = d.words();
    let target = d.model("target.cmlp");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = d.path("link.cmlp");
    std::os::unix::fs::symlink("target.cmlp", &link).unwrap();
    let before = std::fs::read(&target).unwrap();
    charmlp()
        .args(["train", "--steps", "300", "--seed", "5", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&link)
        .assert()
        .success();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_ne!(
        std::fs::read(&target).unwrap(),
        before,
        "the target was not replaced"
    );
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the replaced file lost its mode");
    // A dangling link's target is created.
    std::os::unix::fs::symlink("new.cmlp", d.path("dangling.cmlp")).unwrap();
    charmlp()
        .args(["export", "--lang", "c", "--model"])
        .arg(&target)
        .arg("--out")
        .arg(d.path("dangling.cmlp"))
        .assert()
        .success();
    assert!(d.path("new.cmlp").is_file());
}

/// Spawns `args` with stdout a pipe whose reading end is closed at once.
/// Runs `args` with stdout a pipe whose reading end is closed before the command starts.
///
/// Other tests of this binary spawn processes from other threads at the same time, and a child
/// forked between `pipe()` and its exec briefly holds a copy of every descriptor, the reading
/// end included: a short output can then fit in the pipe and succeed. A command whose output
/// never meets EPIPE fails every attempt; one that meets it passes on the first attempt that is
/// not raced, so a few attempts make the test deterministic in effect.
fn with_closed_stdout(args: &[&str], extra: &[&Path]) -> std::process::Output {
    let mut last = None;
    for _ in 0..5 {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = bin()
            .args(args)
            .args(extra)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        if out.status.code() != Some(0) || args[0] == "train" {
            return out;
        }
        last = Some(out);
    }
    last.unwrap()
}

#[test]
fn a_closed_stdout_ends_printing_quietly_and_training_still_saves() {
    let d = Dir::new();
    let model = d.model("m.cmlp");
    let data = d.words();
    for (args, extra) in [
        (
            &["sample", "-n", "1000000", "--model"][..],
            vec![model.as_path()],
        ),
        (
            &["eval", "--model"][..],
            vec![model.as_path(), Path::new("--data"), &data],
        ),
    ] {
        let out = with_closed_stdout(args, &extra);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {out:?}");
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let saved = d.path("saved.cmlp");
    let out = with_closed_stdout(
        &["train", "--steps", "3000", "--data"],
        &[&data, Path::new("--out"), &saved],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(saved.is_file(), "train lost its model to a closed stdout");
}

#[test]
fn a_full_stdout_is_one_clear_error() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        println!("skipped: this system has no /dev/full");
        return;
    };
    let d = Dir::new();
    let model = d.model("m.cmlp");
    let out = bin()
        .args(["sample", "--model"])
        .arg(&model)
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot write to standard output: No space left"),
        "{stderr}"
    );
}

#[test]
fn endless_and_enormous_inputs_end_quickly_with_a_clear_error() {
    let d = Dir::new();
    // A sparse 12 GiB "model" that starts like one: refused after reading one byte past the
    // largest model, where it used to be read whole.
    let big = d.path("big.cmlp");
    let mut head = std::fs::read(d.model("m.cmlp")).unwrap();
    head.truncate(64);
    std::fs::write(&big, &head).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(12 << 30)
        .unwrap();
    fails(
        charmlp().args(["sample", "--model"]).arg(&big),
        &["big.cmlp", "longer than any model"],
    );
    if Path::new("/dev/zero").exists() {
        fails(
            charmlp().args(["sample", "--model", "/dev/zero"]),
            &["/dev/zero", "not a model file"],
        );
        fails(
            charmlp()
                .args(["train", "--data", "/dev/zero", "--out"])
                .arg(d.path("z.cmlp")),
            &["/dev/zero:1", "line of more than 1024 bytes"],
        );
    }
    // A 2 GB one-line words file used to be read whole before the length check.
    let line = d.path("line.txt");
    std::fs::write(&line, b"abc").unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&line)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    fails(
        charmlp()
            .args(["eval", "--data"])
            .arg(&line)
            .arg("--model")
            .arg(d.path("m.cmlp")),
        &["line.txt:1", "more than 1024 bytes"],
    );
}

#[test]
fn huge_step_counts_stream_the_curve_and_keep_memory_fixed() {
    let d = Dir::new();
    let data = d.words();
    let run = || {
        bin()
            .args(["train", "--steps", "1000000000000000", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(d.path("m.cmlp"))
            .arg("--curve")
            .arg(d.path("c.csv"))
            .arg("--plot")
            .arg(d.path("p.svg"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut child = run();
    // An allocation proportional to the steps used to panic at once ("capacity overflow").
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "the run ended early");
    child.kill().unwrap();
    child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.is_empty(), "{stderr}");
    // SIGKILL leaves the curve's temporary file. The next write of that name removes it once
    // nobody has written to it for an hour (its process is gone from /proc at once, but one in
    // another PID namespace would be hidden there): the test ages it by two.
    let leftovers: Vec<String> = d
        .listing()
        .into_iter()
        .filter(|n| n.ends_with(".charmlp-tmp"))
        .collect();
    assert_eq!(leftovers.len(), 1, "{:?}", d.listing());
    // A temporary file of another output whose name starts with this one's ("c.csv.2.csv")
    // and a fresh one are not this output's stale files and stay.
    let other = d.write(".c.csv.2.csv.1.abcdef.charmlp-tmp", "x");
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    for name in [leftovers[0].as_str(), ".c.csv.2.csv.1.abcdef.charmlp-tmp"] {
        std::fs::File::options()
            .write(true)
            .open(d.path(name))
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
    }
    charmlp()
        .args(["train", "--steps", "100", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(d.path("m.cmlp"))
        .arg("--curve")
        .arg(d.path("c.csv"))
        .assert()
        .success();
    assert!(
        other.exists(),
        "another output's temporary file was removed"
    );
    std::fs::remove_file(other).unwrap();
    assert_eq!(d.listing(), ["c.csv", "m.cmlp", "words.txt"]);
}

#[test]
fn temperature_zero_is_greedy_and_tiny_ones_are_valid() {
    let d = Dir::new();
    let model = d.model("m.cmlp");
    let names = |t: &str, seed: &str| {
        let out = charmlp()
            .args([
                "sample",
                "-n",
                "5",
                "--temperature",
                t,
                "--seed",
                seed,
                "--model",
            ])
            .arg(&model)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        String::from_utf8(out).unwrap()
    };
    let greedy = names("0", "1");
    assert_eq!(
        greedy,
        names("0", "2"),
        "greedy sampling depends on the seed"
    );
    assert_eq!(
        greedy
            .lines()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        1
    );
    for t in ["1e-45", "1e-30", "3e38"] {
        let n = names(t, "3");
        assert_eq!(n.lines().count(), 5);
        assert!(
            n.lines().all(|l| l.chars().all(|c| c.is_ascii_lowercase())),
            "{n}"
        );
    }
    // 1/T overflows to ∞ here: the old code sampled at random; the limit is greedy.
    assert_eq!(names("1e-45", "3"), greedy);
}

#[test]
fn crafted_models_with_valid_checksums_are_refused_by_every_command() {
    use charmlp_core::safetensors::{parse, reseal};
    let d = Dir::new();
    let data = d.words();
    let good = std::fs::read(d.model("m.cmlp")).unwrap();
    // Sets element `index` of tensor `name` to `x`, then rewrites the checksum to match.
    let crafted = |changes: &[(&str, usize, f32)]| {
        let mut file = good.clone();
        for &(name, index, x) in changes {
            let header = parse(&file).unwrap();
            let tensor = header.tensor_bytes(name).unwrap();
            let at = tensor.as_ptr() as usize - file.as_ptr() as usize + 4 * index;
            file[at..at + 4].copy_from_slice(&x.to_le_bytes());
        }
        assert!(reseal(&mut file));
        file
    };
    let negative = crafted(&[("bnvar", 0, -1.0)]);
    let huge = crafted(&[("C", 0, 3e38)]);
    // A gain of 0 hiding an overflowing hprebn − mean (1e32 + f32::MAX): NaN once loaded.
    let hidden = crafted(&[
        ("b1", 0, 1e32),
        ("bngain", 0, 0.0),
        ("bnmean", 0, -f32::MAX),
    ]);
    for (name, bytes, needle) in [
        ("neg.cmlp", negative, "variance 0 is negative"),
        ("huge.cmlp", huge, "can overflow f32"),
        (
            "hidden.cmlp",
            hidden,
            "batch norm can overflow f32 (unit 0)",
        ),
    ] {
        let path = d.write(name, bytes);
        fails(
            charmlp().args(["sample", "--model"]).arg(&path),
            &[name, needle],
        );
        fails(
            charmlp()
                .args(["eval", "--data"])
                .arg(&data)
                .arg("--model")
                .arg(&path),
            &[name, needle],
        );
    }
}

#[test]
fn messages_name_characters_count_every_bad_line_and_say_what_works() {
    let d = Dir::new();
    let train = |data: &Path| d.one_step(data);
    // Accents and capitals train as they are: 'É' and 'é' are two symbols …
    let french = "émile\nanne\nzoé\nÉlodie\nlouis\nmarie\njean-luc\nhélène\nchloé\nnoël\n";
    let accents = d.write("fr.txt", french);
    let ok = succeeds(&mut train(&accents));
    assert!(
        ok.contains("alphabet: 21 symbols, the boundary and -acdehijlmnorsuzÉèéë"),
        "{ok}"
    );
    // … one with --lowercase, which lowers 'É' as `tr A-Z a-z` cannot.
    let ok = succeeds(train(&accents).arg("--lowercase"));
    assert!(
        ok.contains("alphabet: 20 symbols, the boundary and -acdehijlmnorsuzèéë"),
        "{ok}"
    );
    // A fixed alphabet lists every word outside it, and --skip-bad-words leaves them out.
    let e = fails(
        train(&accents).args(["--alphabet", "abcdefghijklmnopqrstuvwxyz"]),
        &[
            "fr.txt: 7 problems",
            "fr.txt:1:1: 'é' (U+00E9) is not in the alphabet given by --alphabet",
            "--skip-bad-words",
        ],
    );
    assert!(e.contains("fr.txt:4:1: 'É' (U+00C9)"), "{e}");
    let skipping = fails(
        train(&accents).args(["--alphabet", "a-z", "--skip-bad-words"]),
        &["fr.txt", "3 words; an 80/10/10 split needs at least 10"],
    );
    assert_eq!(skipping.lines().count(), 1);
    // A leading '-' is the character itself, as tr reads it, and not taken for a flag.
    fails(
        train(&accents).args(["--alphabet", "-a-z", "--skip-bad-words"]),
        &["fr.txt", "4 words; an 80/10/10 split needs at least 10"],
    );
    let control = d.write("esc.txt", "anne\x1bmarie\n");
    fails(
        &mut train(&control),
        &["esc.txt:1:5", "U+001B ESCAPE", "control character"],
    );
    // A byte-order mark is skipped, and one step is "1 step".
    let names: String = (0..20)
        .map(|i| format!("{}\r\n", ["anna", "bob", "cyd"][i % 3]))
        .collect();
    let bom = d.write("bom.txt", format!("\u{feff}{names}"));
    let ok = succeeds(&mut train(&bom));
    assert!(ok.contains(", 1 step, SGD, lr 0.1 then 0.01"), "{ok}");
    assert!(ok.contains("20 words"), "{ok}");
}

#[test]
fn a_diverged_run_blames_the_rate_that_did_it_and_suggests_one_that_trains() {
    let d = Dir::new();
    let data = d.words();
    // Blown up by --lr at the first steps, found after the decay at step 100: --lr is to blame,
    // and the suggestion is the default rather than 10× lower (which diverges as well).
    let e = fails(
        charmlp()
            .args([
                "train",
                "--steps",
                "2000",
                "--lr",
                "50",
                "--lr-decay-step",
                "100",
            ])
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(d.path("m.cmlp")),
        &["(--lr 50 applies there)", "e.g. --lr 0.1 (the default)"],
    );
    assert!(!e.contains("--lr-final"), "{e}");
    // Blown up by --lr-final after the decay: --lr-final is to blame.
    let e = fails(
        charmlp()
            .args(["train", "--steps", "2000", "--lr-decay-step", "300"])
            .args(["--lr-final", "400", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(d.path("m.cmlp")),
        &["--lr-final 400 applies", "--lr-final 0.01 (the default)"],
    );
    assert!(!e.contains("99999"), "{e}");
}

#[test]
fn hostile_names_and_odd_paths_get_one_clean_line() {
    let d = Dir::new();
    let data = d.words();
    // A newline and an escape sequence in a file name: one line, no raw ESC.
    let e = fails(
        charmlp().args(["sample", "--model", "no\nfile\x1b[31mRED"]),
        &["no\\u{a}file\\u{1b}[31mRED", "cannot read the model file"],
    );
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    // `-` is standard input for inputs, and refused for outputs.
    fails(
        charmlp()
            .args(["train", "--steps", "10", "--out", "-", "--data"])
            .arg(&data),
        &["--out -", "not standard output"],
    );
    let model = d.path("stdin.cmlp");
    charmlp()
        .args(["train", "--steps", "10", "--data", "-", "--out"])
        .arg(&model)
        .pipe_stdin(&data)
        .unwrap()
        .assert()
        .success();
    charmlp()
        .args(["sample", "-n", "2", "--model", "-"])
        .pipe_stdin(&model)
        .unwrap()
        .assert()
        .success();
    // The process's own stdout, through /dev/stdout: refused, not replaced under the printing.
    let so = d.path("so.txt");
    let out = bin()
        .args(["train", "--steps", "10", "--out", "/dev/stdout", "--data"])
        .arg(&data)
        .stdout(std::fs::File::create(&so).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is this command's standard output"));
    // A link whose target is a directory's path ("dir/") is not written as a file.
    std::os::unix::fs::symlink(d.path("newdir/"), d.path("dslash")).unwrap();
    fails(
        charmlp()
            .args(["train", "--steps", "10", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(d.path("dslash")),
        &["a directory's path"],
    );
    assert!(!d.path("newdir").exists());
    // The longest name a file system allows can be written: the temporary name is cut to fit.
    let long = d.path(&"a".repeat(250));
    charmlp()
        .args(["train", "--steps", "10", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&long)
        .assert()
        .success();
    assert!(long.is_file());
}

#[test]
fn help_to_a_full_stdout_is_an_error() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        println!("skipped: this system has no /dev/full");
        return;
    };
    let out = bin().arg("--help").stdout(full).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("No space left"));
}

#[test]
fn words_files_from_elsewhere_get_the_hint_that_fits() {
    let d = Dir::new();
    let train = |data: &Path| d.one_step(data);
    let mac = d.write("mac.txt", "anna\rbob\rcyd\r");
    fails(
        &mut train(&mac),
        &["mac.txt:1:5", "carriage return", "tr '\\r' '\\n'"],
    );
    // Other scripts train as they are.
    let cyrillic = d.write(
        "ru.txt",
        "иван\nмария\nольга\nпётр\nанна\nсергей\nтатьяна\nюрий\nелена\nолег\n",
    );
    let ok = succeeds(&mut train(&cyrillic));
    assert!(
        ok.contains("alphabet: 19 symbols, the boundary and авгеийлмнопрстьюяё"),
        "{ok}"
    );
    let model = d.model("m.cmlp");
    fails(
        &mut train(&model),
        &["m.cmlp", "a charmlp model file, not a words file"],
    );
}
