//! Every gradient of the fused and of the reference backward against central finite differences
//! of an independent f64 forward (`charmlp_workspace::loss_f64`).

use charmlp_core::reference::ReferenceState;
use charmlp_core::{Params, TrainState};
use charmlp_workspace::{FlatParams, numeric_grad, random_batch, rng};

/// Per tensor: largest |analytic − numeric| and largest |numeric|, for fused and reference.
struct TensorErrors {
    name: &'static str,
    fused: f64,
    reference: f64,
    scale: f64,
}

/// Which entries of a tensor a check differentiates numerically.
#[derive(Clone, Copy)]
enum Entries {
    All,
    /// About this many per tensor, evenly spaced (every entry of a smaller tensor).
    About(usize),
}

/// Checks the chosen entries of every tensor of one random model of `symbols` present
/// symbols (the rest of V absent) on one random batch. The reference path runs only where no
/// symbol is absent (its dprobs = dlogprobs / probs is 0 / 0 for an absent one); elsewhere its
/// column repeats the fused one.
fn gradient_errors<
    const V: usize,
    const VP: usize,
    const E: usize,
    const T: usize,
    const H: usize,
    const B: usize,
>(
    seed: u64,
    entries: Entries,
    symbols: usize,
) -> Vec<TensorErrors> {
    let mut rng = rng(seed);
    let mut params = Box::new(Params::<V, E, T, H>::zeroed());
    params.init_with_symbols(&mut rng, symbols);
    let batch = random_batch::<T, B>(&mut rng, symbols);

    let mut state = Box::new(TrainState::<VP, H, B>::new());
    let mut fused = Box::new(Params::<V, E, T, H>::zeroed());
    state.forward(&params, &batch).backward(&mut fused);

    let mut reference = fused.clone();
    if symbols == V {
        let mut reference_state = Box::new(ReferenceState::<V, E, T, H, B>::new());
        reference_state.forward(&params, &batch);
        reference_state.backward(&params, &batch, &mut reference);
    }

    let mut flat = FlatParams::of(&params);
    let mut out = Vec::new();
    for (ti, name) in Params::<V, E, T, H>::NAMES.into_iter().enumerate() {
        let (f, r) = (fused.tensors()[ti], reference.tensors()[ti]);
        let mut e = TensorErrors {
            name,
            fused: 0.0,
            reference: 0.0,
            scale: 0.0,
        };
        let stride = match entries {
            Entries::All => 1,
            Entries::About(n) => (f.len() / n).max(1),
        };
        // Offset the stride by the seed so that sampled checks cover different entries.
        for i in (seed as usize % stride..f.len()).step_by(stride) {
            let n = numeric_grad::<V, E, T, H, B>(&mut flat, &batch, ti, i, 1e-4);
            e.fused = e.fused.max((f64::from(f[i]) - n).abs());
            e.reference = e.reference.max((f64::from(r[i]) - n).abs());
            e.scale = e.scale.max(n.abs());
        }
        out.push(e);
    }
    out
}

/// Tolerance per tensor: |analytic − numeric| ≤ RTOL·max|numeric| + ATOL.
///
/// The analytic gradients are f32 sums of up to B·H terms, so their rounding error is about
/// √(B·H)·2⁻²⁴ ≈ 3e-6 of the largest gradient at worst; the f64 central differences with step
/// 1e-4 are good to ~1e-8. Seen: at most 3.2e-6 relative (usually ~3e-7) and 5e-8 absolute
/// for b1, whose true gradient is zero (batch norm cancels it). A wrong derivation (a dropped
/// Bessel factor, a missing term of dcounts) errs by 1e-2 or more.
const RTOL: f64 = 2e-5;
const ATOL: f64 = 2e-7;

fn assert_close(label: &str, errs: &[TensorErrors]) {
    for e in errs {
        let bound = RTOL * e.scale + ATOL;
        eprintln!(
            "{label} {:>4}: max|grad| {:.3e}  max err fused {:.2e}, reference {:.2e}  (bound {:.2e})",
            e.name, e.scale, e.fused, e.reference, bound
        );
        assert!(
            e.fused <= bound,
            "{label} {}: fused gradient off by {:.3e}",
            e.name,
            e.fused
        );
        assert!(
            e.reference <= bound,
            "{label} {}: reference gradient off by {:.3e}",
            e.name,
            e.reference
        );
    }
    // A check against an all-zero gradient would prove nothing.
    assert!(
        errs.iter().filter(|e| e.scale > 1e-3).count() >= 6,
        "{label}: gradients vanish"
    );
}

