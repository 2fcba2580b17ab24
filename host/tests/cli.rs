//! End-to-end: the `charmlp` binary on data the tests make and on makemore's names.txt.

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin_cmd;
use predicates::prelude::*;
use predicates::str::contains;
use std::path::{Path, PathBuf};

fn charmlp() -> Command {
    cargo_bin_cmd!("charmlp")
}

/// A temporary directory with a words file of `n` made-up names in it.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// `n` pronounceable names from a fixed syllable table: data with structure to learn.
    fn words(&self, n: usize) -> PathBuf {
        const SYLLABLES: [&str; 12] = [
            "ma", "ri", "el", "an", "jo", "li", "sa", "ton", "ka", "na", "be", "th",
        ];
        let mut text = String::new();
        for i in 0..n {
            let len = 2 + i % 3;
            for k in 0..len {
                text.push_str(SYLLABLES[(i * 7 + k * 5 + i / 12) % SYLLABLES.len()]);
            }
            text.push('\n');
        }
        self.write("words.txt", text)
    }

    /// Trains a short run on `data` and returns the model path.
    fn train(&self, data: &Path, out: &str, extra: &[&str]) -> PathBuf {
        let out = self.path(out);
        charmlp()
            .args(["train", "--steps", "300", "--data"])
            .arg(data)
            .arg("--out")
            .arg(&out)
            .args(extra)
            .assert()
            .success();
        out
    }

    /// Exports `model` as `lang` source to `out` and returns its path.
    fn export(&self, model: &Path, lang: &str, out: PathBuf) -> PathBuf {
        self.export_with(model, &["--lang", lang], out)
    }

    /// `charmlp export` of `model` with `flags` to `out`, which must succeed.
    fn export_with(&self, model: &Path, flags: &[&str], out: PathBuf) -> PathBuf {
        charmlp()
            .arg("export")
            .args(flags)
            .arg("--model")
            .arg(model)
            .arg("--out")
            .arg(&out)
            .assert()
            .success();
        out
    }
}

/// Standard output of a command that must succeed.
fn stdout_of(cmd: &mut Command) -> String {
    String::from_utf8(cmd.assert().success().get_output().stdout.clone()).unwrap()
}

/// Stdout and stderr of a command that must succeed.
fn outputs_of(cmd: &mut Command) -> (String, String) {
    let out = cmd.assert().success().get_output().clone();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// What `train` printed is what the model file gives: `sample` with the same seed prints the 20
/// names train printed, and `eval` on the same data the losses it printed (same split, same
/// calibrated model). Returns the sampled names.
fn sample_and_eval_reproduce_train(stdout: &str, model: &Path, data: &Path) -> String {
    // Train marks each name with its split (or new), tab-separated; sample, without the
    // data, prints the names alone.
    let names_from_train: Vec<&str> = stdout
        .lines()
        .skip_while(|l| *l != "names:")
        .skip(1)
        .take(20)
        .map(|l| l.split_once('\t').map_or(l, |(name, _)| name))
        .collect();
    let sampled = stdout_of(charmlp().args(["sample", "--model"]).arg(model));
    assert_eq!(sampled.lines().collect::<Vec<_>>(), names_from_train);
    let losses_line = stdout.lines().find(|l| l.starts_with("loss: ")).unwrap();
    let eval = stdout_of(
        charmlp()
            .args(["eval", "--model"])
            .arg(model)
            .arg("--data")
            .arg(data),
    );
    let eval_line = format!("loss: {}", eval.lines().collect::<Vec<_>>().join(" "));
    assert_eq!(eval_line, losses_line);
    sampled
}

fn names_txt() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/names.txt")
}

/// Asserts a failure with exit status 1, one `error:` line naming `needles`, and no panic.
fn fails_with(cmd: &mut Command, needles: &[&str]) {
    let out = cmd.assert().failure().code(1).get_output().clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: "), "stderr: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    for n in needles {
        assert!(stderr.contains(n), "{n:?} not in: {stderr}");
    }
}

#[test]
fn help_states_every_default() {
    for (cmd, defaults) in [
        (
            "train",
            &[
                "[default: 64]",
                "[default: 200000]",
                "[default: 32]",
                "[default: 0.1; 5e-4 with --optimizer adamw",
                "[default: half of --steps",
                "[default: a tenth of --lr]",
                "[default: 42]",
                "[default: sgd]",
                "[default: step]",
                "[default: 0.9]",
                "[default: 0.99]",
                "[default: 1e-8]",
                "[default: 0.01]",
                "[default: model.safetensors]",
                "[default: 10]",
                "[default: 3]",
                "built-in",
            ][..],
        ),
        (
            "sample",
            &["[default: 20]", "[default: 42]", "[default: 1]"][..],
        ),
        ("eval", &["[default: the model's --split-seed"][..]),
        ("export", &["[possible values: rust, c]"][..]),
    ] {
        let out = charmlp()
            .args([cmd, "--help"])
            .assert()
            .success()
            .get_output()
            .clone();
        let help = String::from_utf8_lossy(&out.stdout);
        for d in defaults {
            assert!(help.contains(d), "charmlp {cmd} --help lacks {d}:\n{help}");
        }
    }
    charmlp()
        .arg("--help")
        .assert()
        .success()
        .stdout(contains("train").and(contains("export")));
}

#[test]
fn bad_data_is_named_by_file_line_and_column() {
    let s = Scratch::new();
    let cases: Vec<(PathBuf, Vec<&str>)> = vec![
        (
            s.path("missing.txt"),
            vec!["missing.txt", "cannot read", "No such file"],
        ),
        (s.dir.path().to_path_buf(), vec!["cannot read", "directory"]),
        (
            s.write("latin1.txt", b"emma\nzo\xebe\n"),
            vec!["latin1.txt:2", "not valid UTF-8"],
        ),
        (
            s.write("tab.txt", "emma\nmary\tjane\n"),
            vec![
                "tab.txt:2:5",
                "U+0009 CHARACTER TABULATION",
                "control character",
                "cut -f1",
            ],
        ),
        (
            s.write("nul.txt", "emma\n ol\0ivia\n"),
            vec!["nul.txt:2:4", "U+0000 NULL"],
        ),
        (s.write("empty.txt", ""), vec!["empty.txt", "no words"]),
        (
            s.write("blank.txt", "\n\n  \n"),
            vec!["blank.txt", "no words"],
        ),
        (
            s.write("few.txt", "ann\nbob\ncid\n"),
            vec!["few.txt", "3 words", "at least 10"],
        ),
        (
            s.write("long.txt", format!("emma\n{}\n", "a".repeat(65))),
            vec!["long.txt:2", "65 characters", "64"],
        ),
    ];
    for (path, needles) in cases {
        let out = s.path("never.cmlp");
        fails_with(
            charmlp()
                .args(["train", "--steps", "10", "--data"])
                .arg(&path)
                .arg("--out")
                .arg(&out),
            &needles,
        );
        assert!(!out.exists(), "a failed run wrote a model");
    }
}

