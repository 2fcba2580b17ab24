//! The C API driven from Rust: every function against charmlp-core or the CLI's own code, and
//! every error path (each returns its code and leaves the caller's model as it was).

use charmlp::{Stream, stream};
use charmlp_core::in_place::{InPlaceScratch, train_step_in_place};
use charmlp_core::{
    Alphabet, Batch, BnCalibration, Example, InferState, Model, Sampling, Temperature, Token,
    TrainState, padded,
};
use charmlp_ffi::*;
use rand_core::Rng;
use std::ffi::{CStr, CString, c_char};
use std::ptr::{null, null_mut};

const V: usize = CHARMLP_LIB_CAPACITY;
const E: usize = CHARMLP_LIB_EMBED;
const T: usize = CHARMLP_LIB_CONTEXT;
const H: usize = CHARMLP_LIB_HIDDEN;
const B: usize = CHARMLP_LIB_BATCH;
type Lib = Model<V, E, T, H>;
type Makemore = Model<27, E, T, H>;

/// Zeroed storage for one `charmlp_model`, as a C `static` is.
struct Storage(Box<[u32; CHARMLP_MODEL_WORDS]>);

impl Storage {
    fn new() -> Self {
        Storage(Box::new([0; CHARMLP_MODEL_WORDS]))
    }
    fn ptr(&mut self) -> *mut charmlp_model {
        self.0.as_mut_ptr().cast()
    }
    fn loaded(bytes: &[u8]) -> Self {
        let mut s = Storage::new();
        assert_eq!(
            unsafe { charmlp_model_load(s.ptr(), bytes.as_ptr(), bytes.len()) },
            0
        );
        s
    }
    fn written(&mut self) -> Vec<u8> {
        let mut len = 0;
        let p = self.ptr();
        assert_eq!(
            unsafe { charmlp_model_write(p, null_mut(), 0, &mut len) },
            CHARMLP_ERR_BUFFER
        );
        let mut out = vec![0u8; len];
        let enough = len;
        assert_eq!(
            unsafe { charmlp_model_write(p, out.as_mut_ptr(), len, &mut len) },
            0
        );
        assert!(len <= enough);
        out.truncate(len);
        out
    }
    fn probs(&mut self, context: [u8; T], t: f32, top_k: u32) -> Result<Vec<f32>, i32> {
        let mut p = vec![0f32; V];
        let code = unsafe {
            charmlp_probs(
                self.ptr(),
                context.as_ptr(),
                t,
                top_k,
                p.as_mut_ptr(),
                p.len(),
            )
        };
        let mut shape = charmlp_shape {
            symbols: 0,
            embed: 0,
            context: 0,
            hidden: 0,
        };
        if code != 0 {
            return Err(code);
        }
        assert_eq!(unsafe { charmlp_model_shape(self.ptr(), &mut shape) }, 0);
        p.truncate(shape.symbols as usize);
        Ok(p)
    }
    fn name(&mut self, seed: u64, index: u64) -> Result<String, i32> {
        let mut buf = [0 as c_char; CHARMLP_NAME_BYTES + 1];
        let mut len = 0;
        let code = unsafe {
            charmlp_sample(
                self.ptr(),
                seed,
                index,
                1.0,
                0,
                buf.as_mut_ptr(),
                buf.len(),
                &mut len,
            )
        };
        if code != 0 {
            return Err(code);
        }
        let name = unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(name.len(), len);
        Ok(name)
    }
}

/// Trainer storage, as a C `static` is.
type TrainerWords = Box<[u32; CHARMLP_TRAINER_WORDS]>;

/// `charmlp_train_step` on `lib` with the batch `(x, y)`.
fn train_step(
    lib: &mut Storage,
    trainer: &mut TrainerWords,
    (x, y): &([[u8; T]; B], [u8; B]),
    lr: f32,
    loss: *mut f32,
) -> i32 {
    let (model, trainer) = (lib.ptr(), trainer.as_mut_ptr().cast());
    unsafe {
        charmlp_train_step(
            model,
            trainer,
            x.as_flattened().as_ptr(),
            y.as_ptr(),
            lr,
            loss,
        )
    }
}

/// A makemore model (a–z) as the CLI would load it: initialised, with batch-norm statistics
/// that are not the identity.
fn makemore_model(seed: u64) -> Box<Makemore> {
    let mut m = Box::new(Makemore::zeroed());
    m.init(&mut stream(seed, Stream::Init));
    for (j, (mean, var)) in m.bn.mean.iter_mut().zip(&mut m.bn.var).enumerate() {
        (*mean, *var) = (0.3 * (j as f32).sin(), 0.5 + 0.01 * j as f32);
    }
    m
}

