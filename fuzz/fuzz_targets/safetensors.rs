//! The safetensors model reader on any bytes, checked against the `safetensors` crate (the
//! format's reference reader): no panic; what ours accepts the crate accepts, with the same
//! bytes for every tensor; a failed load leaves the model and alphabet untouched; what loads
//! writes back to a file that loads to the same model, and behaves (finite loss, names in its
//! alphabet). The lookup of any tensor runs on the same bytes. A second pass puts the input's
//! bytes into the tensors of a valid file and rewrites its checksum, so that the checks behind
//! the checksum are reached too.
#![no_main]

use charmlp_core::safetensors::{NAMES, find_tensor, parse, reseal};
use charmlp_core::{Alphabet, Model};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

type Loaded<const V: usize> = (Box<Model<V, 10, 3, 64>>, Alphabet<V>);

fn check<const V: usize>(data: &[u8], given: Option<&[char]>) -> Option<Loaded<V>> {
    let mut model = Box::new(Model::<V, 10, 3, 64>::zeroed());
    let mut alphabet = Alphabet::<V>::new(&['x']).unwrap();
    let untouched = (model.clone(), alphabet);
    match model.read_safetensors(&mut alphabet, data, given) {
        Ok(()) => {
            let st = safetensors::SafeTensors::deserialize(data)
                .expect("the reference reader refuses a file we read");
            let ours = parse(data).unwrap();
            assert_eq!(st.len(), 9);
            for name in NAMES {
                let t = st.tensor(name).expect("every tensor is there");
                assert_eq!(t.dtype(), safetensors::Dtype::F32);
                assert_eq!(Some(t.data()), ours.tensor_bytes(name), "{name}");
            }
            let mut out = vec![0; 8 + 8192 + Model::<V, 10, 3, 64>::MAX_BYTES];
            let n = model.write_safetensors(&alphabet, &[], &mut out).unwrap();
            let mut again = Box::new(Model::<V, 10, 3, 64>::zeroed());
            let mut a = Alphabet::<V>::new(&[]).unwrap();
            again
                .read_safetensors(&mut a, &out[..n], None)
                .expect("the written form loads");
            assert!(again == model && a == alphabet, "the written form differs");
            Some((model, alphabet))
        }
        Err(_) => {
            assert!(
                model == untouched.0 && alphabet == untouched.1,
                "a failed load changed the model"
            );
            None
        }
    }
}

/// A valid 27-symbol model file, whose tensors the second pass overwrites.
fn template() -> &'static [u8] {
    static FILE: OnceLock<Vec<u8>> = OnceLock::new();
    FILE.get_or_init(|| {
        let mut m = Box::new(Model::<27, 10, 3, 64>::zeroed());
        m.params.gain = [1.0; 64];
        let mut out = vec![0; 8 + 8192 + Model::<27, 10, 3, 64>::MAX_BYTES];
        let n = m
            .write_safetensors(&Alphabet::MAKEMORE, &[], &mut out)
            .unwrap();
        out.truncate(n);
        out
    })
}

fuzz_target!(|data: &[u8]| {
    // The lookup of any tensor (the conformance check's reader) on the same bytes: no panic,
    // and what it finds lies in the input.
    for name in ["C", "Xb", "x"] {
        if let Ok(Some(t)) = find_tensor(data, name) {
            let (start, end) = (data.as_ptr() as usize, data.as_ptr() as usize + data.len());
            assert!(
                t.data.as_ptr() as usize >= start && t.data.as_ptr() as usize + t.data.len() <= end
            );
        }
    }
    if let Some((m, a)) = check::<27>(data, None) {
        charmlp_fuzz::behaves(&m, &a, data);
    }
    let given: Vec<char> = ('a'..)
        .take(usize::from(data.first().copied().unwrap_or(0) % 40))
        .collect();
    if let Some((m, a)) = check::<128>(data, Some(&given)) {
        charmlp_fuzz::behaves(&m, &a, data);
    }

    let mut file = template().to_vec();
    let header_len = 8 + u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let body = &mut file[header_len..];
    let n = data.len().min(body.len());
    body[..n].copy_from_slice(&data[..n]);
    assert!(reseal(&mut file));
    if let Some((m, a)) = check::<27>(&file, None) {
        charmlp_fuzz::behaves(&m, &a, data);
    }
});