#[test]
fn bad_flags_say_what_is_allowed() {
    for (flag, value, needle) in [
        ("--steps", "0", "not positive"),
        ("--steps", "-5", "not positive"),
        ("--batch", "0", "choose one of 4, 8, 16, 32, 64, 128, 256"),
        ("--batch", "-32", "choose one of"),
        ("--batch", "33", "33 is not built in"),
        ("--lr", "0", "not a positive finite number"),
        ("--lr", "-0.1", "not a positive finite number"),
        ("--lr-final", "nan", "not a positive finite number"),
        (
            "--hidden",
            "100",
            "100 is not built in; choose one of 64, 200",
        ),
    ] {
        charmlp()
            .args(["train", flag, value])
            .assert()
            .failure()
            .code(2)
            .stderr(contains(needle).and(contains("panicked").not()));
    }
    charmlp()
        .args(["sample", "--model", "x", "--temperature", "-0.5"])
        .assert()
        .code(2)
        .stderr(contains("not a finite number of at least 0"));
}

#[test]
fn bad_model_files_are_named() {
    let s = Scratch::new();
    let data = s.words(100);
    let good = s.train(&data, "good.cmlp", &[]);
    let bytes = std::fs::read(&good).unwrap();

    let mut version = bytes.clone();
    let key = b"\"format_version\":\"1\"";
    let at = version.windows(key.len()).position(|w| w == key).unwrap();
    version[at + key.len() - 2] = b'9';
    // A model of embedding 12, a shape this build does not read, in the right format.
    let mut e12 = Box::new(charmlp_core::Model::<27, 12, 3, 64>::zeroed());
    e12.params.gain = [1.0; 64];
    let mut shape = vec![0; 1 << 16];
    let n = e12
        .write_safetensors(&charmlp_core::Alphabet::MAKEMORE, &[], &mut shape)
        .unwrap();
    shape.truncate(n);
    let mut flipped = bytes.clone();
    // A byte of the tensors (the header before them grows with the metadata).
    flipped[bytes.len() - 1000] ^= 0x10;
    let cases: Vec<(PathBuf, Vec<&str>)> = vec![
        (
            s.path("nothing.cmlp"),
            vec!["nothing.cmlp", "cannot read the model file"],
        ),
        (data.clone(), vec!["words.txt", "not a model file"]),
        (
            s.write("v9.cmlp", &version),
            vec!["v9.cmlp", "format_version \"9\"", "this build reads \"1\""],
        ),
        (
            s.write("e12.cmlp", &shape),
            vec!["e12.cmlp", "embedding 12", "this build reads"],
        ),
        (
            s.write("short.cmlp", &bytes[..bytes.len() / 2]),
            vec!["short.cmlp", "truncated"],
        ),
        (
            s.write("flip.cmlp", &flipped),
            vec!["flip.cmlp", "checksum mismatch"],
        ),
    ];
    for (path, needles) in cases {
        fails_with(charmlp().args(["sample", "--model"]).arg(&path), &needles);
        fails_with(
            charmlp()
                .args(["eval", "--data"])
                .arg(&data)
                .arg("--model")
                .arg(&path),
            &needles,
        );
        let out = s.path("never.rs");
        fails_with(
            charmlp()
                .args(["export", "--lang", "rust", "--model"])
                .arg(&path)
                .arg("--out")
                .arg(&out),
            &needles,
        );
        assert!(!out.exists());
    }
}

#[test]
fn a_diverging_run_stops_and_keeps_the_old_model() {
    let s = Scratch::new();
    let data = s.words(100);
    let out = s.train(&data, "model.cmlp", &[]);
    let before = std::fs::read(&out).unwrap();
    fails_with(
        charmlp()
            .args(["train", "--steps", "1000", "--lr", "1e30", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&out),
        &[
            "diverged at step",
            "lower learning rate",
            "No model was written",
        ],
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        before,
        "the previous model changed"
    );
    let leftovers: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn an_unwritable_destination_is_a_clear_error() {
    let s = Scratch::new();
    let data = s.words(100);
    fails_with(
        charmlp()
            .args(["train", "--steps", "50", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(s.path("no/such/dir/model.cmlp")),
        &["model.cmlp", "directory", "does not exist", "mkdir -p"],
    );
}

#[cfg(unix)]
#[test]
fn written_files_get_the_mode_of_any_new_file() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    let data = s.words(100);
    let model = s.train(&data, "m.cmlp", &[]);
    let header = s.export(&model, "c", s.path("m.h"));
    // A file created the ordinary way in the same place, under the same umask.
    let ordinary = s.write("ordinary.txt", "x");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&model), mode(&ordinary), "model file mode");
    assert_eq!(mode(&header), mode(&ordinary), "exported source mode");
}

#[test]
fn same_seed_same_model_bytes() {
    let s = Scratch::new();
    let data = s.words(200);
    let a = std::fs::read(s.train(&data, "a.cmlp", &["--seed", "7"])).unwrap();
    let b = std::fs::read(s.train(&data, "b.cmlp", &["--seed", "7"])).unwrap();
    let c = std::fs::read(s.train(&data, "c.cmlp", &["--seed", "8"])).unwrap();
    assert!(a == b, "same seed, different model files");
    assert!(a != c, "different seeds, same model file");
}

/// `eval --int8` prints the int8 model's losses beside the f32 model's, and their fixed-point
/// sums in JSON; `sample --int8` draws at temperature 1 only, the same names for the same seed.
#[test]
fn int8_losses_and_names_come_from_flags() {
    let s = Scratch::new();
    let data = s.words(300);
    let model = s.train(&data, "m.safetensors", &[]);
    let eval = |extra: &[&str]| {
        stdout_of(
            charmlp()
                .args(["eval", "--int8", "--model"])
                .arg(&model)
                .arg("--data")
                .arg(&data)
                .args(extra),
        )
    };
    let text = eval(&[]);
    let json: serde_json::Value = serde_json::from_str(eval(&["--json"]).trim()).unwrap();
    for (line, split) in text.lines().zip(["train", "val", "test"]) {
        // "val 2.1635  int8 2.1637 (+0.0003)"
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((words[0], words[2]), (split, "int8"), "{text}");
        let (f32_loss, int8_loss): (f64, f64) =
            (words[1].parse().unwrap(), words[3].parse().unwrap());
        assert!((int8_loss - f32_loss).abs() < 0.01, "{line}");
        // The difference of the printed figures: the line adds up.
        assert_eq!(
            words[4],
            format!("({:+.4})", int8_loss - f32_loss),
            "{line}"
        );
        assert_eq!(words[1], format!("{:.4}", json[split].as_f64().unwrap()));
        let q = &json["int8"][split];
        let (bits, n) = (q["bits_q16"].as_f64().unwrap(), q["n"].as_f64().unwrap());
        let nats = bits / 65_536.0 / n * std::f64::consts::LN_2;
        assert!((nats - q["loss"].as_f64().unwrap()).abs() < 1e-12, "{q}");
        assert_eq!(format!("{int8_loss:.4}"), format!("{nats:.4}"));
    }
    let names = |seed: &str| {
        stdout_of(
            charmlp()
                .args(["sample", "--int8", "-n", "30", "--seed", seed, "--model"])
                .arg(&model),
        )
    };
    let a = names("5");
    assert_eq!(a.lines().count(), 30);
    assert_eq!(a, names("5"));
    assert_ne!(a, names("6"));
    for flag in [
        ["--temperature", "0.5"],
        ["--top-k", "3"],
        ["--prefix", "ma"],
        ["--max-len", "4"],
    ] {
        let err = charmlp()
            .args(["sample", "--int8", "--model"])
            .arg(&model)
            .args(flag)
            .assert()
            .failure()
            .get_output()
            .stderr
            .clone();
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains("cannot be used with"), "{flag:?}: {err}");
    }
}