fn safetensors_of(m: &Makemore) -> Vec<u8> {
    let mut out = vec![0u8; 1 << 20];
    let n = m
        .write_safetensors(&Alphabet::MAKEMORE, &[], &mut out)
        .unwrap();
    out.truncate(n);
    out
}

fn cmlp_of(m: &Makemore) -> Vec<u8> {
    let mut out = vec![0u8; Makemore::MAX_BYTES];
    let n = m.write_bytes(&Alphabet::MAKEMORE, &mut out).unwrap();
    out.truncate(n);
    out
}

/// A model's tensors and symbols, as a header from `charmlp export --lang c` holds them.
struct Arrays {
    tensors: Vec<Vec<f32>>,
    symbols: Vec<CString>,
    symbol_ptrs: Vec<*const c_char>,
}

impl Arrays {
    fn of(m: &Makemore) -> Arrays {
        let tensors = m.file_tensors(27).iter().map(|(_, x)| x.to_vec()).collect();
        let symbols: Vec<CString> = std::iter::once(CString::default())
            .chain(
                Alphabet::MAKEMORE
                    .chars()
                    .iter()
                    .map(|c| CString::new(c.to_string()).unwrap()),
            )
            .collect();
        let symbol_ptrs = symbols.iter().map(|s| s.as_ptr()).collect();
        Arrays {
            tensors,
            symbols,
            symbol_ptrs,
        }
    }
    fn c(&self) -> charmlp_arrays {
        let t = |i: usize| self.tensors[i].as_ptr();
        charmlp_arrays {
            vocab: self.symbol_ptrs.len() as u32,
            embed: E as u32,
            context: T as u32,
            hidden: H as u32,
            symbols: self.symbol_ptrs.as_ptr(),
            c: t(0),
            w1: t(1),
            b1: t(2),
            gain: t(3),
            bias: t(4),
            w2t: t(5),
            b2: t(6),
            bn_mean: t(7),
            bn_var: t(8),
        }
    }
}

fn contexts() -> Vec<[u8; T]> {
    let mut rng = stream(5, Stream::Batches);
    let mut out = vec![[0, 0, 0], [0, 0, 5], [13, 13, 1]];
    out.extend((0..40).map(|_| std::array::from_fn(|_| (rng.next_u32() % 27) as u8)));
    out
}

/// The same model of this library's type, loaded by charmlp-core itself.
fn lib_model(bytes: &[u8]) -> (Box<Lib>, Alphabet<V>) {
    let mut m = Box::new(Lib::zeroed());
    let mut a = Alphabet::new(&[]).unwrap_or(Alphabet::<V>::new(&['a']).unwrap());
    m.read_safetensors(&mut a, bytes, None).unwrap();
    (m, a)
}

#[test]
fn bytes_cmlp_and_arrays_load_the_same_model_as_the_core() {
    let m = makemore_model(1);
    let st = safetensors_of(&m);
    let mut from_st = Storage::loaded(&st);
    let mut from_cmlp = Storage::loaded(&cmlp_of(&m));
    let arrays = Arrays::of(&m);
    let mut from_arrays = Storage::new();
    assert_eq!(
        unsafe { charmlp_model_load_arrays(from_arrays.ptr(), &arrays.c()) },
        CHARMLP_OK
    );
    let written = from_st.written();
    assert_eq!(from_cmlp.written(), written);
    assert_eq!(from_arrays.written(), written);
    assert_eq!(written, st, "writing gives back the file read");

    let (core, _) = lib_model(&st);
    let mut state = InferState::new();
    for context in contexts() {
        let tokens = context.map(|ix| Token::from_index(ix).unwrap());
        for (t, k) in [(1.0, 0), (0.7, 0), (1.0, 5), (0.0, 0)] {
            let expected = core.probs_top_k(
                &tokens,
                Temperature::new(t).unwrap(),
                (k > 0).then_some(k as usize),
                &mut state,
            );
            let got = from_arrays.probs(context, t, k).unwrap();
            assert_eq!(
                got,
                expected[..27],
                "context {context:?}, temperature {t}, top-k {k}"
            );
        }
    }
}

