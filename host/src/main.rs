//! The charmlp command line: a placeholder until the host issue gives it train, sample, eval and
//! export.

fn main() {
    println!(
        "charmlp {}: default model {} parameters; commands arrive with the host CLI",
        env!("CARGO_PKG_VERSION"),
        charmlp_core::DefaultParams::COUNT
    );
}