#[test]
fn train_sample_eval_export_round_trip() {
    let s = Scratch::new();
    let data = s.words(300);
    let model = s.path("m.cmlp");
    let curve = s.path("loss.csv");
    let plot = s.path("loss.svg");
    let out = charmlp()
        .args([
            "train", "--steps", "2000", "--hidden", "200", "--batch", "16", "--data",
        ])
        .arg(&data)
        .arg("--out")
        .arg(&model)
        .arg("--curve")
        .arg(&curve)
        .arg("--plot")
        .arg(&plot)
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "data: ",
        "300 words",
        // The syllables' 14 letters and the boundary.
        "alphabet: 15 symbols, the boundary and abehijklmnorst",
        "model: 15 → 10 → 30 → 200 → 15,",
        "loss: train",
        "µs/step",
        "      0/2000",
        // The last line reads steps/steps: the run is done.
        "   2000/2000",
    ] {
        assert!(stdout.contains(needle), "{needle:?} not in:\n{stdout}");
    }
    // Header length, header, the tensors of 15 symbols.
    let floats = 15 * 10 + 30 * 200 + 3 * 200 + 200 * 15 + 15 + 2 * 200;
    let file = std::fs::read(&model).unwrap();
    let header_len = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    assert_eq!(file.len(), 8 + header_len + 4 * floats);

    // The curve has a row a step, with validation losses where they were measured.
    let csv = std::fs::read_to_string(&curve).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "step,loss,val_loss");
    assert_eq!(rows.len(), 2001);
    assert!(rows[1].starts_with("0,") && !rows[1].ends_with(','));
    assert!(rows[2].starts_with("1,") && rows[2].ends_with(','));
    assert!(std::fs::read_to_string(&plot).unwrap().contains("<svg"));

    let sampled = sample_and_eval_reproduce_train(&stdout, &model, &data);
    assert!(
        sampled
            .lines()
            .all(|n| n.chars().all(|c| c.is_ascii_lowercase()))
    );
    let five = stdout_of(
        charmlp()
            .args(["sample", "-n", "5", "--seed", "3", "--temperature", "0.5"])
            .arg("--model")
            .arg(&model),
    );
    assert_eq!(five.lines().count(), 5);
    // A name depends on its index alone: the first five of 5,000 (two blocks of names drawn 32
    // side by side) are the five, and the second block goes on drawing.
    let many = stdout_of(
        charmlp()
            .args([
                "sample",
                "-n",
                "5000",
                "--seed",
                "3",
                "--temperature",
                "0.5",
            ])
            .arg("--model")
            .arg(&model),
    );
    let many: Vec<&str> = many.lines().collect();
    assert_eq!(many.len(), 5000);
    assert_eq!(many[..5], five.lines().collect::<Vec<_>>());
    // Had the second block started again at name 0, it would repeat the first.
    assert_ne!(many[4096..], many[..904]);
}

/// Words with a non-ASCII alphabet: the syllables' names and some from outside a–z.
const WORLD_NAMES: &str = "zoë\njosé\no'brien\njean-luc\nsan josé\n中村\nmüller\nçelik\n";

