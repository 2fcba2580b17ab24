//! `charmlp sweep`: a grid on every core, its results and best model, shards and --merge.

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin_cmd;
use predicates::str::contains;
use std::collections::BTreeSet;
use std::path::Path;

fn charmlp() -> Command {
    cargo_bin_cmd!("charmlp")
}

/// A grid of four short runs on the built-in names.
const GRID: [&str; 6] = [
    "--steps",
    "400",
    "--lr",
    "0.05,0.2",
    "--optimizer",
    "sgd,adamw",
];

fn sweep(dir: &Path, extra: &[&str]) -> String {
    let out = charmlp()
        .args(["sweep", "--work-dir"])
        .arg(dir)
        .args(GRID)
        .args(extra)
        .assert()
        .success()
        .get_output()
        .clone();
    String::from_utf8(out.stdout).unwrap()
}

fn results(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn commands(dir: &Path) -> BTreeSet<String> {
    results(dir)
        .iter()
        .map(|r| r["command"].as_str().unwrap().to_string())
        .collect()
}

/// Every run of the grid ends in results.jsonl with its losses and the `charmlp train`
/// command that makes its model; best.safetensors is, bit for bit, the model that command
/// makes for the lowest validation loss; the leaderboard ranks by it; a sweep started again
/// skips the runs done.
#[test]
fn a_sweeps_best_model_is_the_one_train_makes_from_its_command() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sweep");
    let stdout = sweep(&dir, &["--workers", "2"]);
    assert!(stdout.contains("leaderboard, 4 of 4 runs:"), "{stdout}");
    let rs = results(&dir);
    assert_eq!(rs.len(), 4);
    let best = rs
        .iter()
        .min_by(|a, b| {
            a["val"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["val"].as_f64().unwrap())
        })
        .unwrap();
    assert!(stdout.contains(&format!("best: val {:.4}", best["val"].as_f64().unwrap())));
    let command = shell_words::split(best["command"].as_str().unwrap()).unwrap();
    assert_eq!(command[..2], ["charmlp", "train"]);
    let model = tmp.path().join("retrained.safetensors");
    charmlp()
        .args(&command[1..])
        .arg("--out")
        .arg(&model)
        .assert()
        .success();
    assert!(std::fs::read(&model).unwrap() == std::fs::read(dir.join("best.safetensors")).unwrap());
    let again = sweep(&dir, &[]);
    assert!(again.contains("4 already done; 0 runs"), "{again}");
    assert_eq!(results(&dir).len(), 4);
}

/// `--shard K/N` splits the grid into disjoint slices that cover it; `--merge` ranks the
/// slices' results by validation loss; `--runs N` draws N runs of a larger grid.
#[test]
fn shards_cover_the_grid_once_and_merge_ranks_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, whole) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("whole"),
    );
    sweep(&a, &["--shard", "1/2", "--workers", "1"]);
    sweep(&b, &["--shard", "2/2", "--workers", "1"]);
    sweep(&whole, &[]);
    let (ca, cb) = (commands(&a), commands(&b));
    assert_eq!(ca.len() + cb.len(), 4);
    assert!(ca.is_disjoint(&cb));
    assert_eq!(&ca | &cb, commands(&whole));
    let merged = charmlp()
        .args(["sweep", "--json", "--merge"])
        .arg(a.join("results.jsonl"))
        .arg(b.join("results.jsonl"))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let vals: Vec<f64> = String::from_utf8(merged)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["val"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(vals.len(), 4);
    assert!(vals.windows(2).all(|w| w[0] <= w[1]), "{vals:?}");
    let mut whole_vals: Vec<f64> = results(&whole)
        .iter()
        .map(|r| r["val"].as_f64().unwrap())
        .collect();
    whole_vals.sort_by(f64::total_cmp);
    assert_eq!(
        vals, whole_vals,
        "the same runs give the same losses, on any worker"
    );
    let drawn = tmp.path().join("drawn");
    sweep(&drawn, &["--runs", "3", "--seed", "1,2"]);
    assert_eq!(commands(&drawn).len(), 3);
    for bad in ["0/2", "3/2", "1-2"] {
        charmlp()
            .args(["sweep", "--shard", bad, "--work-dir"])
            .arg(&whole)
            .assert()
            .code(2)
            .stderr(contains("give K/N with 1 ≤ K ≤ N"));
    }
    let junk = tmp.path().join("junk.jsonl");
    std::fs::write(&junk, "{\"val\": 1}\nnot json\n").unwrap();
    charmlp()
        .args(["sweep", "--merge"])
        .arg(&junk)
        .assert()
        .code(1)
        .stderr(contains("junk.jsonl:1: not a result line of charmlp sweep"));
}

