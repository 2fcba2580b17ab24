//! Conformance with PyTorch: the reference state of `scripts/torch_reference.py` (built in), every
//! forward intermediate, every gradient of both backward paths and ten SGD losses.

use assert_cmd::cargo::cargo_bin_cmd;
use charmlp::check::{BUILTIN, TOLERANCE, rows};
use charmlp_core::conformance::Cmp;

/// The row of `name` from the step-by-step path, or the fast one if `fast`.
fn row<'a>(rows: &'a [Cmp], name: &str, fast: bool) -> &'a Cmp {
    rows.iter()
        .find(|r| r.name == name && r.fast == fast)
        .unwrap()
}

#[test]
fn every_intermediate_gradient_and_loss_matches_pytorch() {
    let rows = rows(BUILTIN).unwrap();
    // 20 forward tensors and 26 gradients of the step-by-step path; 7 activations and 7
    // gradients of the fast path; the ten losses.
    assert_eq!(rows.len(), 20 + 26 + 7 + 7 + 1);
    for r in &rows {
        // Tolerance: maxdiff within 1e-5 of the tensor's scale. Rounding in another summation
        // order leaves at most 1.6e-6 (db1, pure noise) and 5e-7 elsewhere; a wrong formula
        // gives differences of the order of the scale itself.
        assert!(r.approximate, "{r:?}");
        assert!(r.maxdiff <= TOLERANCE * r.scale, "{r:?}");
        let relative = r.maxdiff / r.scale;
        let bound = if r.name == "db1" { 2e-6 } else { 6e-7 };
        assert!(relative <= bound, "{r}: {relative:e} of its scale");
    }
    // Gathering embeddings and the loss's gradient are copies and a constant: bit for bit.
    for name in ["emb", "embcat", "dlogprobs"] {
        assert!(row(&rows, name, false).exact, "{name}");
    }
    // The loss of the reference batch, and the ten losses of training from there.
    assert!(row(&rows, "loss", false).maxdiff <= 5e-7);
    assert!(row(&rows, "loss", true).maxdiff <= 5e-7);
    assert!(row(&rows, "steps_loss", true).maxdiff <= 1e-6);
}

/// The reference with one value of `name` scaled by `factor`.
fn tampered(name: &str, index: usize, factor: f32) -> Vec<u8> {
    let mut bytes = BUILTIN.to_vec();
    let st = safetensors::SafeTensors::deserialize(BUILTIN).unwrap();
    let at =
        st.tensor(name).unwrap().data().as_ptr() as usize - BUILTIN.as_ptr() as usize + 4 * index;
    let x = f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) * factor;
    bytes[at..at + 4].copy_from_slice(&x.to_le_bytes());
    bytes
}

#[test]
fn a_reference_one_value_off_is_caught_by_its_row_alone() {
    // 0.1% off in one element of one gradient: beyond rounding, far below a plain bug.
    for name in ["dW1", "dhpreact", "bnvar_inv", "steps_loss"] {
        let rows = rows(&tampered(name, 3, 1.001)).unwrap();
        let failing: Vec<&str> = rows
            .iter()
            .filter(|r| !r.approximate)
            .map(|r| r.name)
            .collect();
        assert!(
            failing.iter().all(|f| *f == name) && !failing.is_empty(),
            "{name}: {failing:?}"
        );
    }
    // An infinite value in the reference proves nothing: its row fails (maxdiff ∞ ≤ 1e-5·∞
    // would otherwise hold).
    let rows = rows(&tampered("dW1", 0, f32::INFINITY)).unwrap();
    assert!(rows.iter().any(|r| r.name == "dW1" && !r.approximate));
}

#[test]
fn the_check_command_prints_the_notebooks_table_and_fails_on_a_mismatch() {
    let out = cargo_bin_cmd!("charmlp")
        .arg("check")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("dW1                  | exact: false | approximate: true  | maxdiff: "),
        "{out}"
    );
    assert!(out.contains("61 of 61 tensors approximate"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("off.safetensors");
    std::fs::write(&path, tampered("dhprebn", 0, 1.5)).unwrap();
    let out = cargo_bin_cmd!("charmlp")
        .args(["check", "--reference"])
        .arg(&path)
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("dhprebn              | exact: false | approximate: false"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("off.safetensors: 1 tensor differs from PyTorch's")
            && stderr.trim_end().ends_with(": dhprebn"),
        "{stderr}"
    );
    // Endless input stops at the bound, at once.
    cargo_bin_cmd!("charmlp")
        .args(["check", "--reference", "/dev/zero"])
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .code(1)
        .stderr(predicates::str::contains("longer than a reference state"));
    // A reference without a tensor names it.
    let st = safetensors::SafeTensors::deserialize(BUILTIN).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(name, _)| name != "dbnvar")
        .collect();
    let refused = |bytes: &[u8], needle: &str| {
        std::fs::write(&path, bytes).unwrap();
        cargo_bin_cmd!("charmlp")
            .args(["check", "--reference"])
            .arg(&path)
            .assert()
            .code(1)
            .stderr(predicates::str::contains(needle));
    };
    refused(
        &safetensors::serialize(kept, None).unwrap(),
        "no tensor dbnvar in the reference state",
    );
    // Not a reference: one clear error.
    refused(b"nonsense", "off.safetensors: not a reference state");
}