/// Exports `model` in both languages and checks that each compiles and holds exactly the model:
/// the Rust static written back through charmlp-core, and the C arrays dumped as raw floats,
/// equal the model file byte for byte; the alphabet comes out of both, and the Rust samples the
/// very names `charmlp sample` does. The model's file name is hostile: the name goes into the
/// sources' comments, and a newline, `*/` or `/*` there must not break or inject code.
#[test]
fn exported_sources_compile_and_hold_the_model_exactly() {
    let s = Scratch::new();
    let mut text = std::fs::read_to_string(s.words(100)).unwrap();
    text.push_str(WORLD_NAMES);
    let data = s.write("world.txt", text);
    let trained = s.train(&data, "m.cmlp", &[]);
    // (A file name cannot hold '/', so "*/" cannot reach a comment this way; a unit test of
    // `comment_text` covers it.)
    let model = s.path("m\n} fn evil() {} \\ \"é\u{2028}\r\n#error x\n.cmlp");
    std::fs::copy(&trained, &model).unwrap();
    let bytes = std::fs::read(&model).unwrap();
    // The syllables' 14 letters, then ' ', '\'', '-', c, u, z, ç, é, ë, ü, 中, 村: 26 + 1.
    let alphabet = " '-abcehijklmnorstuzçéëü中村";
    let symbols = alphabet.chars().count() + 1;
    // The model as the earlier format lays it out: the C arrays and the Rust statics are
    // checked against these bytes (W2 transposed, the fast path's layout, as export writes it).
    let mut loaded = Box::new(charmlp_core::Model::<27, 10, 3, 64>::zeroed());
    let mut loaded_alphabet = charmlp_core::Alphabet::MAKEMORE;
    loaded
        .read_safetensors(&mut loaded_alphabet, &bytes, None)
        .unwrap();
    assert_eq!(loaded_alphabet.len(), symbols);
    let mut bytes = vec![0; 1 << 16];
    let n = loaded.write_bytes(&loaded_alphabet, &mut bytes).unwrap();
    bytes.truncate(n);
    let floats_at = 16 + 4 * (symbols - 1);

    // C: a header of arrays, compiled with warnings as errors.
    s.export(&model, "c", s.path("charmlp_model.h"));
    let main_c = s.write(
        "main.c",
        r#"#include <stdio.h>
#include "charmlp_model.h"
#define DUMP(a) fwrite(a, sizeof(a), 1, stdout)
int main(void) {
    for (int i = 1; i < CHARMLP_VOCAB; i++) fputs(charmlp_symbols[i], stderr);
    DUMP(charmlp_C); DUMP(charmlp_W1); DUMP(charmlp_b1); DUMP(charmlp_gain); DUMP(charmlp_bias);
    DUMP(charmlp_W2T); DUMP(charmlp_b2); DUMP(charmlp_bn_mean); DUMP(charmlp_bn_var);
    return CHARMLP_HIDDEN == 64 && CHARMLP_EMBED == 10 && CHARMLP_CONTEXT == 3
        && charmlp_symbols[0][0] == 0 ? 0 : 1;
}
"#,
    );
    let exe = s.path("dump");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = std::process::Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-o"])
        .arg(&exe)
        .arg(&main_c)
        .status()
        .unwrap_or_else(|e| panic!("{cc}: {e}"));
    assert!(status.success(), "the exported C does not compile");
    let dumped = std::process::Command::new(&exe).output().unwrap();
    assert!(dumped.status.success());
    assert_eq!(String::from_utf8_lossy(&dumped.stderr), alphabet);
    assert!(
        dumped.stdout == bytes[floats_at..bytes.len() - 4],
        "C arrays differ from the model file"
    );

    // Rust: a crate that uses the exported statics as a charmlp_core::Model and Alphabet, with
    // no parsing, writes the model file back and samples five names with `sample`'s stream.
    let krate = s.path("exported");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    let core = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../core")
        .canonicalize()
        .unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        format!(
            "[package]\nname = \"exported\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n\
             [dependencies]\ncharmlp-core = {{ path = {:?} }}\nrand_core = \"0.10\"\n\
             rand_xoshiro = \"0.8\"\n\n[workspace]\n",
            core
        ),
    )
    .unwrap();
    s.export(&model, "rust", krate.join("src/model.rs"));
    s.export_with(
        &model,
        &["--int8", "--lang", "rust"],
        krate.join("src/int8.rs"),
    );
    std::fs::write(
        krate.join("src/main.rs"),
        "mod model;\nmod int8;\nuse rand_core::SeedableRng;\nuse std::io::Write;\n\
         fn main() {\n\
         \x20   let mut buf = vec![0u8; 1 << 20];\n\
         \x20   let n = model::MODEL.write_bytes(&model::ALPHABET, &mut buf).unwrap();\n\
         \x20   std::io::stdout().write_all(&buf[..n]).unwrap();\n\
         \x20   // charmlp's sample stream of seed 42: the seed's generator, three jumps on; its\n\
         \x20   // first output plus i seeds name i's generator.\n\
         \x20   let mut stream = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(42);\n\
         \x20   for _ in 0..3 { stream.jump(); }\n\
         \x20   let base = rand_core::Rng::next_u64(&mut stream);\n\
         \x20   let mut state = charmlp_core::InferState::new();\n\
         \x20   for i in 0..5u64 {\n\
         \x20       let seed = base.wrapping_add(i);\n\
         \x20       let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);\n\
         \x20       let name = model::MODEL.sample_name::<_, 64>(\n\
         \x20           &mut rng, charmlp_core::Temperature::ONE, &mut state, &model::ALPHABET);\n\
         \x20       eprintln!(\"{name}\");\n\
         \x20   }\n\
         \x20   // The int8 model: logits of fixed contexts, then five names of `sample --int8`.\n\
         \x20   let mut report = String::new();\n\
         \x20   let mut state = charmlp_core::Int8State::new();\n\
         \x20   let v = int8::MODEL.symbols();\n\
         \x20   for i in 0..4 * v {\n\
         \x20       let context = core::array::from_fn(|t| charmlp_core::Token::wrapping(\n\
         \x20           (i * (1 + 6 * t) % v) as u8, v));\n\
         \x20       int8::MODEL.weights(&context, &mut state);\n\
         \x20       for l in state.logits { report += &format!(\"{l} \"); }\n\
         \x20       for w in state.weights { report += &format!(\"{w} \"); }\n\
         \x20       report += \"\\n\";\n\
         \x20   }\n\
         \x20   for i in 0..5u64 {\n\
         \x20       let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(base.wrapping_add(i));\n\
         \x20       let name = int8::MODEL.sample_name::<_, 64>(&mut rng, &mut state, &int8::ALPHABET);\n\
         \x20       report += &format!(\"{name}\\n\");\n\
         \x20   }\n\
         \x20   std::fs::write(std::env::args().nth(1).unwrap(), report).unwrap();\n\
         }\n",
    )
    .unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let int8_report = s.path("int8-report.txt");
    let run = std::process::Command::new(cargo)
        .args(["run", "--quiet", "--offline", "--manifest-path"])
        .arg(krate.join("Cargo.toml"))
        .arg("--")
        .arg(&int8_report)
        .env("CARGO_TARGET_DIR", s.path("target"))
        .env("RUSTFLAGS", "-D warnings")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "the exported Rust does not build: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        run.stdout == bytes,
        "the exported Rust model differs from the model file"
    );
    let sampled = charmlp()
        .args(["sample", "-n", "5", "--model"])
        .arg(&model)
        .assert()
        .success()
        .get_output()
        .clone();
    assert_eq!(
        String::from_utf8(run.stderr).unwrap(),
        String::from_utf8(sampled.stdout).unwrap()
    );

    // int8: the Rust static samples `sample --int8`'s names, and a C program following the C
    // header's comment computes the Rust's logits exactly.
    let report = std::fs::read_to_string(&int8_report).unwrap();
    let (logits, names) =
        report.split_at(report.match_indices('\n').nth(4 * 27 - 1).unwrap().0 + 1);
    let sampled = stdout_of(
        charmlp()
            .args(["sample", "--int8", "-n", "5", "--model"])
            .arg(&model),
    );
    assert_eq!(names, sampled);
    s.export_with(&model, &["--int8", "--lang", "c"], s.path("charmlp_int8.h"));
    let main_c = s.write("int8.c", INT8_LOGITS_C);
    let exe = s.path("int8");
    let status = std::process::Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-o"])
        .arg(&exe)
        .arg(&main_c)
        .status()
        .unwrap();
    assert!(status.success(), "the exported int8 C does not compile");
    let c_logits = std::process::Command::new(&exe).output().unwrap();
    assert!(c_logits.status.success());
    assert_eq!(String::from_utf8(c_logits.stdout).unwrap(), logits);
}

/// The int8 forward as the exported C header's comment states it, printing the logits and the
/// softmax's weights of the contexts the exported Rust prints (token (i·(1 + 6t)) mod V at place
/// t, i < 4V). The f32 model's header is included too: the two sit side by side.
const INT8_LOGITS_C: &str = r#"#include <stdio.h>
#include "charmlp_model.h"
#include "charmlp_int8.h"
static int32_t requant(int32_t a, int32_t m, int8_t s) {
    int down = 31 - s;
    int64_t r = ((int64_t)a * m + ((int64_t)1 << (down - 1))) >> down;
    return r > INT32_MAX ? INT32_MAX : r < INT32_MIN ? INT32_MIN : (int32_t)r;
}
int main(void) {
    int v = CHARMLP_VOCAB;
    for (int i = 0; i < 4 * v; i++) {
        int32_t hpreact[CHARMLP_HIDDEN];
        int8_t h[CHARMLP_HIDDEN];
        for (int j = 0; j < CHARMLP_HIDDEN; j++) hpreact[j] = charmlp_int8_b1[j];
        for (int t = 0; t < CHARMLP_CONTEXT; t++)
            for (int e = 0; e < CHARMLP_EMBED; e++)
                for (int j = 0; j < CHARMLP_HIDDEN; j++)
                    hpreact[j] += charmlp_int8_c[i * (1 + 6 * t) % v][e] * charmlp_int8_w1[t][e][j];
        for (int j = 0; j < CHARMLP_HIDDEN; j++) {
            int32_t code = requant(hpreact[j], charmlp_int8_to_tanh_multiplier[j], charmlp_int8_to_tanh_shift[j]);
            code = code < -128 ? -128 : code > 127 ? 127 : code;
            h[j] = charmlp_int8_tanh[code + 128];
        }
        int32_t logit[CHARMLP_VOCAB], largest = INT32_MIN;
        for (int k = 0; k < v; k++) {
            int32_t acc = charmlp_int8_b2[k];
            for (int j = 0; j < CHARMLP_HIDDEN; j++) acc += h[j] * charmlp_int8_w2t[k][j];
            logit[k] = requant(acc, charmlp_int8_to_logit_multiplier[k], charmlp_int8_to_logit_shift[k]);
            largest = logit[k] > largest ? logit[k] : largest;
            printf("%ld ", (long)logit[k]);
        }
        for (int k = 0; k < v; k++) {
            uint32_t d = (uint32_t)(largest - logit[k]);
            uint32_t w = d / 64 >= 32 ? 0 : charmlp_int8_pow2_q24[d % 64] >> (d / 64);
            printf("%lu ", (unsigned long)(w > 0 ? w : 1));
        }
        printf("\n");
    }
    return charmlp_int8_symbols[0][0] + charmlp_symbols[0][0];
}
"#;