#[test]
fn small_models_every_entry() {
    for seed in 0..4 {
        assert_close(
            "V27 E4 T3 H8 B8",
            &gradient_errors::<27, 32, 4, 3, 8, 8>(seed, Entries::All, 27),
        );
        // An odd batch and a two-character context.
        assert_close(
            "V27 E2 T2 H16 B5",
            &gradient_errors::<27, 32, 2, 2, 16, 5>(100 + seed, Entries::All, 27),
        );
        // A vocabulary of exactly 8, 16 and 128: no padding of the logits rows.
        assert_close(
            "V8 E3 T2 H8 B6",
            &gradient_errors::<8, 8, 3, 2, 8, 6>(200 + seed, Entries::All, 8),
        );
        assert_close(
            "V128 E3 T2 H8 B6",
            &gradient_errors::<128, 128, 3, 2, 8, 6>(300 + seed, Entries::All, 128),
        );
    }
}

#[test]
fn absent_symbols_have_zero_gradients_and_leave_the_rest_exact() {
    for seed in 0..4 {
        // 11 symbols in a capacity of 40: the 29 absent ones get gradient exactly 0 (checked
        // numerically too: their loss does not depend on them) …
        let errs = gradient_errors::<40, 40, 4, 3, 8, 8>(400 + seed, Entries::All, 11);
        assert_close("V40(11) E4 T3 H8 B8", &errs);
        // … and the present ones the gradients of a model of exactly 11 symbols, bit for bit.
        let mut r = rng(500 + seed);
        let mut exact = Box::new(Params::<11, 4, 3, 8>::zeroed());
        exact.init(&mut r);
        let mut padded = Box::new(Params::<40, 4, 3, 8>::zeroed());
        padded.init_with_symbols(&mut rng(500 + seed), 11);
        let batch = random_batch::<3, 8>(&mut r, 11);
        let mut g_exact = Box::new(Params::<11, 4, 3, 8>::zeroed());
        let mut g_padded = Box::new(Params::<40, 4, 3, 8>::zeroed());
        let loss_exact = TrainState::<16, 8, 8>::new().forward(&exact, &batch).loss();
        let mut state = TrainState::<40, 8, 8>::new();
        let forward = state.forward(&padded, &batch);
        assert_eq!(forward.loss().to_bits(), loss_exact.to_bits());
        forward.backward(&mut g_padded);
        TrainState::<16, 8, 8>::new()
            .forward(&exact, &batch)
            .backward(&mut g_exact);
        for (ti, name) in Params::<11, 4, 3, 8>::NAMES.into_iter().enumerate() {
            let (e, p) = (g_exact.tensors()[ti], g_padded.tensors()[ti]);
            let present = &p[..e.len()];
            assert_eq!(
                present.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                e.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "{name}"
            );
            assert!(p[e.len()..].iter().all(|&x| x == 0.0), "{name}");
        }
    }
}

#[test]
fn default_model_every_entry() {
    for seed in [7, 8] {
        assert_close(
            "E10 T3 H64 B32",
            &gradient_errors::<27, 32, 10, 3, 64, 32>(seed, Entries::All, 27),
        );
    }
}

#[test]
fn hidden_200_about_500_entries_a_tensor() {
    assert_close(
        "E10 T3 H200 B32",
        &gradient_errors::<27, 32, 10, 3, 200, 32>(9, Entries::About(500), 27),
    );
}

/// Every shape of the host's menu (`charmlp::menu!`, the lists the binary is built from), with
/// every symbol present: about 40 entries of each tensor against finite differences, and the
/// fused backward against the reference's on every entry.
#[test]
fn every_menu_shape_passes_the_gradient_check() {
    use charmlp::shapes::{CAPACITIES, CONTEXTS, EMBED_WIDTHS, HIDDEN_WIDTHS};
    use charmlp::{dispatch, menu};
    macro_rules! check {
        ($v:literal, $vp:literal, $e:literal, $t:literal, $h:literal, ($seed:expr)) => {{
            let label = format!("V{} E{} T{} H{} B6", $v, $e, $t, $h);
            assert_close(
                &label,
                &gradient_errors::<$v, $vp, $e, $t, $h, 6>($seed, Entries::About(40), $v),
            );
            Some(())
        }};
    }
    let mut checked = 0;
    for &v in CAPACITIES {
        for &e in EMBED_WIDTHS {
            for &t in CONTEXTS {
                for &h in HIDDEN_WIDTHS {
                    let seed = (v * 1_000_000 + e * 10_000 + t * 1000 + h) as u64;
                    menu!(dispatch!((v, e, t, h) check (seed);)).expect("a menu shape");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(
        checked,
        CAPACITIES.len() * EMBED_WIDTHS.len() * CONTEXTS.len() * HIDDEN_WIDTHS.len()
    );
}