/// A sweep survives a damaged results file and refuses grids it cannot run: a value given
/// twice is one run; a line cut short by a stop is cut off and the sweep goes on; a line that
/// claims a better val than the model on disk is named with the command that makes its
/// model; a warm-up past the steps and a grid over a million runs are refused before any
/// work; `--merge` refuses a missing file and reads `-` as standard input.
#[test]
fn a_sweep_survives_damaged_results_and_refuses_impossible_grids() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("w");
    let run = |extra: &[&str]| {
        charmlp()
            .args(["sweep", "--steps", "300", "--work-dir"])
            .arg(&dir)
            .args(extra)
            .output()
            .unwrap()
    };
    let once = run(&["--lr", "0.1,0.1"]);
    assert!(once.status.success(), "{once:?}");
    assert_eq!(results(&dir).len(), 1, "a value given twice is one run");
    let path = dir.join("results.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    let good = text.clone();
    text.push_str("{\"command\":\"charmlp train --lr 0.");
    std::fs::write(&path, &text).unwrap();
    let on = run(&["--lr", "0.1,0.2"]);
    let stderr = String::from_utf8_lossy(&on.stderr);
    assert!(on.status.success(), "{stderr}");
    assert!(stderr.contains("the last line was cut short"), "{stderr}");
    assert_eq!(results(&dir).len(), 2);
    // A hand-written line claiming a val no model has.
    let mut claimed: serde_json::Value =
        serde_json::from_str(good.lines().next().unwrap()).unwrap();
    claimed["val"] = serde_json::json!(-1.0);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("{claimed}\n"));
    std::fs::write(&path, text).unwrap();
    let noted = run(&["--lr", "0.1,0.2"]);
    let stderr = String::from_utf8_lossy(&noted.stderr);
    assert!(
        stderr.contains("records a val of -1.0000, below what"),
        "{stderr}"
    );
    assert!(stderr.contains("charmlp train"), "{stderr}");
    let refused = |extra: &[&str], why: &str| {
        let out = run(extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
    };
    refused(
        &["--warmup", "0,300"],
        "--warmup 300 is not below --steps 300",
    );
    let many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    let warmups: Vec<String> = (0..299).map(|i| i.to_string()).collect();
    let lrs: Vec<String> = (1..=4).map(|i| format!("0.0{i}")).collect();
    refused(
        &[
            "--seed",
            &many.join(","),
            "--warmup",
            &warmups.join(","),
            "--lr",
            &lrs.join(","),
        ],
        "a grid of 1197196 runs; at most 1000000",
    );
    charmlp()
        .args(["sweep", "--merge"])
        .arg(tmp.path().join("missing.jsonl"))
        .assert()
        .code(1)
        .stderr(contains("missing.jsonl: cannot read the results file"));
    let piped = charmlp()
        .args(["sweep", "--merge", "-"])
        .write_stdin(good)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(String::from_utf8_lossy(&piped).contains("  1. val "));
}

/// Ctrl-C stops a sweep with the runs finished kept: it exits 130, every result line is whole,
/// and the same command started again does only the runs left.
#[test]
fn a_stopped_sweep_keeps_its_finished_runs_and_goes_on() {
    use rustix::process::{Pid, Signal, kill_process};
    use std::process::Stdio;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("w");
    let flags = [
        "--steps",
        "20000",
        "--workers",
        "1",
        "--seed",
        "1,2,3,4,5,6",
    ];
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("charmlp"))
        .args(["sweep", "--work-dir"])
        .arg(&dir)
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let results_path = dir.join("results.jsonl");
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&results_path).map_or(0, |t| t.lines().count()) == 0 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before a stop"
        );
        assert!(start.elapsed().as_secs() < 120, "no result");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    kill_process(Pid::from_raw(child.id() as i32).unwrap(), Signal::INT).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("run the same command again to go on"),
        "{stderr}"
    );
    let kept = results(&dir).len();
    assert!((1..6).contains(&kept), "{kept} runs kept");
    let again = charmlp()
        .args(["sweep", "--work-dir"])
        .arg(&dir)
        .args(flags)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let again = String::from_utf8_lossy(&again);
    assert!(again.contains(&format!("{kept} already done")), "{again}");
    assert_eq!(results(&dir).len(), 6);
    assert_eq!(commands(&dir).len(), 6, "no run done twice");
}
