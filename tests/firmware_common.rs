//! The firmware's architecture-free code (`firmware/src/common.rs`, which every image includes)
//! run on the host: the examples an evaluating image builds one by one, integer printing, and
//! the training run every core executes.

#[allow(dead_code)]
#[path = "../firmware/src/common.rs"]
mod common;

use common::{EXAMPLES, Fixed4, N_EXAMPLES, Training, name_examples};

#[test]
fn name_examples_are_the_tables() {
    let built: Vec<_> = name_examples().collect();
    assert_eq!(built.len(), N_EXAMPLES);
    assert_eq!(built, EXAMPLES);
}

#[test]
fn fixed4_prints_four_decimals_as_formatting_rounds_them() {
    for (x, want) in [
        (0.0, "0.0000"),
        (-0.0, "0.0000"),
        (1.8707187, "1.8707"),
        (2.10125, "2.1013"),
        (0.99995, "1.0000"),
        (123_456.000_04, "123456.0000"),
        (f64::NAN, "NaN"),
        (-1e-9, "negative"),
        (1e15, "inf"),
        (f64::INFINITY, "inf"),
    ] {
        assert_eq!(Fixed4(x).to_string(), want, "{x}");
    }
    // Away from ties, what `{:.4}` prints.
    for i in 0..2_000 {
        let x = f64::from(i) * 0.001_234_567 + 1e-7;
        assert_eq!(Fixed4(x).to_string(), format!("{x:.4}"), "{x}");
    }
}

/// The train image's run on the host: the loss falls, and its lines are those the devices
/// print (run.sh diffs every core's against the Cortex-M4F's; here, the host's f32 gives the
/// same first loss, a check that the run is the one the README's figures come from).
#[test]
fn the_training_run_every_core_executes_lowers_the_loss() {
    let mut t = Box::new(Training::new());
    let mut lines = Vec::new();
    let fell = common::train_run(&mut t, &mut |line| lines.push(line.to_string()));
    assert!(fell, "{lines:#?}");
    assert_eq!(lines[0], "step 0: loss 3.4620912", "{lines:#?}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("name: ")).count(), 5);
}

/// The devices' streams are the host's: the recipe and int8 images draw `charmlp sample`'s names.
#[test]
fn the_firmwares_streams_are_the_hosts() {
    use rand_core::Rng;
    for (which, host) in [
        (1, charmlp::Stream::Init),
        (2, charmlp::Stream::Batches),
        (3, charmlp::Stream::Samples),
    ] {
        for seed in [0, 42, u64::MAX] {
            let (mut device, mut host) = (common::stream(seed, which), charmlp::stream(seed, host));
            assert_eq!(
                device.next_u64(),
                host.next_u64(),
                "stream {which} of {seed}"
            );
        }
    }
}
