//! The hand-written optimizers against PyTorch's: a few steps of `torch.optim.SGD` (plain, with
//! momentum, with Nesterov momentum) and `torch.optim.AdamW` on the same parameters and
//! gradients, with the learning rate changing between steps, as `scripts/torch_optim.py`
//! recorded them in `tests/data/torch_optim.safetensors` (PyTorch 2.15.0).

use charmlp_core::conformance::Cmp;
use charmlp_core::{Optim, Optimizer, Params};
use safetensors::SafeTensors;

/// The shape whose seven tensors the script's 337 parameters are, flattened in order.
type P = Params<27, 2, 1, 8>;

const FILE: &[u8] = include_bytes!("data/torch_optim.safetensors");

fn tensor<T: bytemuck_free::FromLe>(file: &SafeTensors<'_>, name: &str) -> Vec<T> {
    let view = file.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    view.data().chunks_exact(T::SIZE).map(T::from_le).collect()
}

/// Little-endian floats from bytes, without a dependency for two types.
mod bytemuck_free {
    pub trait FromLe {
        const SIZE: usize;
        fn from_le(b: &[u8]) -> Self;
    }
    impl FromLe for f32 {
        const SIZE: usize = 4;
        fn from_le(b: &[u8]) -> Self {
            f32::from_le_bytes(b.try_into().expect("4 bytes"))
        }
    }
    impl FromLe for f64 {
        const SIZE: usize = 8;
        fn from_le(b: &[u8]) -> Self {
            f64::from_le_bytes(b.try_into().expect("8 bytes"))
        }
    }
}

fn fill(p: &mut P, flat: &[f32]) {
    let mut rest = flat;
    for t in p.tensors_mut() {
        let (head, tail) = rest.split_at(t.len());
        t.copy_from_slice(head);
        rest = tail;
    }
    assert!(rest.is_empty());
}

fn flat(p: &P) -> Vec<f32> {
    p.tensors().concat()
}

/// Runs `rule` over the recorded steps and compares the parameters after each with PyTorch's:
/// within 1e-6 of their scale (a few ulps: ATen's kernels may round a product or a quotient
/// differently), and returns the rows for a failure message.
fn against_torch(name: &'static str, rule: Optimizer) -> Vec<Cmp> {
    let file = SafeTensors::deserialize(FILE).expect("the committed reference");
    let p0: Vec<f32> = tensor(&file, "p0");
    let grads: Vec<f32> = tensor(&file, "grads");
    let lrs: Vec<f64> = tensor(&file, &format!("{name}_lr"));
    let after: Vec<f32> = tensor(&file, name);
    assert_eq!(p0.len(), P::COUNT);
    let (mut params, mut g) = (P::zeroed(), P::zeroed());
    fill(&mut params, &p0);
    let mut optim = Optim::new(rule);
    let mut rows = Vec::new();
    for (step, lr) in lrs.iter().enumerate() {
        fill(&mut g, &grads[step * P::COUNT..][..P::COUNT]);
        optim.update(&mut params, &g, *lr as f32);
        let theirs = &after[step * P::COUNT..][..P::COUNT];
        let scale = theirs.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let ours = flat(&params);
        rows.push(Cmp::new(name, false, ours.into_iter(), theirs.iter().copied(), scale).unwrap());
    }
    rows
}

fn assert_close(rows: &[Cmp]) {
    for row in rows {
        eprintln!("{row}");
    }
    for (step, row) in rows.iter().enumerate() {
        assert!(
            row.maxdiff <= 1e-6 * row.scale,
            "step {step}: {row}\n{}",
            rows.iter().map(|r| format!("{r}\n")).collect::<String>()
        );
    }
}

#[test]
fn sgd_is_torchs() {
    let rows = against_torch("sgd", Optimizer::Sgd);
    assert_close(&rows);
}

#[test]
fn momentum_is_torchs() {
    let rule = Optimizer::Momentum {
        momentum: 0.9,
        nesterov: false,
    };
    assert_close(&against_torch("momentum", rule));
}

#[test]
fn nesterov_momentum_is_torchs() {
    let rule = Optimizer::Momentum {
        momentum: 0.9,
        nesterov: true,
    };
    assert_close(&against_torch("nesterov", rule));
}

#[test]
fn adamw_with_makemores_defaults_is_torchs() {
    assert_close(&against_torch("adamw", Optimizer::ADAMW_MAKEMORE));
}

/// The rules differ: each recorded trajectory is far from the others', so a test above that
/// ran the wrong rule would fail.
#[test]
fn the_recorded_rules_differ() {
    let plain = against_torch("momentum", Optimizer::Sgd);
    assert!(plain.last().unwrap().maxdiff > 1e-2, "{:?}", plain.last());
    let heavy = against_torch(
        "nesterov",
        Optimizer::Momentum {
            momentum: 0.9,
            nesterov: false,
        },
    );
    assert!(heavy.last().unwrap().maxdiff > 1e-3, "{:?}", heavy.last());
    let adam = against_torch("adamw", Optimizer::Sgd);
    assert!(adam.last().unwrap().maxdiff > 1e-3, "{:?}", adam.last());
}