/// A shape from the menu other than the default (makemore part 5's embedding and context) on a
/// non-ASCII alphabet: the file records it, and sample and eval read it from the file alone.
#[test]
fn a_menu_shape_round_trips_through_the_file() {
    let s = Scratch::new();
    let mut text = std::fs::read_to_string(s.words(200)).unwrap();
    text.push_str(WORLD_NAMES);
    let data = s.write("world.txt", text);
    let model = s.path("e24t8.cmlp");
    let stdout = stdout_of(
        charmlp()
            .args(["train", "--steps", "300", "--embed", "24", "--context", "8"])
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&model),
    );
    assert!(
        stdout.contains("model: 27 → 24 → 192 → 64 → 27,"),
        "{stdout}"
    );
    let bytes = std::fs::read(&model).unwrap();
    let shape = charmlp_core::safetensors::peek_shape(&bytes).unwrap();
    assert_eq!(
        (shape.vocab, shape.embed, shape.context, shape.hidden),
        (27, 24, 8, 64)
    );
    sample_and_eval_reproduce_train(&stdout, &model, &data);
    // eval reads with the model's alphabet: a character it does not know is an error naming the
    // line, a capital whose lowercase it knows gets the --lowercase hint, and --skip-bad-words
    // leaves such words out and says how many.
    let mut text = std::fs::read_to_string(&data).unwrap();
    text.push_str("xavier\nZoë\n");
    let foreign = s.write("foreign.txt", text);
    let lines = std::fs::read_to_string(&foreign).unwrap().lines().count();
    let eval = |extra: &[&str]| {
        let mut c = charmlp();
        c.args(["eval", "--model"])
            .arg(&model)
            .arg("--data")
            .arg(&foreign)
            .args(extra);
        c
    };
    let e = eval(&[])
        .assert()
        .failure()
        .code(1)
        .get_output()
        .stderr
        .clone();
    let e = String::from_utf8(e).unwrap();
    assert!(
        e.contains(&format!("foreign.txt:{}:1: 'x' is not in the model's alphabet", lines - 1))
            && e.contains(&format!("foreign.txt:{lines}:1: 'Z' is not in the model's alphabet; its lowercase is: pass --lowercase")),
        "{e}"
    );
    let skipped = stdout_of(&mut eval(&["--skip-bad-words"]));
    assert!(
        skipped.starts_with("skipped: 2 words with characters outside the model's alphabet\n"),
        "{skipped}"
    );
    // A shape off the menu is a usage error naming the menu.
    charmlp()
        .args(["train", "--steps", "1", "--context", "4", "--data"])
        .arg(&data)
        .assert()
        .failure()
        .code(2)
        .stderr(contains("--context").and(contains("4 is not built in; choose one of 3, 8")));
}

#[test]
fn trains_on_makemores_names() {
    // A short run on the real data set: it reads all 32,033 names and learns.
    let s = Scratch::new();
    let stdout = stdout_of(
        charmlp()
            .args(["train", "--steps", "3000", "--data"])
            .arg(names_txt())
            .arg("--out")
            .arg(s.path("names.cmlp")),
    );
    assert!(
        stdout.contains("32033 words; train/val/test 25626/3203/3204 words"),
        "{stdout}"
    );
    let losses = stdout.lines().find(|l| l.starts_with("loss: ")).unwrap();
    let val: f64 = losses
        .split_whitespace()
        .skip_while(|w| *w != "val")
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    // A bigram model gets 2.45; 3,000 steps of the MLP get ~2.4.
    assert!(val < 2.6, "val loss {val} after 3,000 steps");
}

/// `tests/data/v2.cmlp` was written by the last build of the `.cmlp` format (d505b6b). It loads,
/// and samples what this build's rule gives: these names, since each name has its own generator
/// (issue 13). d505b6b, drawing every name from one stream, printed anna, émile, éjrie,
/// hélèzllsc, jeanlluc.
#[test]
fn a_cmlp_file_of_the_earlier_format_still_loads() {
    let v2 = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/v2.cmlp");
    let out = charmlp()
        .args(["sample", "-n", "5", "--seed", "1", "--model"])
        .arg(&v2)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "marie\nanna\nloël\ncal-lze\nésnlluuu\n"
    );
}

/// `tests/data/notebook.safetensors`: the full recipe trained in PyTorch (`../shared/peers/
/// torch_train.py`, 200,000 steps, hidden 64) and saved with the README's five lines, no
/// charmlp metadata. The losses are the ones PyTorch printed for it (see tests/data/README.md).
#[test]
fn a_model_trained_in_pytorch_samples_and_evaluates_in_charmlp() {
    let model =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/notebook.safetensors");
    let eval = stdout_of(
        charmlp()
            .args(["eval", "--digits", "7", "--model"])
            .arg(&model)
            .arg("--data")
            .arg(names_txt()),
    );
    let torch = [
        ("train", 2.1477854251861572),
        ("val", 2.1589560508728027),
        ("test", 2.163606882095337),
    ];
    for (line, (split, loss)) in eval.lines().zip(torch) {
        let (name, value) = line.split_once(' ').unwrap();
        assert_eq!(name, split);
        let value: f64 = value.parse().unwrap();
        assert!(
            (value - loss).abs() < 1e-6,
            "{split}: charmlp {value}, PyTorch {loss}"
        );
    }
    let names = stdout_of(
        charmlp()
            .args(["sample", "-n", "20", "--model"])
            .arg(&model),
    );
    assert_eq!(names.lines().count(), 20);
    assert!(
        names
            .lines()
            .all(|n| n.chars().all(|c| c.is_ascii_lowercase())),
        "{names}"
    );
}

