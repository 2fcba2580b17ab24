//! A model as source code that firmware compiles in: a Rust `static` of charmlp-core's own
//! `Model` type (used as it is, no parsing), or C arrays.

use charmlp_core::{Model, V};
use std::fmt::Write;

/// Output languages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    C,
}

/// The nine tensors in file order: Rust field path, C name, dimensions, values.
fn tensors<const E: usize, const T: usize, const H: usize>(
    m: &Model<E, T, H>,
) -> [(&'static str, &'static str, Vec<usize>, &[f32]); 9] {
    let [c, w1, b1, gain, bias, w2, b2] = m.params.tensors();
    [
        ("c", "C", vec![V, E], c),
        ("w1", "W1", vec![T, E, H], w1),
        ("b1", "b1", vec![H], b1),
        ("gain", "gain", vec![H], gain),
        ("bias", "bias", vec![H], bias),
        ("w2t", "W2T", vec![V, H], w2),
        ("b2", "b2", vec![V], b2),
        ("mean", "bn_mean", vec![H], &m.bn.mean),
        ("var", "bn_var", vec![H], &m.bn.var),
    ]
}

/// Writes `values` as nested array literals of shape `dims`: `[`/`]` in Rust, `{`/`}` in C.
/// Each float is printed in its shortest form that reads back to the same f32.
fn nested(out: &mut String, lang: Lang, dims: &[usize], values: &[f32], indent: usize) {
    let (open, close, suffix) = match lang {
        Lang::Rust => ('[', ']', ""),
        Lang::C => ('{', '}', "f"),
    };
    let pad = " ".repeat(indent + 4);
    out.push(open);
    out.push('\n');
    if dims.len() == 1 {
        for line in values.chunks(8) {
            out.push_str(&pad);
            for x in line {
                let _ = write!(out, "{x:?}{suffix}, ");
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
        }
    } else {
        let inner: usize = dims[1..].iter().product();
        for chunk in values.chunks(inner) {
            out.push_str(&pad);
            nested(out, lang, &dims[1..], chunk, indent + 4);
            out.push_str(",\n");
        }
    }
    out.push_str(&" ".repeat(indent));
    out.push(close);
}

/// Text from outside (a file name) made safe inside a `//` or `/* */` comment of either
/// language: printable ASCII only (newlines, quotes, backslashes and every non-ASCII character
/// escaped as Rust's `escape_default` does), and neither `*/`, which would end a C comment
/// early, nor `/*`, which C compilers warn of inside one.
pub fn comment_text(s: &str) -> String {
    s.escape_default()
        .to_string()
        .replace("/*", "/\\*")
        .replace("*/", "*\\/")
}

/// The two lines every exported file starts with, for either comment syntax.
fn banner<const E: usize, const T: usize, const H: usize>(origin: &str) -> [String; 2] {
    [
        format!(
            "charmlp model exported by `charmlp export` from \"{}\".",
            comment_text(origin)
        ),
        format!(
            "Shape: {}. Generated: do not edit.",
            Model::<E, T, H>::SHAPE
        ),
    ]
}

/// Rust source declaring `pub static MODEL: charmlp_core::Model<E, T, H>`.
pub fn rust_source<const E: usize, const T: usize, const H: usize>(
    m: &Model<E, T, H>,
    origin: &str,
) -> String {
    let [what, shape] = banner::<E, T, H>(origin);
    let mut out = format!("// {what}\n// {shape}\n");
    out.push_str("#[rustfmt::skip]\n");
    out.push_str("#[allow(clippy::approx_constant, clippy::excessive_precision)]\n");
    let _ = writeln!(
        out,
        "pub static MODEL: charmlp_core::Model<{E}, {T}, {H}> = charmlp_core::Model {{"
    );
    out.push_str("    params: charmlp_core::Params {\n");
    for (i, (field, _, dims, values)) in tensors(m).into_iter().enumerate() {
        if i == 7 {
            // After the seven parameters come the two batch-norm statistics.
            out.push_str("    },\n    bn: charmlp_core::BnStats {\n");
        }
        let _ = write!(out, "        {field}: ");
        nested(&mut out, Lang::Rust, &dims, values, 8);
        out.push_str(",\n");
    }
    out.push_str("    },\n};\n");
    out
}

/// A C header with the dimensions as macros and one `static const float` array per tensor.
pub fn c_source<const E: usize, const T: usize, const H: usize>(
    m: &Model<E, T, H>,
    origin: &str,
) -> String {
    let [what, shape] = banner::<E, T, H>(origin);
    let mut out = format!("/* {what}\n * {shape}\n");
    out.push_str(" * Tensors are row-major, as in charmlp-core: W1[context][embed][hidden],\n");
    out.push_str(" * W2T[vocab][hidden] (W2 transposed); batch norm:\n");
    out.push_str(" * gain * (x - bn_mean) / sqrtf(bn_var + 1e-5f) + bias. */\n");
    out.push_str("#ifndef CHARMLP_MODEL_H\n#define CHARMLP_MODEL_H\n\n");
    let _ = writeln!(out, "#define CHARMLP_VOCAB {V}");
    let _ = writeln!(out, "#define CHARMLP_EMBED {E}");
    let _ = writeln!(out, "#define CHARMLP_CONTEXT {T}");
    let _ = writeln!(out, "#define CHARMLP_HIDDEN {H}");
    let _ = writeln!(out, "#define CHARMLP_BN_EPS 1e-5f\n");
    for (_, name, dims, values) in tensors(m) {
        let dims_c: String = dims.iter().map(|d| format!("[{d}]")).collect();
        let _ = write!(out, "static const float charmlp_{name}{dims_c} = ");
        nested(&mut out, Lang::C, &dims, values, 0);
        out.push_str(";\n\n");
    }
    out.push_str("#endif /* CHARMLP_MODEL_H */\n");
    out
}

#[cfg(test)]
mod tests {
    use super::comment_text;

    #[test]
    fn comment_text_cannot_end_a_comment_or_a_line() {
        for hostile in [
            "a\nb.cmlp",
            "x*/ int evil; /*.cmlp",
            "/*/",
            "*//*",
            "m\r\n#include </etc/passwd>",
            "\u{2028}é\u{85}\"'\\",
        ] {
            let t = comment_text(hostile);
            assert!(t.chars().all(|c| (' '..='~').contains(&c)), "{t}");
            assert!(!t.contains("*/") && !t.contains("/*"), "{t}");
        }
    }
}
