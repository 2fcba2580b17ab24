//! The int8 model ([`Int8Model`]) against the f32 model it was quantised from: losses,
//! probabilities, absent symbols, and models no training would make.

use charmlp_core::vocab::CountedExample;
use charmlp_core::{
    BnCalibration, DefaultModel, Example, InferState, Int8Model, Int8State, Model, Params,
    Temperature, Token,
};
use charmlp_workspace::{examples_of, load_names, rng, test_alphabet, trained_default_model};

/// makemore's split of names.txt is not needed here: a fixed 90/10 cut of the names in file
/// order, the default model trained 20,000 steps on the first part and calibrated on it.
fn trained() -> (Box<DefaultModel>, Vec<Example<3>>) {
    let names = load_names();
    let cut = names.len() * 9 / 10;
    let train = examples_of::<3>(&names[..cut]);
    let val = examples_of::<3>(&names[cut..]);
    let mut model = trained_default_model(&train, 20_000, &mut rng(7));
    model
        .calibrate(&train, &mut BnCalibration::new(), &mut InferState::new())
        .unwrap();
    (model, val)
}

/// The README's promise: int8 inference costs names.txt's validation loss less than 0.005 nat
/// (the issue asked 0.02; the full recipe's is 0.0003, `.ci/run`'s int8 check). Per context,
/// no probability moves by more than 0.03 (0.026 seen, over every validation example).
#[test]
fn the_int8_model_is_within_0_005_of_the_f32_models_loss() {
    let (model, val) = trained();
    let q = Int8Model::quantize(&model, 27);
    let f32_loss = model.loss(&val, &mut InferState::new()).unwrap();
    let int8_loss = q.loss_each(val.iter().copied(), &mut Int8State::new());
    let int8 = int8_loss.nats().unwrap();
    assert!(
        (int8 - f32_loss).abs() < 0.005,
        "f32 {f32_loss:.5}, int8 {int8:.5}"
    );
    assert!(f32_loss < 2.6, "the model did not train: {f32_loss}");

    let (mut fs, mut qs) = (InferState::new(), Int8State::new());
    let mut worst = 0.0f64;
    for ex in &val {
        let p = *model.probs(&ex.context, Temperature::ONE, &mut fs);
        let sum = q.weights(&ex.context, &mut qs).get();
        for (k, &pk) in p.iter().enumerate() {
            let qk = f64::from(qs.weights[k]) / f64::from(sum);
            worst = worst.max((qk - f64::from(pk)).abs());
        }
    }
    assert!(worst < 0.03, "a probability moved by {worst}");
}

/// The loss over distinct examples with counts is the loss over every example, to the bit.
#[test]
fn the_counted_loss_is_the_loss_of_every_example() {
    let (model, val) = trained();
    let q = Int8Model::quantize(&model, 27);
    let mut counted: Vec<CountedExample<3>> = Vec::new();
    let mut sorted = val.clone();
    sorted.sort_by_key(|e| (e.context, e.target));
    for ex in sorted {
        match counted.last_mut() {
            Some(c) if c.example == ex => c.count += 1,
            _ => counted.push(CountedExample {
                example: ex,
                count: 1,
            }),
        }
    }
    let mut state = Int8State::new();
    assert_eq!(
        q.loss_counted(&counted, &mut state),
        q.loss_each(val.iter().copied(), &mut state)
    );
}

/// A model of 28 symbols in a capacity of 32: absent symbols weigh 0 and are never drawn; every
/// present one weighs at least 1, however unlikely, so every loss is finite.
#[test]
fn absent_symbols_are_never_drawn_and_present_ones_always_possible() {
    let mut model = Box::new(Model::<32, 10, 3, 64>::zeroed());
    model.init_with_symbols(&mut rng(3), 28);
    // A symbol made very unlikely: its logit 40 nats below the rest.
    model.params.b2[5] = -40.0;
    // Told of more symbols than the model has, quantising keeps the absent ones absent.
    for told in [28, 32] {
        let q = Int8Model::quantize(&model, told);
        assert_eq!(q.symbols(), 28, "told {told}");
    }
    let q = Int8Model::quantize(&model, 28);
    let alphabet = test_alphabet::<32>(28);
    let mut state = Int8State::new();
    let mut r = rng(4);
    for i in 0..=255u8 {
        let context = [
            Token::wrapping(i, 28),
            Token::wrapping(i / 3, 28),
            Token::BOUNDARY,
        ];
        let sum = q.weights(&context, &mut state).get();
        assert!(state.weights[28..].iter().all(|&w| w == 0));
        assert!(state.weights[..28].iter().all(|&w| w >= 1));
        assert_eq!(state.weights.iter().sum::<u32>(), sum);
        assert!(q.draw(&mut r, &context, &mut state).index() < 28);
    }
    for _ in 0..200 {
        let name: heapless::String<64> = q.sample_name(&mut r, &mut state, &alphabet);
        assert!(name.chars().all(|c| alphabet.token(c).is_some()), "{name}");
    }
    let ex = Example {
        context: [Token::BOUNDARY; 3],
        target: Token::wrapping(5, 28),
    };
    let nll = q.nll_bits_q16(&ex, &mut state);
    assert!(nll > 20 << 16, "the unlikely symbol costs only {nll}");
}

/// Models no training makes: zero columns, a huge bias beside zero weights, a variance of 0,
/// huge and tiny weights, infinities and NaNs. Quantising never panics, and neither do the
/// integer forward and sampling.
#[test]
fn quantising_odd_models_never_panics() {
    let base = {
        let mut m = Box::new(DefaultModel::zeroed());
        m.init(&mut rng(9));
        m
    };
    let edits: [fn(&mut Params<27, 10, 3, 64>, &mut charmlp_core::BnStats<64>); 7] = [
        |p, _| p.w1.iter_mut().flatten().for_each(|r| r[3] = 0.0),
        |p, _| {
            p.w2t[4] = [0.0; 64];
            p.b2[4] = 1e30;
        },
        |_, bn| bn.var[7] = 0.0,
        |p, _| p.w1[0][0][0] = 3e38,
        |p, _| p.c[2] = [1e-38; 10],
        |p, _| {
            p.b1[1] = f32::INFINITY;
            p.w2t[0][0] = f32::NEG_INFINITY;
        },
        |p, bn| {
            p.gain[2] = f32::NAN;
            bn.mean[3] = f32::NAN;
            p.c[1][1] = f32::NAN;
        },
    ];
    for (i, edit) in edits.iter().enumerate() {
        let mut m = base.clone();
        let Model { params, bn } = &mut *m;
        edit(params, bn);
        let q = Int8Model::quantize(&m, 27);
        let mut state = Int8State::new();
        let mut r = rng(i as u64);
        for t in 0..27u8 {
            let context = [Token::wrapping(t, 27); 3];
            let sum = q.weights(&context, &mut state).get();
            assert!(sum >= 27, "edit {i}");
            q.draw(&mut r, &context, &mut state);
        }
    }
}
