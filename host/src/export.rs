//! A model as source code that firmware compiles in: a Rust `static` of charmlp-core's own
//! `Model` type (used as it is, no parsing), or C arrays.

use crate::shapes::{IntValues, Loaded};
use std::fmt::Write;

/// Output languages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    C,
}

/// The nine tensors in file order: Rust field path, C name, dimensions, values. C, W2ᵀ and b2
/// have the alphabet's rows exactly: an exported model is a model of v symbols, whatever
/// capacity it trained in.
fn tensors(m: &dyn Loaded) -> [(&'static str, &'static str, Vec<usize>, &[f32]); 9] {
    let s = m.shape();
    let [v, e, t, h] = [s.vocab, s.embed, s.context, s.hidden].map(usize::from);
    let [c, w1, b1, gain, bias, w2, b2, mean, var] = m.tensors().map(|(_, values)| values);
    [
        ("c", "C", vec![v, e], c),
        ("w1", "W1", vec![t, e, h], w1),
        ("b1", "b1", vec![h], b1),
        ("gain", "gain", vec![h], gain),
        ("bias", "bias", vec![h], bias),
        ("w2t", "W2T", vec![v, h], w2),
        ("b2", "b2", vec![v], b2),
        ("mean", "bn_mean", vec![h], mean),
        ("var", "bn_var", vec![h], var),
    ]
}

/// Writes `values` as nested array literals of shape `dims`: `[`/`]` in Rust, `{`/`}` in C.
/// Each float is printed in its shortest form that reads back to the same f32.
fn nested(out: &mut String, lang: Lang, dims: &[usize], values: &[f32], indent: usize) {
    let suffix = match lang {
        Lang::Rust => "",
        Lang::C => "f",
    };
    nested_with(out, lang, dims, values, indent, 8, &|out, x| {
        let _ = write!(out, "{x:?}{suffix}");
    });
}