/// `--alphabet` on a model file is the alphabet of one saved without charmlp's metadata: given
/// in token order or refused (sorting it would give tokens other characters), and refused for
/// a file that has its own.
#[test]
fn alphabet_of_a_model_file_is_in_token_order_and_only_for_foreign_files() {
    let notebook =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/notebook.safetensors");
    let sample = |extra: &[&str]| {
        let mut c = charmlp();
        c.args(["sample", "-n", "3", "--model"])
            .arg(&notebook)
            .args(extra);
        c
    };
    let plain = stdout_of(&mut sample(&[]));
    assert_eq!(stdout_of(&mut sample(&["--alphabet", "a-z"])), plain);
    sample(&["--alphabet", "zyxwvutsrqponmlkjihgfedcba"])
        .assert()
        .code(2)
        .stderr(contains("increasing order").and(contains("give them as 'a-z'")));
    // 27 symbols need 26 characters.
    fails_with(
        &mut sample(&["--alphabet", "a-y"]),
        &["notebook.safetensors", "25 characters", "27 symbols"],
    );
    let v2 = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/v2.cmlp");
    fails_with(
        charmlp()
            .args(["sample", "--alphabet", "A-Z", "--model"])
            .arg(&v2),
        &["v2.cmlp", "has its own alphabet", "leave it out"],
    );
    // The file's own alphabet, given as a script might always give it, is fine.
    let own = stdout_of(
        charmlp()
            .args(["sample", "-n", "3", "--model"])
            .arg(&v2)
            .args(["--alphabet", "acehijlmnorsuzèéë-"]),
    );
    assert_eq!(own.lines().count(), 3);
}

/// The model file names its data and recipe: `data_sha256` is SHA-256 of the words trained on
/// (trimmed, lowercased with --lowercase, blank lines left out), one a line; `seed` and `split`
/// are the run's.
#[test]
fn the_model_file_names_the_data_and_the_seed_it_came_from() {
    use sha2::Digest;
    let s = Scratch::new();
    let words: Vec<String> = std::fs::read_to_string(s.words(60))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    // The same words with capitals, CRLF, spaces around and blank lines.
    let messy: String = words
        .iter()
        .map(|w| format!("  {}\r\n\r\n", w.to_uppercase()))
        .collect();
    let data = s.write("messy.txt", messy);
    let model = s.train(&data, "m.safetensors", &["--lowercase", "--seed", "7"]);
    let bytes = std::fs::read(&model).unwrap();
    let meta = charmlp_core::safetensors::parse(&bytes).unwrap().metadata;
    let expected: String =
        sha2::Sha256::digest(words.iter().map(|w| format!("{w}\n")).collect::<String>())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
    assert_eq!(meta.data_sha256, Some(expected.as_str()));
    assert_eq!(meta.seed, Some("7"));
    assert_eq!(
        charmlp::provenance::read(&bytes),
        charmlp::provenance::Provenance {
            seed: Some(7),
            split_seed: Some(42),
            data_sha256: Some(expected.clone()),
            lowercase: true,
            skip_bad_words: false,
        }
    );
    let other = s.train(&s.words(61), "o.safetensors", &["--seed", "7"]);
    let other_bytes = std::fs::read(&other).unwrap();
    let other_meta = charmlp_core::safetensors::parse(&other_bytes)
        .unwrap()
        .metadata;
    assert_ne!(other_meta.data_sha256, meta.data_sha256);
}

/// The learning rate drops halfway through the run unless --lr-decay-step says where: a fixed
/// step 100,000 never came in a run of 20,000 steps.
#[test]
fn the_learning_rate_drops_halfway_unless_told_otherwise() {
    let s = Scratch::new();
    let data = s.words(60);
    let schedule = |extra: &[&str]| {
        let out = stdout_of(
            charmlp()
                .args(["train", "--data"])
                .arg(&data)
                .arg("--out")
                .arg(s.path("m.safetensors"))
                .args(extra),
        );
        let line = out
            .lines()
            .find(|l| l.starts_with("model: "))
            .unwrap()
            .to_string();
        line.split_once(", lr ").unwrap().1.to_string()
    };
    assert_eq!(schedule(&["--steps", "300"]), "0.1 then 0.01 from step 150");
    assert_eq!(schedule(&["--steps", "301"]), "0.1 then 0.01 from step 151");
    assert_eq!(
        schedule(&["--steps", "300", "--lr-decay-step", "20"]),
        "0.1 then 0.01 from step 20"
    );
}

