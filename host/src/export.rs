//! A model as source code that firmware compiles in: a Rust `static` of charmlp-core's own
//! `Model` type (used as it is, no parsing), or C arrays.

use crate::shapes::Loaded;
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
    let [what, shape] = banner(m, origin);
    let s = m.shape();
    let (v, e, t, h) = (s.vocab, s.embed, s.context, s.hidden);
    let mut out = format!("// {what}\n// {shape}\n");
    out.push_str("#[rustfmt::skip]\n");
    out.push_str("#[allow(clippy::approx_constant, clippy::excessive_precision)]\n");
    let _ = writeln!(
        out,
        "pub static MODEL: charmlp_core::Model<{v}, {e}, {t}, {h}> = charmlp_core::Model {{"
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
    out.push_str("    },\n};\n\n");
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
    out
}

/// A C header with the dimensions as macros, one `static const float` array per tensor, and
/// the alphabet as one UTF-8 string per token.
pub fn c_source(m: &dyn Loaded, origin: &str) -> String {
    let [what, shape] = banner(m, origin);
    let s = m.shape();
    let mut out = format!("/* {what}\n * {shape}\n");
    out.push_str(" * Tensors are row-major, as in charmlp-core: W1[context][embed][hidden],\n");
    out.push_str(" * W2T[vocab][hidden] (W2 transposed); batch norm:\n");
    out.push_str(" * gain * (x - bn_mean) / sqrtf(bn_var + 1e-5f) + bias.\n");
    out.push_str(" * charmlp_symbols[token] is the token's character in UTF-8; token 0 is the\n");
    out.push_str(" * boundary (start and end of a word), the empty string. */\n");
    out.push_str("#ifndef CHARMLP_MODEL_H\n#define CHARMLP_MODEL_H\n\n");
    let _ = writeln!(out, "#define CHARMLP_VOCAB {}", s.vocab);
    let _ = writeln!(out, "#define CHARMLP_EMBED {}", s.embed);
    let _ = writeln!(out, "#define CHARMLP_CONTEXT {}", s.context);
    let _ = writeln!(out, "#define CHARMLP_HIDDEN {}", s.hidden);
    let _ = writeln!(out, "#define CHARMLP_BN_EPS 1e-5f\n");
    out.push_str("static const char *const charmlp_symbols[CHARMLP_VOCAB] = {\n    \"\",");
    for (i, ch) in m.chars().iter().enumerate() {
        if i % 12 == 11 {
            out.push_str("\n   ");
        }
        let _ = write!(out, " \"{}\",", c_string(*ch));
    }
    out.push_str("\n};\n\n");
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