#[test]
fn names_are_the_clis() {
    let m = makemore_model(2);
    let st = safetensors_of(&m);
    let mut lib = Storage::loaded(&st);
    let cli = charmlp::shapes::load(&st, None).unwrap();
    for seed in [0, 42] {
        // What `charmlp sample --seed SEED -n 300` prints, line by line.
        let base = stream(seed, Stream::Samples).next_u64();
        let expected = cli.sample_names(base, 0, 300, &Sampling::PLAIN);
        for (i, name) in expected.iter().enumerate() {
            assert_eq!(
                lib.name(seed, i as u64).unwrap(),
                name.as_str(),
                "seed {seed}, name {i}"
            );
        }
    }
    // At another temperature and top-k, as `--temperature 0.5 --top-k 3`.
    let how = Sampling {
        temperature: Temperature::new(0.5).unwrap(),
        top_k: Some(3),
        ..Sampling::PLAIN
    };
    let base = stream(9, Stream::Samples).next_u64();
    for (i, name) in cli.sample_names(base, 0, 50, &how).iter().enumerate() {
        let mut buf = [0 as c_char; 80];
        let mut len = 0;
        let code = unsafe {
            charmlp_sample(
                lib.ptr(),
                9,
                i as u64,
                0.5,
                3,
                buf.as_mut_ptr(),
                buf.len(),
                &mut len,
            )
        };
        assert_eq!(code, 0);
        assert_eq!(
            unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap(),
            name.as_str()
        );
    }
}

#[test]
fn init_is_the_clis_init() {
    let mut lib = Storage::new();
    let alphabet = CString::new("abcdefghijklmnopqrstuvwxyz").unwrap();
    assert_eq!(
        unsafe { charmlp_model_init(lib.ptr(), 7, alphabet.as_ptr()) },
        0
    );
    let mut m = Box::new(Lib::zeroed());
    m.init_with_symbols(&mut stream(7, Stream::Init), 27);
    let mut expected = vec![0u8; 1 << 20];
    let a = Alphabet::<V>::new(Alphabet::MAKEMORE.chars()).unwrap();
    let n = m.write_safetensors(&a, &[], &mut expected).unwrap();
    assert_eq!(lib.written(), expected[..n]);
    // And the CLI reads what the library writes.
    assert!(charmlp::shapes::load(&lib.written(), None).is_ok());
}

/// One batch of examples from the model's tokens.
fn batch(rng: &mut impl Rng) -> ([[u8; T]; B], [u8; B]) {
    let x = std::array::from_fn(|_| std::array::from_fn(|_| (rng.next_u32() % 27) as u8));
    let y = std::array::from_fn(|_| (rng.next_u32() % 27) as u8);
    (x, y)
}

#[test]
fn training_loss_and_calibration_are_the_cores() {
    let st = safetensors_of(&makemore_model(3));
    let mut lib = Storage::loaded(&st);
    let (mut core, alphabet) = lib_model(&st);
    let mut trainer = Box::new([0u32; CHARMLP_TRAINER_WORDS]);
    let (mut state, mut scratch) = (
        Box::new(TrainState::<{ padded(V) }, H, B>::new()),
        Box::new(InPlaceScratch::new()),
    );
    let mut rng = stream(11, Stream::Batches);
    for step in 0..5 {
        let (x, y) = batch(&mut rng);
        let mut loss = f32::NAN;
        let code = train_step(&mut lib, &mut trainer, &(x, y), 0.1, &mut loss);
        assert_eq!(code, 0);
        let mut b = Batch::<T, B>::new();
        for i in 0..B {
            b.x[i] = x[i].map(|ix| Token::from_index(ix).unwrap());
            b.y[i] = Token::from_index(y[i]).unwrap();
        }
        let expected = train_step_in_place(&mut core, &mut state, &mut scratch, &b, 0.1);
        assert_eq!(loss.to_bits(), expected.to_bits(), "step {step}");
    }
    let mut expected = vec![0u8; 1 << 20];
    let n = core
        .write_safetensors(&alphabet, &[], &mut expected)
        .unwrap();
    assert_eq!(lib.written(), expected[..n]);

    let (x, y): (Vec<[u8; T]>, Vec<u8>) = contexts().into_iter().map(|c| (c, c[2])).unzip();
    let examples: Vec<Example<T>> = x
        .iter()
        .zip(&y)
        .map(|(c, &t)| Example {
            context: c.map(|ix| Token::from_index(ix).unwrap()),
            target: Token::from_index(t).unwrap(),
        })
        .collect();
    let mut loss = f64::NAN;
    let code = unsafe {
        charmlp_loss(
            lib.ptr(),
            x.as_flattened().as_ptr(),
            y.as_ptr(),
            y.len(),
            &mut loss,
        )
    };
    assert_eq!(code, 0);
    assert_eq!(loss, core.loss(&examples, &mut InferState::new()).unwrap());

    let code = unsafe { charmlp_calibrate(lib.ptr(), x.as_flattened().as_ptr(), x.len()) };
    assert_eq!(code, 0);
    core.calibrate(&examples, &mut BnCalibration::new(), &mut InferState::new())
        .unwrap();
    let n = core
        .write_safetensors(&alphabet, &[], &mut expected)
        .unwrap();
    assert_eq!(lib.written(), expected[..n]);
}