/// `--optimizer` and `--schedule` reach the run: the model line names the rule, its
/// hyperparameters and the schedule with their defaults (AdamW's lr is makemore.py's 5e-4,
/// `--lr-final` a tenth of `--lr`), each rule trains to a finite model, and flags that cannot
/// go together are refused with the way out.
#[test]
fn optimizers_and_schedules_come_from_flags() {
    let s = Scratch::new();
    let data = s.words(60);
    let recipe = |extra: &[&str]| {
        let out = stdout_of(
            charmlp()
                .args(["train", "--steps", "200", "--data"])
                .arg(&data)
                .arg("--out")
                .arg(s.path("m.safetensors"))
                .args(extra),
        );
        let line = out.lines().find(|l| l.starts_with("model: ")).unwrap();
        assert!(out.contains("model: wrote"), "{out}");
        line.split_once("200 steps, ").unwrap().1.to_string()
    };
    assert_eq!(recipe(&[]), "SGD, lr 0.1 then 0.01 from step 100");
    assert_eq!(
        recipe(&["--optimizer", "momentum", "--lr", "0.05"]),
        "SGD with momentum 0.9, lr 0.05 then 0.005 from step 100"
    );
    assert_eq!(
        recipe(&["--optimizer", "nesterov", "--momentum", "0.8"]),
        "SGD with Nesterov momentum 0.8, lr 0.1 then 0.01 from step 100"
    );
    assert_eq!(
        recipe(&["--optimizer", "adamw"]),
        "AdamW (β 0.9/0.99, ε 1e-8, weight decay 0.01), lr 0.0005 then 5e-5 from step 100"
    );
    assert_eq!(
        recipe(&[
            "--optimizer",
            "adamw",
            "--lr",
            "0.01",
            "--schedule",
            "cosine",
            "--warmup",
            "20",
            "--lr-final",
            "0.0001"
        ]),
        "AdamW (β 0.9/0.99, ε 1e-8, weight decay 0.01), lr 0.01 cosine to 0.0001, warm-up 20"
    );
    let refused = |extra: &[&str], why: &str| {
        charmlp()
            .args(["train", "--steps", "200", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(s.path("refused.safetensors"))
            .args(extra)
            .assert()
            .failure()
            .stderr(contains(why));
        assert!(!s.path("refused.safetensors").exists());
    };
    refused(
        &["--warmup", "200"],
        "--warmup 200 is not below --steps 200",
    );
    refused(
        &["--schedule", "cosine", "--lr-decay-step", "5"],
        "leave --lr-decay-step out, or give --schedule step",
    );
    refused(&["--momentum", "1"], "1 is not in [0, 1)");
    refused(
        &["--optimizer", "adamw", "--eps", "1e-300"],
        "not a positive number an f32 holds",
    );
    refused(&["--warmup", "-1"], "\"-1\" is not a whole number from 0");
    refused(&["--seed", "-3"], "\"-3\" is not a whole number from 0");
    refused(
        &["--lr-decay-step", "200"],
        "--lr-decay-step 200 is not below --steps 200",
    );
    refused(&["--beta2", "-0.1"], "-0.1 is not in [0, 1)");
    refused(
        &["--optimizer", "adam"],
        "possible values: sgd, momentum, nesterov, adamw",
    );
}

/// `eval` finds the model's split by itself: the split seed and the reading rules (here
/// `--lowercase`) recorded in the model give train's own losses with no flags; a model trained
/// on the built-in names needs no `--data`; another split seed or another words file is named
/// as such on stderr (its val and test may hold training words); `--split-seed` leaves
/// `--seed` free to vary the initialisation on one split.
#[test]
fn eval_finds_the_models_split_by_itself() {
    let s = Scratch::new();
    let words = s.words(120);
    let upper = s.write(
        "upper.txt",
        std::fs::read_to_string(&words).unwrap().to_uppercase(),
    );
    let model = s.path("m.safetensors");
    let trained = stdout_of(
        charmlp()
            .args([
                "train",
                "--steps",
                "300",
                "--split-seed",
                "7",
                "--lowercase",
                "--data",
            ])
            .arg(&upper)
            .arg("--out")
            .arg(&model),
    );
    let losses = trained
        .lines()
        .find_map(|l| l.strip_prefix("loss: "))
        .unwrap()
        .to_string();
    let eval = |extra: &[&str]| {
        let (stdout, stderr) =
            outputs_of(charmlp().args(["eval", "--model"]).arg(&model).args(extra));
        (stdout.lines().collect::<Vec<_>>().join(" "), stderr)
    };
    let upper_arg = upper.to_str().unwrap();
    let (own, note) = eval(&["--data", upper_arg]);
    assert_eq!(own, losses, "eval of the model's own data and split");
    assert!(note.is_empty(), "{note}");
    let (other, note) = eval(&["--data", upper_arg, "--split-seed", "42"]);
    assert_ne!(other, losses);
    assert!(
        note.contains("--split-seed 42 is not the model's (7)"),
        "{note}"
    );
    let (_, note) = eval(&["--data", words.to_str().unwrap()]);
    assert!(note.is_empty(), "lowercased, the same words: {note}");
    let first_30: String = std::fs::read_to_string(&upper)
        .unwrap()
        .lines()
        .take(30)
        .map(|l| format!("{l}\n"))
        .collect();
    let fewer = s.write("fewer.txt", first_30);
    let (_, note) = eval(&["--data", fewer.to_str().unwrap()]);
    assert!(
        note.contains("is not the data this model was trained on"),
        "{note}"
    );
    charmlp()
        .args(["eval", "--model"])
        .arg(&model)
        .assert()
        .failure()
        .stderr(contains(
            "trained on other words than the built-in names; give its words file with --data FILE",
        ));
    // The built-in names need no --data; two seeds on one split share their validation words.
    let seeded = |seed: &str, name: &str| {
        let out = stdout_of(
            charmlp()
                .args(["train", "--steps", "300", "--seed", seed, "--out"])
                .arg(s.path(name)),
        );
        out.lines()
            .find_map(|l| l.strip_prefix("loss: "))
            .unwrap()
            .to_string()
    };
    let (a, b) = (seeded("1", "a.safetensors"), seeded("2", "b.safetensors"));
    assert_ne!(a, b, "other seeds, other initialisations");
    let (builtin, note) = {
        let out = charmlp()
            .args(["eval", "--model"])
            .arg(s.path("b.safetensors"))
            .assert()
            .success()
            .get_output()
            .clone();
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    assert_eq!(builtin.lines().collect::<Vec<_>>().join(" "), b);
    assert!(note.is_empty(), "{note}");
}

/// `--eval-every` spaces the validation lines; `--eval-examples` evaluates on a fixed subset
/// during training and leaves the training itself, and the final losses over every example,
/// unchanged.
#[test]
fn evaluation_is_spaced_and_subset_by_flags() {
    let s = Scratch::new();
    let run = |extra: &[&str]| {
        stdout_of(
            charmlp()
                .args(["train", "--steps", "1000", "--out"])
                .arg(s.path("m.safetensors"))
                .args(extra),
        )
    };
    let val_lines = |out: &str| out.lines().filter(|l| l.contains(", val ")).count();
    let every = run(&["--eval-every", "100"]);
    assert_eq!(val_lines(&every), 11, "{every}");
    let sparse = run(&["--eval-every", "400"]);
    assert_eq!(
        val_lines(&sparse),
        4,
        "steps 0, 400, 800 and the last: {sparse}"
    );
    let subset = run(&["--eval-every", "400", "--eval-examples", "50"]);
    assert!(
        subset.contains("evaluating during training on 50 of the"),
        "{subset}"
    );
    let final_losses = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("loss: "))
            .unwrap()
            .to_string()
    };
    assert_eq!(final_losses(&subset), final_losses(&sparse));
    let vals = |out: &str| -> Vec<String> {
        out.lines()
            .filter_map(|l| l.split_once(", val ").map(|(_, v)| v[..6].to_string()))
            .collect()
    };
    assert_ne!(
        vals(&subset),
        vals(&sparse),
        "the subset's losses are its own"
    );
    charmlp()
        .args(["train", "--eval-every", "0"])
        .assert()
        .code(2)
        .stderr(contains("0 is not positive"));
}

/// Sampling as makemore reports it: with the training data at hand (here the built-in names
/// the model was trained on), each name is marked train, val, test or new, tab-separated, and
/// a summary counts them on stderr; `--new-only` prints only new names; `--prefix`, `--max-len`
/// and `--top-k` shape the names (top-k 1 is greedy); a model that only repeats training words
/// under `--new-only` ends with a note instead of looping.
#[test]
fn sampled_names_are_marked_as_makemore_reports_them() {
    let s = Scratch::new();
    let model = s.path("m.safetensors");
    stdout_of(
        charmlp()
            .args(["train", "--steps", "3000", "--out"])
            .arg(&model),
    );
    let builtin: std::collections::HashSet<String> =
        include_str!("../../data/census-1990-first-names.txt")
            .lines()
            .map(|l| l.trim().to_lowercase())
            .collect();
    let sample = |extra: &[&str]| {
        outputs_of(
            charmlp()
                .args(["sample", "--model"])
                .arg(&model)
                .args(extra),
        )
    };
    let (names, summary) = sample(&["-n", "300"]);
    let mut counts = std::collections::HashMap::new();
    for line in names.lines() {
        let (name, mark) = line.split_once('\t').expect("name<TAB>mark");
        assert_eq!(mark == "new", !builtin.contains(name), "{line}");
        assert!(["train", "val", "test", "new"].contains(&mark), "{line}");
        *counts.entry(mark).or_insert(0) += 1;
    }
    assert_eq!(names.lines().count(), 300);
    assert!(counts.get("train").copied().unwrap_or(0) > 0, "{counts:?}");
    let expected = format!(
        "new: {} of 300 names",
        counts.get("new").copied().unwrap_or(0)
    );
    assert!(summary.starts_with(&expected), "{summary} vs {expected}");
    let (new, _) = sample(&["-n", "50", "--new-only"]);
    assert_eq!(new.lines().count(), 50);
    assert!(new.lines().all(|l| l.ends_with("\tnew")), "{new}");
    let (prefixed, _) = sample(&["-n", "40", "--prefix", "ma", "--max-len", "4"]);
    for line in prefixed.lines() {
        let name = line.split('\t').next().unwrap();
        assert!(
            name.starts_with("ma") && name.chars().count() <= 4,
            "{line}"
        );
    }
    assert_eq!(
        sample(&["-n", "5", "--top-k", "1"]).0,
        sample(&["-n", "5", "--temperature", "0"]).0
    );
    let (greedy, note) = sample(&["-n", "3", "--temperature", "0", "--new-only"]);
    let first_greedy = sample(&["-n", "1", "--temperature", "0"]).0;
    if first_greedy.ends_with("\tnew\n") {
        assert_eq!(greedy.lines().count(), 3);
    } else {
        assert!(greedy.is_empty(), "{greedy}");
        assert!(
            note.contains(
                "0 new names of the 3 asked for in 1000 names drawn, the last 1000 none new"
            ),
            "{note}"
        );
    }
    charmlp()
        .args(["sample", "--prefix", "Ma", "--model"])
        .arg(&model)
        .assert()
        .code(1)
        .stderr(contains(
            "--prefix \"Ma\": its character 1 ('M') is not in the model's alphabet",
        ));
    let notebook =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/notebook.safetensors");
    charmlp()
        .args(["sample", "--new-only", "--model"])
        .arg(&notebook)
        .assert()
        .code(1)
        .stderr(contains(
            "the model records no training data; give its words file with --data FILE",
        ));
}

/// `--json`: stdout is JSON lines alone, for scripts and notebooks — train's "start", an
/// "eval" per evaluation, "done" and "names"; eval's one object, whose losses are train's.
#[test]
fn json_lines_report_train_and_eval() {
    let s = Scratch::new();
    let model = s.path("m.safetensors");
    let stdout = stdout_of(
        charmlp()
            .args([
                "train",
                "--json",
                "--steps",
                "500",
                "--eval-every",
                "200",
                "--out",
            ])
            .arg(&model),
    );
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["start", "eval", "eval", "eval", "eval", "done", "names"]
    );
    assert_eq!(events[0]["recipe"]["steps"], "500");
    assert_eq!(events[2]["step"], 200);
    assert_eq!(events[2]["lr"], 0.1);
    let done = &events[5];
    assert_eq!(done["model"], model.to_str().unwrap());
    assert_eq!(events[6]["names"].as_array().unwrap().len(), 20);
    let eval = stdout_of(charmlp().args(["eval", "--json", "--model"]).arg(&model));
    let eval: serde_json::Value = serde_json::from_str(eval.trim()).unwrap();
    for split in ["train", "val", "test"] {
        assert_eq!(eval[split], done[split], "{split}");
    }
}

