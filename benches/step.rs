//! Latency of the model's operations, for hidden 64 and 200 with batch 32 on makemore's
//! names: `cargo bench --bench step` (add a filter, e.g. `-- train_step`, for one).

use charmlp_core::reference::ReferenceState;
use charmlp_core::{
    Alphabet, Batch, BnCalibration, CONTEXT, EMBED, Example, InferRows, InferState, Model, NoMarks,
    Params, Temperature, TrainState, Transposed, VOCAB, VOCAB_PADDED, padded, train_step,
};
use charmlp_workspace::{examples_of, load_names, rng};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, Instant};

const B: usize = 32;

/// A trained-looking model (a few hundred steps in) and 64 pre-drawn batches.
struct Setup<const H: usize> {
    model: Box<Model<VOCAB, EMBED, CONTEXT, H>>,
    grads: Box<Params<VOCAB, EMBED, CONTEXT, H>>,
    state: Box<TrainState<VOCAB_PADDED, H, B>>,
    batches: Vec<Batch<CONTEXT, B>>,
}

fn setup<const H: usize>(train: &[Example<CONTEXT>]) -> Setup<H> {
    let mut r = rng(1);
    let mut s = Setup {
        model: Box::new(Model::zeroed()),
        grads: Box::new(Params::zeroed()),
        state: Box::new(TrainState::new()),
        batches: Vec::new(),
    };
    s.model.init(&mut r);
    for _ in 0..64 {
        let mut b = Batch::new();
        b.sample(&mut r, train).unwrap();
        s.batches.push(b);
    }
    for i in 0..300 {
        let batch = &s.batches[i % 64];
        train_step(&mut s.model, &mut s.grads, &mut s.state, batch, 0.1);
    }
    s
}

fn bench_hidden<const H: usize>(
    c: &mut Criterion,
    train: &[Example<CONTEXT>],
    val: &[Example<CONTEXT>],
) {
    let mut s = setup::<H>(train);
    let mut g = c.benchmark_group(format!("hidden{H}"));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));

    let mut i = 0;
    g.bench_function("train_step", |b| {
        b.iter(|| {
            i = (i + 1) % 64;
            // lr 0: the same work as a real step, without drifting the model over millions of iterations.
            train_step(
                &mut s.model,
                &mut s.grads,
                &mut s.state,
                &s.batches[i],
                black_box(0.0),
            )
        })
    });
    // The host's step: products against transposed copies of W2ᵀ and W1 (`charmlp train` and
    // `charmlp bench` run this one).
    let mut copies = Box::new(Transposed::<VOCAB_PADDED, { padded(CONTEXT * EMBED) }, H>::new());
    g.bench_function("train_step_transposed", |b| {
        b.iter(|| {
            i = (i + 1) % 64;
            charmlp_core::step(
                &mut s.model,
                &mut s.grads,
                None,
                &mut s.state,
                &mut *copies,
                &s.batches[i],
                black_box(0.0),
                &mut NoMarks,
            )
        })
    });
    g.bench_function("forward", |b| {
        b.iter(|| {
            i = (i + 1) % 64;
            s.state.forward(&s.model.params, &s.batches[i]).loss()
        })
    });
    g.bench_function("backward_fused", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                i = (i + 1) % 64;
                let forward = s.state.forward(&s.model.params, &s.batches[i]);
                let t = Instant::now();
                forward.backward(&mut s.grads);
                total += t.elapsed();
            }
            total
        })
    });
    let mut reference = Box::new(ReferenceState::<VOCAB, EMBED, CONTEXT, H, B>::new());
    g.bench_function("backward_reference", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                i = (i + 1) % 64;
                reference.forward(&s.model.params, &s.batches[i]);
                let t = Instant::now();
                reference.backward(&s.model.params, &s.batches[i], &mut s.grads);
                total += t.elapsed();
            }
            total
        })
    });

    let mut st = InferState::new();
    s.model
        .calibrate(train, &mut BnCalibration::new(), &mut st)
        .unwrap();
    g.bench_function("next_char_probs", |b| {
        b.iter(|| {
            i = (i + 1) % 64;
            s.model.probs(&s.batches[i].x[0], Temperature::ONE, &mut st)[0]
        })
    });
    let mut sample_rng = rng(2);
    g.bench_function("sample_name", |b| {
        b.iter(|| {
            let name: heapless::String<64> = s.model.sample_name(
                &mut sample_rng,
                Temperature::ONE,
                &mut st,
                &Alphabet::MAKEMORE,
            );
            name
        })
    });
    g.sample_size(10);
    g.bench_with_input(BenchmarkId::new("eval_split", val.len()), val, |b, val| {
        b.iter(|| s.model.loss(val, &mut st))
    });
    // A host's evaluation, calibration and sampling: 32 contexts side by side.
    let mut rows = Box::new(InferRows::<VOCAB, VOCAB_PADDED, H, 32>::new());
    // What `eval` and validation run: one forward per distinct context, counting included.
    g.bench_with_input(
        BenchmarkId::new("eval_split_counted", val.len()),
        val,
        |b, val| {
            b.iter(|| {
                s.model
                    .loss_counted(&charmlp::data::counted(val), &mut rows)
            })
        },
    );
    let contexts: [[charmlp_core::Token; CONTEXT]; 32] = core::array::from_fn(|j| val[j].context);
    g.bench_function("next_char_probs_32_rows", |b| {
        b.iter(|| {
            s.model
                .probs_rows(black_box(&contexts), Temperature::ONE, None, &mut rows);
            rows.logits[0][0]
        })
    });
    let mut acc = Box::new(BnCalibration::new());
    let mut model = s.model.clone();
    g.bench_with_input(
        BenchmarkId::new("calibrate", train.len()),
        train,
        |b, train| b.iter(|| model.calibrate(train, &mut acc, &mut st)),
    );
    g.bench_with_input(
        BenchmarkId::new("calibrate_counted", train.len()),
        train,
        |b, train| {
            b.iter(|| {
                let counted = charmlp::data::counted(train);
                model.calibrate_counted(&counted, &mut acc, &mut rows)
            })
        },
    );
    g.finish();
}

fn benches(c: &mut Criterion) {
    let words = load_names();
    let n1 = words.len() * 8 / 10;
    let n2 = words.len() * 9 / 10;
    let train = examples_of::<CONTEXT>(&words[..n1]);
    let val = examples_of::<CONTEXT>(&words[n1..n2]);
    bench_hidden::<64>(c, &train, &val);
    bench_hidden::<200>(c, &train, &val);
}

criterion_group!(step, benches);
criterion_main!(step);
