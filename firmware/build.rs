//! Puts the target's memory layout, as memory.x, where cortex-m-rt's link.x finds it, and the
//! packed words and the recipe's step count where the images include them.
//!
//! Layouts, one per target: `memory-an386.x` for the MPS2 AN386 (Cortex-M4F,
//! thumbv7em-none-eabihf, 64 KB of RAM; the AN500's Cortex-M7 runs the same images),
//! `memory-lm3s6965.x` for the LM3S6965 (Cortex-M3, thumbv7m-none-eabi, 256 KB of flash, 64 KB
//! of RAM), `memory-microbit.x` for the micro:bit (Cortex-M0, thumbv6m-none-eabi, cut to 32 KB
//! of flash and 8 KB of RAM), and for thumbv8m.main-none-eabihf, by `CHARMLP_BOARD`,
//! `memory-an505.x` (Cortex-M33) or `memory-an547.x` (Cortex-M55). No file here may be called memory.x: the linker, run in this
//! directory, would find it before OUT_DIR's.
//!
//! `CHARMLP_WORDS`: a file `charmlp pack` wrote (firmware/run.sh makes one of names.txt); without
//! it the recipe and count images hold no words and say so. `CHARMLP_NEW_WORDS`: the same for
//! the words the adapt image adapts a model to. `CHARMLP_RECIPE_STEPS`: the recipe's training
//! steps (200,000 by default, makemore's recipe).
use std::{env, fs, path::Path, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // Each target serves one memory map, but Armv8-M Mainline two: CHARMLP_BOARD names the
    // board where it must, and may name it elsewhere; a board the target cannot be is refused.
    println!("cargo:rerun-if-env-changed=CHARMLP_BOARD");
    let target = env::var("TARGET").unwrap_or_default();
    let board = env::var("CHARMLP_BOARD").ok();
    let memory: &[u8] = match (target.as_str(), board.as_deref()) {
        ("thumbv6m-none-eabi", None | Some("microbit")) => include_bytes!("memory-microbit.x"),
        ("thumbv7m-none-eabi", None | Some("lm3s6965evb")) => include_bytes!("memory-lm3s6965.x"),
        ("thumbv7em-none-eabihf", None | Some("mps2-an386" | "mps2-an500")) => {
            include_bytes!("memory-an386.x")
        }
        ("thumbv8m.main-none-eabihf", Some("mps2-an505")) => include_bytes!("memory-an505.x"),
        ("thumbv8m.main-none-eabihf", Some("mps3-an547")) => include_bytes!("memory-an547.x"),
        (target, board) => panic!(
            "target {target} with CHARMLP_BOARD {board:?}: the boards are microbit \
             (thumbv6m-none-eabi), lm3s6965evb (thumbv7m-none-eabi), mps2-an386 or mps2-an500 \
             (thumbv7em-none-eabihf), and mps2-an505 or mps3-an547 (thumbv8m.main-none-eabihf, \
             where CHARMLP_BOARD must name one)"
        ),
    };
    fs::write(out.join("memory.x"), memory).expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory-an386.x");
    println!("cargo:rerun-if-changed=memory-microbit.x");
    println!("cargo:rerun-if-changed=memory-lm3s6965.x");
    println!("cargo:rerun-if-changed=memory-an505.x");
    println!("cargo:rerun-if-changed=memory-an547.x");

    include_file(&out, "CHARMLP_WORDS", "words.cmlw");
    include_file(&out, "CHARMLP_NEW_WORDS", "new_words.cmlw");

    println!("cargo:rerun-if-env-changed=CHARMLP_RECIPE_STEPS");
    let steps = env::var("CHARMLP_RECIPE_STEPS").unwrap_or_else(|_| "200000".into());
    let steps: u64 = steps
        .parse()
        .unwrap_or_else(|e| panic!("CHARMLP_RECIPE_STEPS {steps:?}: {e}"));
    // As a Rust literal the image includes: parsed here once, checked by the compiler there.
    fs::write(out.join("recipe_steps.rs"), format!("{steps}")).expect("OUT_DIR is writable");
}

/// The most a words file may hold: the boards' flash (512 KB).
const MAX_WORDS_BYTES: u64 = 512 * 1024;

/// Copies the file that environment variable `var` names to `out/name`, or writes an empty
/// file there without the variable. A FIFO, a device or a directory is refused before it is
/// read (a FIFO would block the build, /dev/zero fill memory), and so is a file past flash.
fn include_file(out: &Path, var: &str, name: &str) {
    println!("cargo:rerun-if-env-changed={var}");
    let bytes = match env::var_os(var) {
        Some(path) => {
            println!("cargo:rerun-if-changed={}", PathBuf::from(&path).display());
            let meta = fs::metadata(&path).unwrap_or_else(|e| panic!("{var} {path:?}: {e}"));
            if !meta.is_file() {
                panic!("{var} {path:?}: not a regular file; give a file `charmlp pack` wrote");
            }
            if meta.len() > MAX_WORDS_BYTES {
                panic!(
                    "{var} {path:?}: {} bytes, more than the {MAX_WORDS_BYTES} bytes of flash",
                    meta.len()
                );
            }
            fs::read(&path).unwrap_or_else(|e| panic!("{var} {path:?}: {e}"))
        }
        None => Vec::new(),
    };
    fs::write(out.join(name), bytes).expect("OUT_DIR is writable");
}