/// `bench --stages` times every stage of the step: one row per stage in the step's order, the
/// products with their FLOP, GFLOP/s and share of a given peak, and a step row; the shares add
/// up to the whole.
#[test]
fn bench_stages_shows_where_the_step_goes() {
    let out = stdout_of(charmlp().args(["bench", "--stages", "--steps", "200", "--peak", "100"]));
    let rows: Vec<&str> = out.lines().skip(2).collect();
    let names: Vec<String> = rows
        .iter()
        .map(|r| r.get(..20).unwrap_or(r).trim().to_string())
        .collect();
    let mut expected = vec!["batch draw".to_string()];
    expected.extend(
        charmlp_core::Stage::ALL
            .iter()
            .map(|s| s.name().to_string()),
    );
    expected.push("step".into());
    assert_eq!(names, expected, "{out}");
    // The share of the step is each row's last plain number (the share of the peak ends in %).
    let share: f64 = rows[..rows.len() - 1]
        .iter()
        .filter_map(|r| {
            r.split_whitespace()
                .rev()
                .find_map(|w| w.parse::<f64>().ok())
        })
        .sum();
    assert!(
        (share - 100.0).abs() < 1.0,
        "the stages' shares add to {share}: {out}"
    );
    let products = rows.iter().filter(|r| r.trim_end().ends_with('%')).count();
    assert_eq!(products, 5, "five products have a share of the peak: {out}");
}

/// `pack` writes a words file's split for flash: each split's examples, decoded from the file
/// as firmware decodes them, are those `train` makes of the same words and split seed, in
/// order; the alphabet is the data's; another split seed gives another file; and its output
/// may not be its input.
#[test]
fn pack_writes_the_split_train_makes() {
    use charmlp::words::Rules;
    use charmlp_core::packed::Packed;
    let s = Scratch::new();
    let mut text = std::fs::read_to_string(s.words(300)).unwrap();
    text.push_str("zoë\nélodie\n");
    let data = s.write("words.txt", text);
    let out = s.path("words.cmlw");
    let printed = stdout_of(
        charmlp()
            .args(["pack", "--split-seed", "7", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&out),
    );
    assert!(printed.contains("302 words"), "{printed}");
    let bytes = std::fs::read(&out).unwrap();
    let packed = Packed::parse(&bytes).unwrap();
    let words = charmlp::data::read_words(Some(&data), &Rules::default()).unwrap();
    assert_eq!(packed.alphabet(), words.chars.iter().collect::<String>());
    assert!(packed.alphabet().contains('ë'));
    let splits = charmlp::data::split::<3>(words.words.clone(), 7).unwrap();
    for (i, want) in [&splits.train, &splits.val, &splits.test]
        .into_iter()
        .enumerate()
    {
        let got: Vec<_> = packed.split(i).examples::<3>().collect();
        assert_eq!(&got, want, "split {i}");
    }
    // --only val: that split alone, the same examples; the others empty.
    let val_only = s.path("val.cmlw");
    charmlp()
        .args(["pack", "--split-seed", "7", "--only", "val", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&val_only)
        .assert()
        .success();
    let val_bytes = std::fs::read(&val_only).unwrap();
    let val_packed = Packed::parse(&val_bytes).unwrap();
    assert!(val_bytes.len() < bytes.len() / 5, "{}", val_bytes.len());
    assert_eq!(val_packed.split(0).examples::<3>().count(), 0);
    assert_eq!(val_packed.split(2).examples::<3>().count(), 0);
    let got: Vec<_> = val_packed.split(1).examples::<3>().collect();
    assert_eq!(got, splits.val);
    let other = s.path("other.cmlw");
    charmlp()
        .args(["pack", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&other)
        .assert()
        .success();
    assert_ne!(std::fs::read(&other).unwrap(), bytes);
    let before = std::fs::read(&data).unwrap();
    charmlp()
        .args(["pack", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&data)
        .assert()
        .failure()
        .stderr(contains("are the same file"));
    assert_eq!(
        std::fs::read(&data).unwrap(),
        before,
        "the words are intact"
    );
}