/// [`nested`] of any values, `per_line` on a line, each written by `item`.
fn nested_with<T>(
    out: &mut String,
    lang: Lang,
    dims: &[usize],
    values: &[T],
    indent: usize,
    per_line: usize,
    item: &dyn Fn(&mut String, &T),
) {
    let (open, close) = match lang {
        Lang::Rust => ('[', ']'),
        Lang::C => ('{', '}'),
    };
    let pad = " ".repeat(indent + 4);
    out.push(open);
    out.push('\n');
    if dims.len() == 1 {
        for line in values.chunks(per_line) {
            out.push_str(&pad);
            for x in line {
                item(out, x);
                out.push_str(", ");
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
        }
    } else {
        let inner: usize = dims[1..].iter().product();
        for chunk in values.chunks(inner) {
            out.push_str(&pad);
            nested_with(out, lang, &dims[1..], chunk, indent + 4, per_line, item);
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
fn banner(m: &dyn Loaded, origin: &str) -> [String; 2] {
    [
        format!(
            "charmlp model exported by `charmlp export` from \"{}\".",
            comment_text(origin)
        ),
        format!("Shape: {}. Generated: do not edit.", m.shape()),
    ]
}

/// A character as a C string literal's contents: printable ASCII as it is (but `"`, `\` and
/// `?`, which could start a trigraph), everything else as its UTF-8 bytes in octal escapes,
/// which take at most three digits and so cannot swallow the character after them.
fn c_string(ch: char) -> String {
    if (' '..='~').contains(&ch) && !matches!(ch, '"' | '\\' | '?') {
        ch.to_string()
    } else {
        let mut buf = [0; 4];
        ch.encode_utf8(&mut buf)
            .bytes()
            .map(|b| format!("\\{b:03o}"))
            .collect()
    }
}

/// Rust source declaring `pub static MODEL: charmlp_core::Model<V, E, T, H>` and
/// `pub static ALPHABET: charmlp_core::Alphabet<V>`, built at compile time.
pub fn rust_source(m: &dyn Loaded, origin: &str) -> String {
    let mut out = rust_model_head(m, origin, "", "Model");
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
    out.push_str("    },\n};\n\n");
    rust_alphabet(&mut out, m);
    out
}

/// The banner (its shape line ending in `note`) and the opening of `pub static MODEL:
/// charmlp_core::{ty}<V, E, T, H> = charmlp_core::{ty} {`.
fn rust_model_head(m: &dyn Loaded, origin: &str, note: &str, ty: &str) -> String {
    let [what, shape] = banner(m, origin);
    let s = m.shape();
    let (v, e, t, h) = (s.vocab, s.embed, s.context, s.hidden);
    let mut out = format!("// {what}\n// {shape}{note}\n");
    out.push_str("#[rustfmt::skip]\n");
    out.push_str("#[allow(clippy::approx_constant, clippy::excessive_precision)]\n");
    let _ = writeln!(
        out,
        "pub static MODEL: charmlp_core::{ty}<{v}, {e}, {t}, {h}> = charmlp_core::{ty} {{"
    );
    out
}

/// `pub static ALPHABET: charmlp_core::Alphabet<V>`, built at compile time.
fn rust_alphabet(out: &mut String, m: &dyn Loaded) {
    let v = m.shape().vocab;
    out.push_str("/// The characters of tokens 1.. (token 0 is the boundary).\n#[rustfmt::skip]\n");
    let _ = write!(
        out,
        "pub static ALPHABET: charmlp_core::Alphabet<{v}> = match charmlp_core::Alphabet::new(&["
    );
    for (i, ch) in m.chars().iter().enumerate() {
        if i % 16 == 0 {
            out.push_str("\n   ");
        }
        let _ = write!(out, " {ch:?},");
    }
    out.push_str(
        "\n]) {\n    Ok(alphabet) => alphabet,\n    Err(_) => panic!(\"not an alphabet\"),\n};\n",
    );
}

/// Rust source declaring `pub static MODEL: charmlp_core::Int8Model<V, E, T, H>` (the model
/// quantised: [`Loaded::quantized`]) and `pub static ALPHABET`, as [`rust_source`] does.
pub fn rust_int8_source(m: &dyn Loaded, origin: &str) -> String {
    let mut out = rust_model_head(m, origin, " Quantised to int8.", "Int8Model");
    for (field, dims, values) in m.quantized().arrays() {
        let _ = write!(out, "    {field}: ");
        match &values {
            IntValues::I8(x) => nested_with(&mut out, Lang::Rust, &dims, x, 4, 16, &number),
            IntValues::I32(x) => nested_with(&mut out, Lang::Rust, &dims, x, 4, 8, &number),
            IntValues::Requant(x) => {
                nested_with(&mut out, Lang::Rust, &dims, x, 4, 2, &|out, r| {
                    let _ = write!(
                        out,
                        "charmlp_core::Requant {{ multiplier: {}, shift: {} }}",
                        r.multiplier, r.shift
                    );
                })
            }
        }
        out.push_str(",\n");
    }
    let _ = writeln!(out, "    symbols: {},\n}};\n", m.shape().vocab);
    rust_alphabet(&mut out, m);
    out
}

/// An integer as a literal of either language.
fn number<T: std::fmt::Display>(out: &mut String, x: &T) {
    let _ = write!(out, "{x}");
}

/// A C header of the model quantised to int8: `int8_t` and `int32_t` arrays named
/// `charmlp_int8_*` (so that it can sit beside the f32 model's header), each requantisation as
/// a multiplier array and a shift array, the softmax's table, and the arithmetic in a comment.
pub fn c_int8_source(m: &dyn Loaded, origin: &str) -> String {
    let [what, shape] = banner(m, origin);
    let mut out =
        format!("/* {what}\n * {shape}\n * Quantised to int8 (charmlp_core::Int8Model).\n");
    for line in [
        "For a context x[CONTEXT], with requant(a, m, s) = round(a * m / 2^(31 - s)),",
        "halves rounded up, in 64-bit arithmetic, and every array charmlp_int8_NAME:",
        "  hpreact[j] = b1[j] + sum over t, e of c[x[t]][e] * w1[t][e][j]",
        "  code[j]    = clamp(requant(hpreact[j], to_tanh_multiplier[j], to_tanh_shift[j]),",
        "                     -128, 127)",
        "  h[j]       = tanh[code[j] + 128]",
        "  acc[k]     = b2[k] + sum over j of h[j] * w2t[k][j]",
        "  logit[k]   = requant(acc[k], to_logit_multiplier[k], to_logit_shift[k])",
        "  d[k]       = (largest logit) - logit[k]",
        "  weight[k]  = pow2_q24[d[k] % 64] >> (d[k] / 64) (0 from d[k] / 64 >= 32 on),",
        "               and at least 1",
        "Logits are in steps of ln(2)/64, and p[k] = weight[k] / (sum of the weights).",
        "charmlp_int8_symbols[token] is the token's character in UTF-8; token 0 is the",
        "boundary (start and end of a word), the empty string. */",
    ] {
        let _ = writeln!(out, " * {line}");
    }
    out.push_str("#ifndef CHARMLP_INT8_MODEL_H\n#define CHARMLP_INT8_MODEL_H\n\n");
    out.push_str("#include <stdint.h>\n\n");
    c_dimensions(&mut out, m);
    out.push('\n');
    c_symbols(&mut out, m, "charmlp_int8_symbols");
    for (field, dims, values) in m.quantized().arrays() {
        let dims_c: String = dims.iter().map(|d| format!("[{d}]")).collect();
        match &values {
            IntValues::I8(x) => {
                let _ = write!(out, "static const int8_t charmlp_int8_{field}{dims_c} = ");
                nested_with(&mut out, Lang::C, &dims, x, 0, 16, &number);
            }
            IntValues::I32(x) => {
                let _ = write!(out, "static const int32_t charmlp_int8_{field}{dims_c} = ");
                nested_with(&mut out, Lang::C, &dims, x, 0, 8, &number);
            }
            IntValues::Requant(x) => {
                let multipliers: Vec<i32> = x.iter().map(|r| r.multiplier).collect();
                let shifts: Vec<i8> = x.iter().map(|r| r.shift).collect();
                let _ = write!(
                    out,
                    "static const int32_t charmlp_int8_{field}_multiplier{dims_c} = "
                );
                nested_with(&mut out, Lang::C, &dims, &multipliers, 0, 8, &number);
                let _ = write!(
                    out,
                    ";\n\nstatic const int8_t charmlp_int8_{field}_shift{dims_c} = "
                );
                nested_with(&mut out, Lang::C, &dims, &shifts, 0, 16, &number);
            }
        }
        out.push_str(";\n\n");
    }
    out.push_str("static const uint32_t charmlp_int8_pow2_q24[64] = ");
    let pow2 = charmlp_core::int8::POW2_Q24;
    nested_with(&mut out, Lang::C, &[64], &pow2, 0, 8, &number);
    out.push_str(";\n\n#endif /* CHARMLP_INT8_MODEL_H */\n");
    out
}

/// A C header with the dimensions as macros, one `static const float` array per tensor, and
/// the alphabet as one UTF-8 string per token.
pub fn c_source(m: &dyn Loaded, origin: &str) -> String {
    let [what, shape] = banner(m, origin);
    let mut out = format!("/* {what}\n * {shape}\n");
    out.push_str(" * Tensors are row-major, as in charmlp-core: W1[context][embed][hidden],\n");
    out.push_str(" * W2T[vocab][hidden] (W2 transposed); batch norm:\n");
    out.push_str(" * gain * (x - bn_mean) / sqrtf(bn_var + 1e-5f) + bias.\n");
    out.push_str(" * charmlp_symbols[token] is the token's character in UTF-8; token 0 is the\n");
    out.push_str(" * boundary (start and end of a word), the empty string. */\n");
    out.push_str("#ifndef CHARMLP_MODEL_H\n#define CHARMLP_MODEL_H\n\n");
    c_dimensions(&mut out, m);
    let _ = writeln!(out, "#define CHARMLP_BN_EPS 1e-5f\n");
    c_symbols(&mut out, m, "charmlp_symbols");
    for (_, name, dims, values) in tensors(m) {
        let dims_c: String = dims.iter().map(|d| format!("[{d}]")).collect();
        let _ = write!(out, "static const float charmlp_{name}{dims_c} = ");
        nested(&mut out, Lang::C, &dims, values, 0);
        out.push_str(";\n\n");
    }
    out.push_str(concat!(
        "/* The arrays as the C library's charmlp_arrays (ffi/include/charmlp.h):\n",
        " * const charmlp_arrays a = CHARMLP_ARRAYS; charmlp_model_load_arrays(&model, &a); */\n",
        "#define CHARMLP_ARRAYS {CHARMLP_VOCAB, CHARMLP_EMBED, CHARMLP_CONTEXT, CHARMLP_HIDDEN, \\\n",
        "    charmlp_symbols, &charmlp_C[0][0], &charmlp_W1[0][0][0], charmlp_b1, charmlp_gain, \\\n",
        "    charmlp_bias, &charmlp_W2T[0][0], charmlp_b2, charmlp_bn_mean, charmlp_bn_var}\n\n",
        "#endif /* CHARMLP_MODEL_H */\n",
    ));
    out
}

/// The dimensions as macros: `CHARMLP_VOCAB`, `_EMBED`, `_CONTEXT`, `_HIDDEN`.
fn c_dimensions(out: &mut String, m: &dyn Loaded) {
    let s = m.shape();
    let _ = writeln!(out, "#define CHARMLP_VOCAB {}", s.vocab);
    let _ = writeln!(out, "#define CHARMLP_EMBED {}", s.embed);
    let _ = writeln!(out, "#define CHARMLP_CONTEXT {}", s.context);
    let _ = writeln!(out, "#define CHARMLP_HIDDEN {}", s.hidden);
}

/// `name[CHARMLP_VOCAB]`: each token's character as a UTF-8 string.
fn c_symbols(out: &mut String, m: &dyn Loaded, name: &str) {
    let _ = write!(
        out,
        "static const char *const {name}[CHARMLP_VOCAB] = {{\n    \"\","
    );
    for (i, ch) in m.chars().iter().enumerate() {
        if i % 12 == 11 {
            out.push_str("\n   ");
        }
        let _ = write!(out, " \"{}\",", c_string(*ch));
    }
    out.push_str("\n};\n\n");
}

#[cfg(test)]
mod tests {
    use super::{c_string, comment_text};

    #[test]
    fn c_strings_escape_all_but_plain_ascii() {
        assert_eq!(c_string('a'), "a");
        assert_eq!(c_string('é'), "\\303\\251");
        assert_eq!(c_string('"'), "\\042");
        assert_eq!(c_string('\\'), "\\134");
        assert_eq!(c_string('?'), "\\077");
        assert_eq!(c_string('中'), "\\344\\270\\255");
    }

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