#[test]
fn tokens_and_characters_are_the_alphabets() {
    let mut lib = Storage::loaded(&safetensors_of(&makemore_model(4)));
    let (mut token, mut ch) = (0u8, 0u32);
    for (i, c) in ('a'..='z').enumerate() {
        assert_eq!(unsafe { charmlp_token(lib.ptr(), c as u32, &mut token) }, 0);
        assert_eq!(token as usize, i + 1);
        assert_eq!(unsafe { charmlp_character(lib.ptr(), token, &mut ch) }, 0);
        assert_eq!(ch, c as u32);
    }
    assert_eq!(unsafe { charmlp_character(lib.ptr(), 0, &mut ch) }, 0);
    assert_eq!(ch, 0);
    for bad in ['A' as u32, '-' as u32, 0, 0xD800, 0x11_0000] {
        assert_eq!(
            unsafe { charmlp_token(lib.ptr(), bad, &mut token) },
            CHARMLP_ERR_TOKEN
        );
    }
    for bad in [27u8, 31, 32, 255] {
        assert_eq!(
            unsafe { charmlp_character(lib.ptr(), bad, &mut ch) },
            CHARMLP_ERR_TOKEN
        );
    }
}

#[test]
fn bad_files_are_codes_and_keep_the_model() {
    let m = makemore_model(5);
    let st = safetensors_of(&m);
    let mut lib = Storage::loaded(&st);
    let load = |lib: &mut Storage, bytes: &[u8]| unsafe {
        charmlp_model_load(lib.ptr(), bytes.as_ptr(), bytes.len())
    };
    let cmlp = cmlp_of(&m);
    let mut flipped = cmlp.clone();
    flipped[100] ^= 1;
    let mut nan = cmlp.clone();
    let at = charmlp_core::bytes::HEADER_LEN + 4 * 26;
    nan[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    charmlp_core::bytes::reseal(&mut nan);
    let mut wide = Box::new(Model::<27, E, T, 200>::zeroed());
    wide.init(&mut stream(1, Stream::Init));
    let mut wide_bytes = vec![0u8; 1 << 20];
    let n = wide
        .write_safetensors(&Alphabet::MAKEMORE, &[], &mut wide_bytes)
        .unwrap();
    for (bytes, code) in [
        (&b""[..], CHARMLP_ERR_FILE),
        (b"not a model at all", CHARMLP_ERR_FILE),
        (&cmlp[..cmlp.len() - 1], CHARMLP_ERR_FILE),
        (&st[..st.len() / 2], CHARMLP_ERR_FILE),
        (&flipped, CHARMLP_ERR_CHECKSUM),
        (&nan, CHARMLP_ERR_VALUES),
        (&wide_bytes[..n], CHARMLP_ERR_SHAPE),
    ] {
        assert_eq!(load(&mut lib, bytes), code);
        assert_eq!(lib.written(), st, "a failed load keeps the model");
    }
    // Into storage never loaded: nothing usable is left.
    let mut fresh = Storage::new();
    assert_eq!(load(&mut fresh, &flipped), CHARMLP_ERR_CHECKSUM);
    assert_eq!(fresh.probs([0; T], 1.0, 0), Err(CHARMLP_ERR_NOT_LOADED));
}

#[test]
fn bad_arrays_are_codes_and_keep_the_model() {
    let m = makemore_model(6);
    let st = safetensors_of(&m);
    let mut lib = Storage::loaded(&st);
    let good = Arrays::of(&m);
    let try_load =
        |lib: &mut Storage, a: &charmlp_arrays| unsafe { charmlp_model_load_arrays(lib.ptr(), a) };
    /// Spoils a copy of the good arrays and gives the C struct of it.
    type Spoil = Box<dyn Fn(&mut Arrays) -> charmlp_arrays>;
    let cases: Vec<(Spoil, i32)> = vec![
        (
            Box::new(|a| charmlp_arrays {
                hidden: 200,
                ..a.c()
            }),
            CHARMLP_ERR_SHAPE,
        ),
        (
            Box::new(|a| charmlp_arrays { embed: 24, ..a.c() }),
            CHARMLP_ERR_SHAPE,
        ),
        (
            Box::new(|a| charmlp_arrays { vocab: 1, ..a.c() }),
            CHARMLP_ERR_SHAPE,
        ),
        (
            Box::new(|a| charmlp_arrays { vocab: 33, ..a.c() }),
            CHARMLP_ERR_SHAPE,
        ),
        (
            Box::new(|a| charmlp_arrays {
                w1: null(),
                ..a.c()
            }),
            CHARMLP_ERR_POINTER,
        ),
        (
            Box::new(|a| charmlp_arrays {
                symbols: null(),
                ..a.c()
            }),
            CHARMLP_ERR_POINTER,
        ),
        (
            Box::new(|a| {
                a.tensors[1][17] = f32::INFINITY;
                a.c()
            }),
            CHARMLP_ERR_VALUES,
        ),
        (
            Box::new(|a| {
                a.tensors[8][3] = -1.0;
                a.c()
            }),
            CHARMLP_ERR_VALUES,
        ),
        (
            Box::new(|a| {
                a.tensors[0][0] = 3e38;
                a.c()
            }),
            CHARMLP_ERR_VALUES,
        ),
        (
            Box::new(|a| {
                a.symbol_ptrs[0] = a.symbols[1].as_ptr();
                a.c()
            }),
            CHARMLP_ERR_ALPHABET,
        ),
        (
            Box::new(|a| {
                a.symbol_ptrs.swap(1, 2);
                a.c()
            }),
            CHARMLP_ERR_ALPHABET,
        ),
        (
            Box::new(|a| {
                a.symbol_ptrs[5] = c"ab".as_ptr();
                a.c()
            }),
            CHARMLP_ERR_ALPHABET,
        ),
        (
            Box::new(|a| {
                a.symbol_ptrs[5] = c"\xff".as_ptr();
                a.c()
            }),
            CHARMLP_ERR_ALPHABET,
        ),
        (
            Box::new(|a| {
                a.symbol_ptrs[5] = null();
                a.c()
            }),
            CHARMLP_ERR_POINTER,
        ),
    ];
    for (i, (make, code)) in cases.iter().enumerate() {
        let mut a = Arrays::of(&m);
        let c = make(&mut a);
        assert_eq!(try_load(&mut lib, &c), *code, "case {i}");
        assert_eq!(lib.written(), st, "case {i}: a failed load keeps the model");
    }
    assert_eq!(
        unsafe { charmlp_model_load_arrays(lib.ptr(), null()) },
        CHARMLP_ERR_POINTER
    );
    // Arrays inside the model they are loaded into.
    let mut inside = good.c();
    inside.bn_var = lib.ptr().cast::<f32>().cast_const();
    assert_eq!(try_load(&mut lib, &inside), CHARMLP_ERR_POINTER);
    assert_eq!(try_load(&mut lib, &good.c()), 0);
}

#[test]
fn bad_arguments_are_codes() {
    let st = safetensors_of(&makemore_model(7));
    let mut lib = Storage::loaded(&st);
    let p = lib.ptr();
    let ctx = [0u8; T];
    let mut probs = [0f32; V];
    let probs_code = |ctx: &[u8; T], t: f32, out: *mut f32, len: usize| unsafe {
        charmlp_probs(p, ctx.as_ptr(), t, 0, out, len)
    };
    assert_eq!(
        probs_code(&[0, 0, 27], 1.0, probs.as_mut_ptr(), V),
        CHARMLP_ERR_TOKEN
    );
    assert_eq!(
        probs_code(&ctx, f32::NAN, probs.as_mut_ptr(), V),
        CHARMLP_ERR_ARGUMENT
    );
    assert_eq!(
        probs_code(&ctx, -1.0, probs.as_mut_ptr(), V),
        CHARMLP_ERR_ARGUMENT
    );
    assert_eq!(
        probs_code(&ctx, f32::INFINITY, probs.as_mut_ptr(), V),
        CHARMLP_ERR_ARGUMENT
    );
    assert_eq!(
        probs_code(&ctx, 1.0, probs.as_mut_ptr(), 26),
        CHARMLP_ERR_BUFFER
    );
    assert_eq!(probs_code(&ctx, 1.0, null_mut(), V), CHARMLP_ERR_POINTER);
    let misaligned = unsafe { probs.as_mut_ptr().cast::<u8>().add(1).cast::<f32>() };
    assert_eq!(probs_code(&ctx, 1.0, misaligned, 27), CHARMLP_ERR_POINTER);
    assert_eq!(
        probs_code(&ctx, 1.0, p.cast(), 27),
        CHARMLP_ERR_POINTER,
        "output inside the model"
    );
    assert_eq!(probs_code(&ctx, 1.0, probs.as_mut_ptr(), 27), 0);
    let sum: f32 = probs[..27].iter().sum();
    assert!((sum - 1.0).abs() < 1e-5);

    // A name buffer too small: the length needed, then the same name in a big enough one.
    let name = (0..100)
        .map(|i| lib.name(1, i).unwrap())
        .max_by_key(String::len)
        .unwrap();
    let index = (0..100)
        .position(|i| lib.name(1, i).unwrap() == name)
        .unwrap() as u64;
    let mut small = vec![0 as c_char; name.len()];
    let mut len = 0;
    let code = unsafe {
        charmlp_sample(
            p,
            1,
            index,
            1.0,
            0,
            small.as_mut_ptr(),
            small.len(),
            &mut len,
        )
    };
    assert_eq!((code, len), (CHARMLP_ERR_BUFFER, name.len()));
    let mut just = vec![0 as c_char; name.len() + 1];
    let code =
        unsafe { charmlp_sample(p, 1, index, 1.0, 0, just.as_mut_ptr(), just.len(), &mut len) };
    assert_eq!(code, 0);
    assert_eq!(
        unsafe { CStr::from_ptr(just.as_ptr()) }.to_str().unwrap(),
        name
    );
    let code =
        unsafe { charmlp_sample(p, 1, 0, 1.0, 0, just.as_mut_ptr(), just.len(), null_mut()) };
    assert_eq!(code, CHARMLP_ERR_POINTER);

    // Training: bad rates and tokens change nothing; a diverging step unloads the model.
    let mut trainer = Box::new([0u32; CHARMLP_TRAINER_WORDS]);
    let tp = trainer.as_mut_ptr().cast::<charmlp_trainer>();
    let (x, mut y) = batch(&mut stream(3, Stream::Batches));
    let step = |tp: *mut charmlp_trainer, y: &[u8; B], lr: f32| unsafe {
        charmlp_train_step(p, tp, x.as_flattened().as_ptr(), y.as_ptr(), lr, null_mut())
    };
    for lr in [f32::NAN, -0.1, f32::INFINITY] {
        assert_eq!(step(tp, &y, lr), CHARMLP_ERR_ARGUMENT);
    }
    y[7] = 27;
    assert_eq!(step(tp, &y, 0.1), CHARMLP_ERR_TOKEN);
    y[7] = 1;
    assert_eq!(
        step(p.cast(), &y, 0.1),
        CHARMLP_ERR_POINTER,
        "trainer over the model"
    );
    assert_eq!(lib.written(), st, "refused steps change nothing");
    let (mut loss, n) = (0f64, 3);
    let flat = x.as_flattened();
    assert_eq!(
        unsafe { charmlp_loss(p, flat.as_ptr(), y.as_ptr(), 0, &mut loss) },
        CHARMLP_ERR_ARGUMENT
    );
    assert_eq!(
        unsafe { charmlp_loss(p, flat.as_ptr(), y.as_ptr(), n, &mut loss) },
        0
    );
    assert_eq!(
        unsafe { charmlp_calibrate(p, flat.as_ptr(), 1) },
        CHARMLP_ERR_ARGUMENT
    );
    assert_eq!(lib.written(), st);
    assert_eq!(step(tp, &y, f32::MAX), CHARMLP_ERR_DIVERGED);
    assert_eq!(lib.probs(ctx, 1.0, 0), Err(CHARMLP_ERR_NOT_LOADED));
    assert_eq!(step(tp, &y, 0.1), CHARMLP_ERR_NOT_LOADED);
    assert_eq!(Storage::loaded(&st).written(), st, "and loads again");
}

#[test]
fn init_refuses_what_is_not_an_alphabet() {
    let mut lib = Storage::new();
    for (alphabet, code) in [
        (&b""[..], CHARMLP_ERR_ALPHABET),
        (b"ba", CHARMLP_ERR_ALPHABET),
        (b"aa", CHARMLP_ERR_ALPHABET),
        (b"a\tb", CHARMLP_ERR_ALPHABET),
        (b"\xffa", CHARMLP_ERR_ALPHABET),
        (b"abcdefghijklmnopqrstuvwxyz0123456789", CHARMLP_ERR_SHAPE),
    ] {
        let s = CString::new(alphabet).unwrap();
        assert_eq!(
            unsafe { charmlp_model_init(lib.ptr(), 1, s.as_ptr()) },
            code,
            "{s:?}"
        );
    }
    assert_eq!(
        unsafe { charmlp_model_init(lib.ptr(), 1, null()) },
        CHARMLP_ERR_POINTER
    );
    assert_eq!(
        unsafe { charmlp_model_init(null_mut(), 1, c"ab".as_ptr()) },
        CHARMLP_ERR_POINTER
    );
    // 31 characters fill the capacity of 32 symbols.
    let s = c"'-abcdefghijklmnopqrstuvwxyz\xc3\xa8\xc3\xa9\xc3\xaf";
    assert_eq!(unsafe { charmlp_model_init(lib.ptr(), 1, s.as_ptr()) }, 0);
    assert_eq!(lib.probs([0, 0, 31], 1.0, 0).unwrap().len(), 32);
}

#[test]
fn an_unloaded_model_is_refused_everywhere() {
    let mut lib = Storage::new();
    let p = lib.ptr();
    let (mut len, mut shape_len) = (0usize, 0u8);
    let mut buf = [0u8; 64];
    let mut trainer = Box::new([0u32; CHARMLP_TRAINER_WORDS]);
    let zeros = [0u8; B * T];
    let mut shape = charmlp_shape {
        symbols: 0,
        embed: 0,
        context: 0,
        hidden: 0,
    };
    let (mut f, mut d, mut c) = (0f32, 0f64, 0u32);
    let codes = unsafe {
        [
            charmlp_model_write(p, buf.as_mut_ptr(), buf.len(), &mut len),
            charmlp_model_shape(p, &mut shape),
            charmlp_token(p, 'a' as u32, &mut shape_len),
            charmlp_character(p, 1, &mut c),
            charmlp_probs(p, zeros.as_ptr(), 1.0, 0, &mut f, 1),
            charmlp_sample(
                p,
                1,
                1,
                1.0,
                0,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut len,
            ),
            charmlp_loss(p, zeros.as_ptr(), zeros.as_ptr(), 1, &mut d),
            charmlp_calibrate(p, zeros.as_ptr(), 2),
            charmlp_train_step(
                p,
                trainer.as_mut_ptr().cast(),
                zeros.as_ptr(),
                zeros.as_ptr(),
                0.1,
                &mut f,
            ),
        ]
    };
    assert_eq!(codes, [CHARMLP_ERR_NOT_LOADED; 9]);
    let null_codes = unsafe {
        [
            charmlp_model_shape(null(), &mut shape),
            charmlp_model_load(null_mut(), buf.as_ptr(), 1),
            charmlp_probs(null(), zeros.as_ptr(), 1.0, 0, &mut f, 1),
        ]
    };
    assert_eq!(null_codes, [CHARMLP_ERR_POINTER; 3]);
}

#[test]
fn every_status_has_its_own_text() {
    let texts: Vec<String> = (0..=11)
        .map(|s| {
            unsafe { CStr::from_ptr(charmlp_status_text(s)) }
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let unknown = unsafe { CStr::from_ptr(charmlp_status_text(12)) }
        .to_str()
        .unwrap();
    assert_eq!(unknown, "unknown status");
    assert_eq!(
        unsafe { CStr::from_ptr(charmlp_status_text(-1)) }
            .to_str()
            .unwrap(),
        unknown
    );
    let mut distinct = texts.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), texts.len());
    assert!(!texts.iter().any(|t| t == unknown));
}

/// Storage that no loader filled, holding anything: the marker of a loaded model in its last
/// word, garbage or a valid-looking alphabet around it. No call may panic or read an invalid
/// value; storage whose words do not make an alphabet is not loaded.
#[test]
fn garbage_storage_is_refused_or_harmless() {
    const READY: u32 = 0x434D_4C50;
    let last = CHARMLP_MODEL_WORDS - 1;
    // The alphabet's words sit just before the marker: the symbol count, then V characters.
    let (symbols_at, chars_at) = (last - 1, last - 1 - V);
    let mut garbage = Storage::new();
    garbage.0.fill(0xABAB_ABAB);
    garbage.0[last] = READY;
    assert_eq!(garbage.probs([0; T], 1.0, 0), Err(CHARMLP_ERR_NOT_LOADED));
    assert_eq!(garbage.name(1, 1), Err(CHARMLP_ERR_NOT_LOADED));
    let mut token = 0;
    assert_eq!(
        unsafe { charmlp_token(garbage.ptr(), 'a' as u32, &mut token) },
        CHARMLP_ERR_NOT_LOADED
    );
    for (symbols, first) in [
        (27, 0xD800),
        (0, 'a' as u32),
        (33, 'a' as u32),
        (3, 'b' as u32),
    ] {
        garbage.0[symbols_at] = symbols;
        garbage.0[chars_at] = first;
        garbage.0[chars_at + 1] = 'a' as u32;
        assert_eq!(
            garbage.probs([0; T], 1.0, 0),
            Err(CHARMLP_ERR_NOT_LOADED),
            "{symbols}"
        );
    }
    // Words that make an alphabet around NaN floats: a meaningless model, but no panic.
    garbage.0.fill(u32::MAX);
    for (k, c) in ('a'..='z').enumerate() {
        garbage.0[chars_at + k] = c as u32;
    }
    garbage.0[chars_at + 26..symbols_at].fill(0);
    garbage.0[symbols_at] = 27;
    garbage.0[last] = READY;
    assert!(garbage.probs([0, 0, 1], 1.0, 3).is_ok());
    assert!(garbage.name(1, 2).is_ok());
    let mut trainer = Box::new([0u32; CHARMLP_TRAINER_WORDS]);
    let xy = batch(&mut stream(3, Stream::Batches));
    let code = train_step(&mut garbage, &mut trainer, &xy, 0.1, null_mut());
    assert_eq!(code, CHARMLP_ERR_DIVERGED);
    // And a good file loads over garbage.
    let st = safetensors_of(&makemore_model(8));
    let p = garbage.ptr();
    assert_eq!(unsafe { charmlp_model_load(p, st.as_ptr(), st.len()) }, 0);
    assert_eq!(garbage.written(), st);
}

/// Lengths whose byte counts overflow are refused, not wrapped (tests run with overflow checks).
#[test]
fn huge_lengths_are_refused() {
    let mut lib = Storage::loaded(&safetensors_of(&makemore_model(9)));
    let mut probs = [0f32; V];
    // Counts of more bytes than any object holds (isize::MAX): no caller's buffer can be that
    // large, so each is refused before any slice is formed.
    let past = isize::MAX as usize + 1;
    for len in [usize::MAX, usize::MAX / 4 + 1, past / 4 + 1] {
        let code = unsafe {
            charmlp_probs(
                lib.ptr(),
                [0u8; T].as_ptr(),
                1.0,
                0,
                probs.as_mut_ptr(),
                len,
            )
        };
        assert_eq!(code, CHARMLP_ERR_POINTER, "{len}");
    }
    let mut out = [0u8; 8];
    let mut n = 0;
    for len in [usize::MAX, past] {
        let code = unsafe { charmlp_model_write(lib.ptr(), out.as_mut_ptr(), len, &mut n) };
        assert_eq!(code, CHARMLP_ERR_POINTER, "{len}");
        let code = unsafe { charmlp_model_load(lib.ptr(), out.as_ptr(), len) };
        assert_eq!(code, CHARMLP_ERR_POINTER, "{len}");
    }
    // Examples: n contexts are n·CHARMLP_LIB_CONTEXT bytes.
    for len in [usize::MAX, past, past / T + 1] {
        let code = unsafe { charmlp_calibrate(lib.ptr(), out.as_ptr(), len) };
        assert_eq!(code, CHARMLP_ERR_POINTER, "{len}");
        let mut loss = 0f64;
        let code = unsafe { charmlp_loss(lib.ptr(), out.as_ptr(), out.as_ptr(), len, &mut loss) };
        assert_eq!(code, CHARMLP_ERR_POINTER, "{len}");
    }
}

/// A step's loss output inside its trainer (beyond the model's size into it) is refused.
#[test]
fn a_loss_inside_the_trainer_is_refused() {
    let st = safetensors_of(&makemore_model(10));
    let mut lib = Storage::loaded(&st);
    let mut trainer = Box::new([0u32; CHARMLP_TRAINER_WORDS]);
    let xy = batch(&mut stream(4, Stream::Batches));
    let inside = std::ptr::addr_of_mut!(trainer[CHARMLP_TRAINER_WORDS - 2]).cast::<f32>();
    let code = train_step(&mut lib, &mut trainer, &xy, 0.1, inside);
    assert_eq!(code, CHARMLP_ERR_POINTER);
    assert_eq!(lib.written(), st);
}

/// Calibration that would leave statistics the loader refuses keeps the ones before.
#[test]
fn calibration_never_leaves_a_model_that_does_not_load() {
    let m = makemore_model(11);
    let mut a = Arrays::of(&m);
    a.tensors[0][E..2 * E].fill(1e18); // token 1's embedding
    a.tensors[1].fill(1.0); // W1
    let mut lib = Storage::new();
    assert_eq!(unsafe { charmlp_model_load_arrays(lib.ptr(), &a.c()) }, 0);
    let before = lib.written();
    // hprebn 0 and 3e19: a variance of 4.5e38, past f32::MAX.
    let contexts = [[0u8; T], [1u8; T]];
    let code = unsafe { charmlp_calibrate(lib.ptr(), contexts.as_flattened().as_ptr(), 2) };
    assert_eq!(code, CHARMLP_ERR_VALUES);
    assert_eq!(lib.written(), before);
    let p = lib.ptr();
    assert_eq!(
        unsafe { charmlp_model_load(p, before.as_ptr(), before.len()) },
        0
    );
}
