//! Runs that survive: `--work-dir` checkpoints, Ctrl-C and SIGTERM, and `--resume`, end to
//! end with real signals sent to the `charmlp` process.

use assert_cmd::cargo::cargo_bin;
use rustix::process::{Pid, Signal, kill_process};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// A run long enough to be interrupted twice (about 1.5 s in the tests' build), with an
/// evaluation, and so a checkpoint, every 2,000 steps, and AdamW, whose state must survive too.
const RECIPE: [&str; 10] = [
    "--steps",
    "40000",
    "--eval-every",
    "2000",
    "--optimizer",
    "adamw",
    "--lr",
    "0.003",
    "--schedule",
    "cosine",
];

fn train(dir: &Path, work: &str, out: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(cargo_bin("charmlp"));
    cmd.arg("train")
        .args(RECIPE)
        .arg("--work-dir")
        .arg(dir.join(work))
        .arg("--out")
        .arg(dir.join(out))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn modified(path: &Path) -> Option<SystemTime> {
    path.metadata().and_then(|m| m.modified()).ok()
}

/// Waits until `path` is written after `since` (a checkpoint: the run is under way).
fn wait_for_write(path: &Path, since: Option<SystemTime>, child: &mut Child) {
    let start = Instant::now();
    while modified(path) == since || modified(path).is_none() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be interrupted"
        );
        assert!(start.elapsed() < Duration::from_secs(60), "no checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal(child: &Child, signal: Signal) {
    let pid = Pid::from_raw(child.id() as i32).expect("a child's pid is positive");
    kill_process(pid, signal).unwrap();
}

fn finish(child: Child) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    (
        status.code(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Interrupts a run in `work` (fresh, or resumed) with `signals` once its next checkpoint is
/// written, and returns its exit status and stderr.
fn interrupt(dir: &Path, work: &str, resume: bool, signals: &[Signal]) -> (Option<i32>, String) {
    let last = dir.join(work).join("last.ckpt");
    let before = modified(&last);
    let extra: &[&str] = if resume { &["--resume"] } else { &[] };
    let mut child = train(dir, work, "part.safetensors", extra).spawn().unwrap();
    wait_for_write(&last, before, &mut child);
    for &s in signals {
        signal(&child, s);
    }
    let (code, _, stderr) = finish(child);
    (code, stderr)
}

/// The test: a run interrupted by SIGINT, resumed, interrupted by SIGTERM, resumed,
/// interrupted by two quick SIGINTs (the second exits at once), and resumed to the end writes
/// the very model file, curve and best checkpoint's model of the same run left alone, bit for
/// bit; each stop exits as a shell reports its signal (130, 143) and says how to resume.
#[test]
fn an_interrupted_run_resumed_ends_bit_for_bit_as_the_run_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let whole = train(dir, "whole", "whole.safetensors", &[])
        .output()
        .unwrap();
    assert!(whole.status.success(), "{whole:?}");

    let (code, stderr) = interrupt(dir, "parts", false, &[Signal::INT]);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT with"), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    assert!(
        !dir.join("part.safetensors").exists(),
        "no model before the end"
    );
    let (code, stderr) = interrupt(dir, "parts", true, &[Signal::TERM]);
    assert_eq!(code, Some(143), "{stderr}");
    assert!(stderr.contains("interrupted by SIGTERM with"), "{stderr}");
    let (code, stderr) = interrupt(dir, "parts", true, &[Signal::INT, Signal::INT]);
    assert_eq!(code, Some(130), "{stderr}");

    let resumed = train(dir, "parts", "part.safetensors", &["--resume"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(resumed.status.success(), "{resumed:?}");
    assert!(stdout.contains("resumed: "), "{stdout}");
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(read(dir.join("part.safetensors")) == read(dir.join("whole.safetensors")));
    assert!(read(dir.join("parts/curve.csv")) == read(dir.join("whole/curve.csv")));
    // The best checkpoints hold the same model (their metadata's order may differ).
    let model_of = |p: PathBuf| {
        Command::new(cargo_bin("charmlp"))
            .args(["eval", "--digits", "9", "--model"])
            .arg(p)
            .output()
            .unwrap()
    };
    let (a, b) = (
        model_of(dir.join("parts/best.ckpt")),
        model_of(dir.join("whole/best.ckpt")),
    );
    assert!(a.status.success(), "{a:?}");
    assert_eq!(a.stdout, b.stdout);
}

/// A work directory is never overwritten by a fresh run; `--resume` needs a run to resume,
/// and the flags and data it was started with; `sample` and `eval` read a checkpoint as a
/// model; a damaged checkpoint or curve is refused with what is wrong.
#[test]
fn a_work_dir_keeps_its_run_and_resumes_only_the_same_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let short = |work: &str, extra: &[&str]| {
        let mut cmd = Command::new(cargo_bin("charmlp"));
        cmd.args([
            "train",
            "--steps",
            "300",
            "--eval-every",
            "100",
            "--work-dir",
        ])
        .arg(dir.join(work))
        .arg("--out")
        .arg(dir.join("m.safetensors"))
        .args(extra);
        cmd.output().unwrap()
    };
    let fails = |o: Output, why: &str| {
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
    };
    let first = short("w", &["--optimizer", "momentum"]);
    assert!(first.status.success(), "{first:?}");
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("checkpoints: "), "{stdout}");
    let ckpt = std::fs::read(dir.join("w/last.ckpt")).unwrap();
    fails(
        short("w", &["--optimizer", "momentum"]),
        "already holds a run; give --resume",
    );
    assert_eq!(std::fs::read(dir.join("w/last.ckpt")).unwrap(), ckpt);
    fails(
        short("w", &["--resume", "--lr", "0.2", "--optimizer", "momentum"]),
        "started with other flags (--lr 0.1, not 0.2;",
    );
    let words = dir.join("words.txt");
    std::fs::write(
        &words,
        "anna\nbob\ncarl\ndora\nemil\nfrida\ngus\nhanna\nida\njon\n",
    )
    .unwrap();
    fails(
        short(
            "w",
            &[
                "--resume",
                "--optimizer",
                "momentum",
                "--data",
                words.to_str().unwrap(),
            ],
        ),
        "trained on other words",
    );
    fails(
        short("none", &["--resume"]),
        "no such directory, so no run to resume",
    );
    assert!(!dir.join("none").exists());
    // The finished run resumes to the same model.
    let momentum = ["--resume", "--optimizer", "momentum"];
    let again = short("w", &momentum);
    assert!(again.status.success(), "{again:?}");
    let sampled = Command::new(cargo_bin("charmlp"))
        .args(["sample", "-n", "3", "--model"])
        .arg(dir.join("w/best.ckpt"))
        .output()
        .unwrap();
    assert!(sampled.status.success(), "{sampled:?}");
    assert_eq!(String::from_utf8_lossy(&sampled.stdout).lines().count(), 3);
    // A curve cut short, and a checkpoint with a flipped byte in its model, are refused.
    let curve = dir.join("w/curve.csv");
    let rows = std::fs::read(&curve).unwrap();
    std::fs::write(&curve, &rows[..rows.len() / 2]).unwrap();
    fails(short("w", &momentum), "the curve was changed since");
    std::fs::write(&curve, &rows).unwrap();
    let mut bad = ckpt.clone();
    let at = bad.len() - 100;
    bad[at] ^= 0x40;
    std::fs::write(dir.join("w/last.ckpt"), &bad).unwrap();
    fails(short("w", &momentum), "does not match its contents");
    // A byte of the optimizer's state, which no other check covers.
    let mut bad = ckpt.clone();
    let at = {
        let file = safetensors::SafeTensors::deserialize(&ckpt).unwrap();
        let m = file.tensor("optim.m").unwrap().data();
        m.as_ptr() as usize - ckpt.as_ptr() as usize + m.len() / 2
    };
    bad[at] ^= 0x01;
    std::fs::write(dir.join("w/last.ckpt"), &bad).unwrap();
    fails(short("w", &momentum), "does not match its contents");
    // A work directory that is a file.
    std::fs::write(dir.join("file"), "x").unwrap();
    fails(short("file", &[]), "not a directory");
    // A curve edited without changing its length (a loss digit), and other evaluation flags.
    std::fs::write(dir.join("w/last.ckpt"), &ckpt).unwrap();
    let text = String::from_utf8(rows.clone()).unwrap();
    let row = text.lines().nth(5).unwrap();
    let digit = row.len() - 2;
    let edited_row = format!(
        "{}{}{}",
        &row[..digit],
        if &row[digit..=digit] == "1" { "2" } else { "1" },
        &row[digit + 1..]
    );
    std::fs::write(&curve, text.replacen(row, &edited_row, 1)).unwrap();
    fails(
        short("w", &momentum),
        "the curve was changed since the checkpoint",
    );
    std::fs::write(&curve, &rows).unwrap();
    let mut other_eval = momentum.to_vec();
    other_eval.extend(["--eval-examples", "5"]);
    fails(short("w", &other_eval), "(no --eval-examples, not 5)");
    // A run killed before its first checkpoint leaves a curve alone: a fresh run starts over.
    std::fs::create_dir(dir.join("early")).unwrap();
    std::fs::write(dir.join("early/curve.csv"), "step,loss,val_loss\n0,3.3,\n").unwrap();
    fails(
        short("early", &["--resume"]),
        "no checkpoint to resume from",
    );
    let fresh = short("early", &[]);
    assert!(fresh.status.success(), "{fresh:?}");
}

/// One work directory, one run: a second process is refused while the first holds its lock,
/// with one line naming the lock; a run stopped with a work directory whose name is not UTF-8
/// still exits 130 and prints a resume command.
#[test]
fn a_work_dir_serves_one_process_at_a_time() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let odd = std::ffi::OsStr::from_bytes(b"w\xff");
    let run = |out: &str, extra: &[&str]| {
        let mut cmd = Command::new(cargo_bin("charmlp"));
        cmd.args(["train", "--steps", "2000000", "--eval-every", "1000"])
            .args(extra)
            .arg("--work-dir")
            .arg(dir.join(odd))
            .arg("--out")
            .arg(dir.join(out))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    };
    let mut child = run("a.safetensors", &[]).spawn().unwrap();
    let last = dir.join(odd).join("last.ckpt");
    wait_for_write(&last, None, &mut child);
    let second = run("b.safetensors", &["--resume"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("in use by another charmlp"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    signal(&child, Signal::INT);
    let (code, _, stderr) = finish(child);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
