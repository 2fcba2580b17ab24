//! Puts memory.x where cortex-m-rt's link.x finds it, and the recipe image's words and step
//! count where it includes them.
//!
//! `CHARMLP_WORDS`: a file `charmlp pack` wrote (firmware/run.sh makes one of names.txt); without
//! it the recipe image holds no words and says so. `CHARMLP_RECIPE_STEPS`: its training steps
//! (200,000 by default, makemore's recipe).
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");

    println!("cargo:rerun-if-env-changed=CHARMLP_WORDS");
    let words = match env::var_os("CHARMLP_WORDS") {
        Some(path) => {
            println!("cargo:rerun-if-changed={}", PathBuf::from(&path).display());
            fs::read(&path).unwrap_or_else(|e| panic!("CHARMLP_WORDS {path:?}: {e}"))
        }
        None => Vec::new(),
    };
    fs::write(out.join("words.cmlw"), words).expect("OUT_DIR is writable");

    println!("cargo:rerun-if-env-changed=CHARMLP_RECIPE_STEPS");
    let steps = env::var("CHARMLP_RECIPE_STEPS").unwrap_or_else(|_| "200000".into());
    let steps: u64 = steps
        .parse()
        .unwrap_or_else(|e| panic!("CHARMLP_RECIPE_STEPS {steps:?}: {e}"));
    // As a Rust literal the image includes: parsed here once, checked by the compiler there.
    fs::write(out.join("recipe_steps.rs"), format!("{steps}")).expect("OUT_DIR is writable");
}
