//! Reading a words file: one word a line, any characters but control characters, every
//! mistake named by line and column. The alphabet is the data's: the sorted set of its
//! characters, as makemore's `sorted(set(''.join(words)))`, unless one is given. The file is
//! read as a stream with every limit applied while reading, so an endless or enormous input
//! ends in bounded time and memory.

use charmlp_core::{MAX_SYMBOLS, Token};
use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, Read};

/// Longest word accepted, in characters. makemore's names are at most 15 letters; anything much
/// longer is more likely a file that is not a word list than a word.
pub const MAX_WORD_LEN: usize = 64;

/// Longest line read, in bytes (surrounding blanks included, its `\n` or `\r\n` not). A longer one means
/// the file is not a word list (`/dev/zero`, a binary): reading stops there.
pub const MAX_LINE_BYTES: usize = 1024;

/// Most words read: far above any word list (a large dictionary holds a few hundred thousand);
/// `yes | charmlp train --data /dev/stdin` stops here.
pub const MAX_WORDS: usize = 1 << 24;

/// Most characters read, all words together (makemore's names.txt has 196,113): with the words'
/// own storage this keeps a words file's memory under about 1.5 GB and its validation passes
/// to a couple of seconds.
pub const MAX_LETTERS: usize = 1 << 26;

/// Most lines read, blank, bad and skipped ones included: `yes ''` ends here.
pub const MAX_LINES: usize = 1 << 26;

/// Bad lines listed in one error; the rest are counted.
pub const MAX_REPORTED: usize = 10;

/// What is wrong with one line of a words file, or with the file as a whole. `Display` gives
/// the message without the file name; see [`BadWords::at`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WordsError {
    #[error(
        "{line}:{column}: not valid UTF-8 (byte {byte} of the line); a words file is UTF-8 text"
    )]
    NotUtf8 {
        line: usize,
        column: usize,
        byte: usize,
    },
    #[error(
        "{line}:{column}: {} is a control character; a word holds printable characters, one \
         word a line{}",
        describe(*ch),
        if *ch == '\t' {
            " (a tab-separated file? keep its first column, e.g. `cut -f1 FILE > words.txt`)"
        } else {
            ""
        }
    )]
    Control {
        line: usize,
        column: usize,
        ch: char,
    },
    #[error(
        "{line}:{column}: {} is not in {alphabet}; {}",
        describe(*ch),
        if *lowercase_fits {
            "its lowercase is: pass --lowercase (or leave such words out with --skip-bad-words)"
        } else if *skippable {
            "leave such words out with --skip-bad-words"
        } else {
            "add it to the alphabet, or leave such words out with --skip-bad-words"
        }
    )]
    NotInAlphabet {
        line: usize,
        column: usize,
        ch: char,
        /// "the alphabet given by --alphabet" or "the model's alphabet".
        alphabet: &'static str,
        /// Whether the alphabet is the model's (fixed): then only skipping helps.
        skippable: bool,
        /// Whether the character's lowercase is in the alphabet, without --lowercase.
        lowercase_fits: bool,
    },
    #[error("{line}: word of {len} characters; the longest allowed is {MAX_WORD_LEN}")]
    TooLong { line: usize, len: usize },
    #[error(
        "{line}: line of more than {MAX_LINE_BYTES} bytes; {}",
        if *bare_cr {
            "its lines end in bare carriage returns (old Mac line endings): convert them \
             first, e.g. `tr '\\r' '\\n' < FILE > unix.txt`"
        } else {
            "this is not a words file (one word of at most 64 characters a line)"
        }
    )]
    LineTooLong { line: usize, bare_cr: bool },
    #[error(
        "{line}:{column}: a carriage return inside the line (old Mac line endings?); a words \
         file's lines end in \\n or \\r\\n: convert it first, e.g. `tr '\\r' '\\n' < FILE > unix.txt`"
    )]
    BareCr { line: usize, column: usize },
    #[error(
        "{line}: more characters than the {MAX_LETTERS} allowed; sample the file first \
         (e.g. `shuf -n 1000000 FILE > sample.txt`)"
    )]
    TooManyLetters { line: usize },
    #[error("this is a charmlp model file, not a words file (one word a line)")]
    ModelFile,
    #[error(
        "{line}: more words than the {MAX_WORDS} allowed; sample the file first \
         (e.g. `shuf -n 1000000 FILE > sample.txt`)"
    )]
    TooMany { line: usize },
    #[error(
        "{line}: more lines than the {MAX_LINES} allowed (blank, bad and skipped ones count \
         too); this is not a words file"
    )]
    TooManyLines { line: usize },
    #[error("no words: the file is empty or holds only blank lines")]
    Empty,
    #[error("no words left: --skip-bad-words left out all {skipped} of them")]
    AllSkipped { skipped: usize },
    #[error("{}", too_many_symbols(*symbols, rarest, *lowercased))]
    TooManySymbols {
        /// Symbols the data needs, the boundary included.
        symbols: usize,
        /// The rarest characters and their counts, rarest first.
        rarest: Vec<(char, usize)>,
        /// Symbols left after Unicode lowercasing, if that is fewer.
        lowercased: Option<usize>,
    },
    #[error("cannot read: {0}")]
    Io(String),
}

/// Names of the invisible characters a words file most often holds by accident: the C0
/// controls, DEL and NEL, and Unicode's spaces, joiners, marks and direction controls.
const INVISIBLE: [(char, &str); 67] = [
    ('\0', "NULL"),
    ('\x01', "START OF HEADING"),
    ('\x02', "START OF TEXT"),
    ('\x03', "END OF TEXT"),
    ('\x04', "END OF TRANSMISSION"),
    ('\x05', "ENQUIRY"),
    ('\x06', "ACKNOWLEDGE"),
    ('\x07', "BELL"),
    ('\x08', "BACKSPACE"),
    ('\t', "CHARACTER TABULATION"),
    ('\n', "LINE FEED"),
    ('\x0b', "LINE TABULATION"),
    ('\x0c', "FORM FEED"),
    ('\r', "CARRIAGE RETURN"),
    ('\x0e', "SHIFT OUT"),
    ('\x0f', "SHIFT IN"),
    ('\x10', "DATA LINK ESCAPE"),
    ('\x11', "DEVICE CONTROL ONE"),
    ('\x12', "DEVICE CONTROL TWO"),
    ('\x13', "DEVICE CONTROL THREE"),
    ('\x14', "DEVICE CONTROL FOUR"),
    ('\x15', "NEGATIVE ACKNOWLEDGE"),
    ('\x16', "SYNCHRONOUS IDLE"),
    ('\x17', "END OF TRANSMISSION BLOCK"),
    ('\x18', "CANCEL"),
    ('\x19', "END OF MEDIUM"),
    ('\x1a', "SUBSTITUTE"),
    ('\x1b', "ESCAPE"),
    ('\x1c', "INFORMATION SEPARATOR FOUR"),
    ('\x1d', "INFORMATION SEPARATOR THREE"),
    ('\x1e', "INFORMATION SEPARATOR TWO"),
    ('\x1f', "INFORMATION SEPARATOR ONE"),
    (' ', "SPACE"),
    ('\x7f', "DELETE"),
    ('\u{85}', "NEXT LINE"),
    ('\u{a0}', "NO-BREAK SPACE"),
    ('\u{ad}', "SOFT HYPHEN"),
    ('\u{180e}', "MONGOLIAN VOWEL SEPARATOR"),
    ('\u{2000}', "EN QUAD"),
    ('\u{2001}', "EM QUAD"),
    ('\u{2002}', "EN SPACE"),
    ('\u{2003}', "EM SPACE"),
    ('\u{2004}', "THREE-PER-EM SPACE"),
    ('\u{2005}', "FOUR-PER-EM SPACE"),
    ('\u{2006}', "SIX-PER-EM SPACE"),
    ('\u{2007}', "FIGURE SPACE"),
    ('\u{2008}', "PUNCTUATION SPACE"),
    ('\u{2009}', "THIN SPACE"),
    ('\u{200a}', "HAIR SPACE"),
    ('\u{200b}', "ZERO WIDTH SPACE"),
    ('\u{200c}', "ZERO WIDTH NON-JOINER"),
    ('\u{200d}', "ZERO WIDTH JOINER"),
    ('\u{200e}', "LEFT-TO-RIGHT MARK"),
    ('\u{200f}', "RIGHT-TO-LEFT MARK"),
    ('\u{2028}', "LINE SEPARATOR"),
    ('\u{2029}', "PARAGRAPH SEPARATOR"),
    ('\u{202a}', "LEFT-TO-RIGHT EMBEDDING"),
    ('\u{202b}', "RIGHT-TO-LEFT EMBEDDING"),
    ('\u{202c}', "POP DIRECTIONAL FORMATTING"),
    ('\u{202d}', "LEFT-TO-RIGHT OVERRIDE"),
    ('\u{202e}', "RIGHT-TO-LEFT OVERRIDE"),
    ('\u{202f}', "NARROW NO-BREAK SPACE"),
    ('\u{2060}', "WORD JOINER"),
    ('\u{2066}', "LEFT-TO-RIGHT ISOLATE"),
    ('\u{2067}', "RIGHT-TO-LEFT ISOLATE"),
    ('\u{3000}', "IDEOGRAPHIC SPACE"),
    ('\u{feff}', "ZERO WIDTH NO-BREAK SPACE (byte-order mark)"),
];

/// Characters that show as nothing, or combine with the one before them, when printed: these
/// are shown by code point only.
fn is_invisible(ch: char) -> bool {
    const RANGES: [(char, char); 12] = [
        ('\u{ad}', '\u{ad}'),       // soft hyphen
        ('\u{180e}', '\u{180e}'),   // Mongolian vowel separator
        ('\u{feff}', '\u{feff}'),   // zero width no-break space (byte-order mark)
        ('\u{0300}', '\u{036f}'),   // combining diacritical marks
        ('\u{1ab0}', '\u{1aff}'),   // combining marks, extended
        ('\u{1dc0}', '\u{1dff}'),   // combining marks, supplement
        ('\u{2000}', '\u{206f}'),   // general punctuation's spaces and format controls
        ('\u{20d0}', '\u{20ff}'),   // combining marks for symbols
        ('\u{fe00}', '\u{fe0f}'),   // variation selectors
        ('\u{fe20}', '\u{fe2f}'),   // combining half marks
        ('\u{e0000}', '\u{e007f}'), // tags
        ('\u{e0100}', '\u{e01ef}'), // variation selectors, supplement
    ];
    ch.is_control() || ch.is_whitespace() || RANGES.iter().any(|&(lo, hi)| (lo..=hi).contains(&ch))
}

/// The message for an alphabet beyond the capacity, with the flags that help.
fn too_many_symbols(symbols: usize, rarest: &[(char, usize)], lowercased: Option<usize>) -> String {
    let rare = rarest
        .iter()
        .map(|&(ch, n)| format!("{} ×{n}", describe(ch)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut msg = format!(
        "{symbols} symbols (the boundary and {} distinct characters); a model holds at most \
         {MAX_SYMBOLS}. The rarest characters: {rare}.",
        symbols - 1
    );
    if let Some(n) = lowercased {
        msg.push_str(&format!(" --lowercase leaves {n} symbols."));
    }
    msg.push_str(
        " Fix the alphabet with --alphabet CHARS and leave out the words outside it with \
         --skip-bad-words.",
    );
    msg
}

/// A character as a message shows it: `'é' (U+00E9)`, or for an invisible one its code point
/// and, for the usual suspects, its name: `U+00A0 NO-BREAK SPACE`.
pub fn describe(ch: char) -> String {
    let code = format!("U+{:04X}", u32::from(ch));
    if let Some((_, name)) = INVISIBLE.iter().find(|(c, _)| *c == ch) {
        format!("{code} {name}")
    } else if is_invisible(ch) {
        format!("{code} (an invisible character)")
    } else if ch == '\'' {
        "\"'\"".to_string()
    } else if ch.is_ascii() {
        format!("'{ch}'")
    } else {
        format!("'{ch}' ({code})")
    }
}

/// An alphabet as a message shows it: its characters in order, the invisible ones (spaces,
/// joiners, marks) and the backslash escaped as `\u{20}` and `\\`.
pub fn shown_chars(chars: &[char]) -> String {
    chars
        .iter()
        .map(|&c| {
            if c == '\\' {
                "\\\\".to_string()
            } else if is_invisible(c) {
                format!("\\u{{{:x}}}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

impl WordsError {
    /// Whether reading stops at this error (the rest of the file cannot be read as lines).
    fn is_fatal(&self) -> bool {
        matches!(
            self,
            WordsError::LineTooLong { .. }
                | WordsError::TooMany { .. }
                | WordsError::TooManyLetters { .. }
                | WordsError::TooManyLines { .. }
                | WordsError::Io(_)
                | WordsError::ModelFile
        )
    }
}

/// Every bad line found (the first [`MAX_REPORTED`]) and how many there were.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadWords {
    pub errors: Vec<WordsError>,
    pub count: usize,
}

impl BadWords {
    /// The errors with the file name in front, as compilers print them: `names.txt:3:5: …`;
    /// several bad lines as a count and one line each.
    pub fn at<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        struct At<'a>(&'a str, &'a BadWords);
        impl fmt::Display for At<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let (file, bad) = (self.0, self.1);
                // Errors of the whole file have no line number to stand after the name.
                let sep = |e: &WordsError| {
                    if matches!(
                        e,
                        WordsError::Empty
                            | WordsError::AllSkipped { .. }
                            | WordsError::TooManySymbols { .. }
                            | WordsError::Io(_)
                            | WordsError::ModelFile
                    ) {
                        ": "
                    } else {
                        ":"
                    }
                };
                if let [only] = bad.errors.as_slice() {
                    return write!(f, "{file}{}{only}", sep(only));
                }
                write!(f, "{file}: {} problems", bad.count)?;
                if bad.count > bad.errors.len() {
                    write!(f, " (the first {} below)", bad.errors.len())?;
                }
                for e in &bad.errors {
                    write!(f, "\n  {file}{}{e}", sep(e))?;
                }
                Ok(())
            }
        }
        At(file, self)
    }
}

/// A line without its `\n` or `\r\n`.
fn content(raw: &[u8]) -> &[u8] {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    raw.strip_suffix(b"\r").unwrap_or(raw)
}

/// How a words file is read.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// Lowercase every word (Unicode-aware: 'É' becomes 'é').
    pub lowercase: bool,
    /// The alphabet's characters, sorted and each once; `None`: the data's.
    pub alphabet: Option<Alphabet>,
    /// Leave out words with characters outside a given alphabet (and count them) instead of
    /// refusing the file.
    pub skip_bad_words: bool,
}

/// A fixed alphabet and where it came from, for messages.
#[derive(Clone, Debug)]
pub struct Alphabet {
    /// Sorted, each once, no control characters.
    pub chars: Vec<char>,
    /// "the alphabet given by --alphabet" or "the model's alphabet".
    pub source: &'static str,
}

/// The words of a file as tokens of their alphabet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Words {
    /// The alphabet's characters, sorted: token i + 1 is `chars[i]` (token 0 is the boundary).
    pub chars: Vec<char>,
    /// How often each of `chars` occurs in the words.
    pub counts: Vec<usize>,
    pub words: Vec<Vec<Token>>,
    /// Words left out by [`Rules::skip_bad_words`].
    pub skipped: usize,
}

impl Words {
    /// Symbols of the vocabulary: the boundary and the characters.
    pub fn symbols(&self) -> usize {
        self.chars.len() + 1
    }
}

/// One line's word (trimmed, lowercased if asked), or why it is not one. Columns count
/// characters of the line as it is in the file.
fn parse_line(line: usize, raw: &[u8], rules: &Rules) -> Result<Option<String>, WordsError> {
    let raw = content(raw);
    if let Some(at) = raw.iter().position(|&b| b == b'\r') {
        // Columns count characters, as everywhere else: bytes that are not the start of a
        // UTF-8 character (continuation bytes, 10xxxxxx) are not counted.
        let column = raw[..at].iter().filter(|&&b| (b & 0xc0) != 0x80).count() + 1;
        return Err(WordsError::BareCr { line, column });
    }
    // A UTF-8 byte-order mark (Windows editors write one) is not part of the first word.
    let bom = "\u{feff}".as_bytes();
    let (raw, skipped) = match raw.strip_prefix(bom) {
        Some(rest) if line == 1 => (rest, bom.len()),
        _ => (raw, 0),
    };
    let text = std::str::from_utf8(raw).map_err(|e| {
        let valid = &raw[..e.valid_up_to()];
        WordsError::NotUtf8 {
            line,
            // The characters before it are valid: count them, as other columns do.
            column: valid.iter().filter(|&&b| (b & 0xc0) != 0x80).count() + 1,
            byte: skipped + e.valid_up_to() + 1,
        }
    })?;
    // Surrounding whitespace is not part of the word, as makemore's `w.strip()`.
    let leading = text.chars().take_while(|c| c.is_whitespace()).count();
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    let mut word = String::with_capacity(trimmed.len());
    for (i, ch) in trimmed.chars().enumerate() {
        let column = leading + i + 1;
        if ch.is_control() {
            return Err(WordsError::Control { line, column, ch });
        }
        let start = word.len();
        if rules.lowercase {
            word.extend(ch.to_lowercase());
        } else {
            word.push(ch);
        }
        if let Some(alphabet) = &rules.alphabet {
            let outside = word[start..]
                .chars()
                .any(|c| alphabet.chars.binary_search(&c).is_err());
            if outside {
                let known = |c: char| alphabet.chars.binary_search(&c).is_ok();
                return Err(WordsError::NotInAlphabet {
                    line,
                    column,
                    ch,
                    alphabet: alphabet.source,
                    skippable: alphabet.source == MODELS,
                    lowercase_fits: !rules.lowercase && ch.to_lowercase().all(known),
                });
            }
        }
    }
    let len = word.chars().count();
    if len > MAX_WORD_LEN {
        return Err(WordsError::TooLong { line, len });
    }
    Ok(Some(word))
}

/// [`Alphabet::source`] of a model's alphabet.
pub const MODELS: &str = "the model's alphabet";
/// [`Alphabet::source`] of `--alphabet`.
pub const GIVEN: &str = "the alphabet given by --alphabet";

/// Reads a words file from a stream. Lines end in `\n` or `\r\n`; blank (or whitespace-only)
/// lines are skipped, a missing final newline and a leading byte-order mark are fine. Every
/// other line, trimmed of surrounding whitespace, is a word of 1 to [`MAX_WORD_LEN`]
/// characters, none of them a control character (and, with a given alphabet, all of them in
/// it). Every bad line is reported (up to [`MAX_REPORTED`], with the count); a line over
/// [`MAX_LINE_BYTES`], more than [`MAX_WORDS`] words or a read error stop the reading at once.
pub fn read_words(reader: impl BufRead, rules: &Rules) -> Result<Words, BadWords> {
    read_words_up_to(reader, rules, MAX_WORDS, MAX_LETTERS, MAX_LINES)
}

/// One error, as a [`BadWords`].
fn only(e: WordsError) -> BadWords {
    BadWords {
        errors: vec![e],
        count: 1,
    }
}

/// [`read_words`] with other limits than [`MAX_WORDS`] and [`MAX_LETTERS`].
fn read_words_up_to(
    mut reader: impl BufRead,
    rules: &Rules,
    max_words: usize,
    max_letters: usize,
    max_lines: usize,
) -> Result<Words, BadWords> {
    let mut words: Vec<String> = Vec::new();
    let mut skipped = 0usize;
    let mut bad = BadWords {
        errors: Vec::new(),
        count: 0,
    };
    // A model file: the magic and a format version (1 or 2, little-endian), which no text has.
    let model_file = |b: &[u8]| {
        (b.starts_with(b"CMLP") && matches!(b.get(4..6), Some([1 | 2, 0])))
            || charmlp_core::safetensors::looks_like_safetensors(b)
    };
    if reader.fill_buf().is_ok_and(model_file) {
        return Err(only(WordsError::ModelFile));
    }
    // A line's limit counts its content, not its `\n` or `\r\n`: read up to two bytes more.
    let mut buf = Vec::with_capacity(MAX_LINE_BYTES + 2);
    let mut letters = 0usize;
    for line in 1.. {
        buf.clear();
        let limit = (MAX_LINE_BYTES + 2) as u64;
        let result = match (&mut reader).take(limit).read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) if line > max_lines => Err(WordsError::TooManyLines { line }),
            Ok(_) if content(&buf).len() > MAX_LINE_BYTES => Err(WordsError::LineTooLong {
                line,
                bare_cr: content(&buf).contains(&b'\r'),
            }),
            Ok(_) => match parse_line(line, &buf, rules) {
                Ok(Some(_)) if words.len() == max_words => Err(WordsError::TooMany { line }),
                Ok(Some(word)) if letters + word.chars().count() > max_letters => {
                    Err(WordsError::TooManyLetters { line })
                }
                parsed => parsed,
            },
            Err(e) => Err(WordsError::Io(e.to_string())),
        };
        match result {
            Ok(Some(word)) => {
                letters += word.chars().count();
                words.push(word);
            }
            Ok(None) => {}
            Err(WordsError::NotInAlphabet { .. }) if rules.skip_bad_words => skipped += 1,
            Err(e) => {
                bad.count += 1;
                // The error that stops the reading is always shown: it says why the rest of
                // the file was not read.
                if e.is_fatal() {
                    bad.errors.truncate(MAX_REPORTED - 1);
                    bad.errors.push(e);
                    break;
                }
                if bad.errors.len() < MAX_REPORTED {
                    bad.errors.push(e);
                }
            }
        }
    }
    if bad.count > 0 {
        return Err(bad);
    }
    if words.is_empty() {
        return Err(only(if skipped > 0 {
            WordsError::AllSkipped { skipped }
        } else {
            WordsError::Empty
        }));
    }
    tokenize(&words, rules, skipped)
}

/// The alphabet of the words (or the given one) and the words as its tokens; an alphabet
/// beyond [`MAX_SYMBOLS`] is an error naming the rarest characters and the flags that help.
fn tokenize(words: &[String], rules: &Rules, skipped: usize) -> Result<Words, BadWords> {
    let mut seen: HashMap<char, usize> = HashMap::new();
    for ch in words.iter().flat_map(|w| w.chars()) {
        *seen.entry(ch).or_default() += 1;
    }
    let chars: Vec<char> = match &rules.alphabet {
        Some(alphabet) => alphabet.chars.clone(),
        None => {
            let mut chars: Vec<char> = seen.keys().copied().collect();
            chars.sort_unstable();
            chars
        }
    };
    if chars.len() + 1 > MAX_SYMBOLS {
        let mut by_count: Vec<(char, usize)> = seen.iter().map(|(&c, &n)| (c, n)).collect();
        by_count.sort_unstable_by_key(|&(c, n)| (n, c));
        by_count.truncate(8);
        let mut lower: Vec<char> = chars.iter().flat_map(|c| c.to_lowercase()).collect();
        lower.sort_unstable();
        lower.dedup();
        let lowercased = (!rules.lowercase && lower.len() < chars.len()).then_some(lower.len() + 1);
        return Err(only(WordsError::TooManySymbols {
            symbols: chars.len() + 1,
            rarest: by_count,
            lowercased,
        }));
    }
    // Tokens 1.. in the alphabet's order; ASCII through a table, the rest through a map.
    let mut ascii = [None; 128];
    let mut other = HashMap::new();
    for (i, &ch) in chars.iter().enumerate() {
        let token = Token::wrapping(i as u8 + 1, MAX_SYMBOLS);
        match ascii.get_mut(ch as usize) {
            Some(slot) => *slot = Some(token),
            None => {
                other.insert(ch, token);
            }
        }
    }
    let token = |ch: char| -> Token {
        let t = match ascii.get(ch as usize) {
            Some(t) => *t,
            None => other.get(&ch).copied(),
        };
        // Every character of every word is in the alphabet: the data's, or a given one that
        // parse_line checked each character against.
        t.unwrap_or(Token::BOUNDARY)
    };
    let counts = chars
        .iter()
        .map(|c| seen.get(c).copied().unwrap_or(0))
        .collect();
    Ok(Words {
        counts,
        words: words
            .iter()
            .map(|w| w.chars().map(token).collect())
            .collect(),
        chars,
        skipped,
    })
}

/// [`read_words`] of bytes in memory.
pub fn parse_words(bytes: &[u8], rules: &Rules) -> Result<Words, BadWords> {
    read_words(bytes, rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(words: &Words) -> Vec<String> {
        words
            .words
            .iter()
            .map(|w| w.iter().map(|t| words.chars[t.index() - 1]).collect())
            .collect()
    }

    fn parse(bytes: &[u8]) -> Result<Words, BadWords> {
        parse_words(bytes, &Rules::default())
    }

    fn first(bytes: &[u8]) -> WordsError {
        parse(bytes).unwrap_err().errors[0].clone()
    }

    fn given(chars: &str) -> Option<Alphabet> {
        let mut chars: Vec<char> = chars.chars().collect();
        chars.sort_unstable();
        Some(Alphabet {
            chars,
            source: GIVEN,
        })
    }

    #[test]
    fn accepts_crlf_blank_lines_bom_and_no_final_newline() {
        let w = parse(b"emma\r\n\r\nolivia\n\n  \nava").unwrap();
        assert_eq!(text(&w), ["emma", "olivia", "ava"]);
        let w = parse("\u{feff}emma\r\nava\r\n".as_bytes()).unwrap();
        assert_eq!(text(&w), ["emma", "ava"]);
    }

    #[test]
    fn the_alphabet_is_the_datas_sorted_characters_and_a_z_is_makemores() {
        let w = parse(b"emma\nolivia\nava\n").unwrap();
        assert_eq!(w.chars, ['a', 'e', 'i', 'l', 'm', 'o', 'v']);
        assert_eq!(
            w.words[0].iter().map(|t| t.index()).collect::<Vec<_>>(),
            [2, 5, 5, 1]
        );
        assert_eq!(w.counts, [4, 1, 2, 1, 2, 1, 2]);
        let all: String = ('a'..='z').map(|c| format!("{c}\n")).collect();
        let w = parse(all.as_bytes()).unwrap();
        assert_eq!(w.symbols(), 27);
        for (i, word) in w.words.iter().enumerate() {
            assert_eq!(word.iter().map(|t| t.index()).collect::<Vec<_>>(), [i + 1]);
        }
    }

    #[test]
    fn any_printable_character_is_part_of_a_word_and_spaces_around_are_not() {
        let w = parse("  Jean-Luc \nO'Brien\nZoë\n東京\nsan josé\na.b\n\u{a0}x\u{a0}\n".as_bytes())
            .unwrap();
        assert_eq!(
            text(&w),
            ["Jean-Luc", "O'Brien", "Zoë", "東京", "san josé", "a.b", "x"]
        );
        assert!(w.chars.contains(&' ') && w.chars.contains(&'.') && w.chars.contains(&'東'));
        let lower = parse_words(
            "Émile\nZOË\n".as_bytes(),
            &Rules {
                lowercase: true,
                ..Rules::default()
            },
        )
        .unwrap();
        assert_eq!(text(&lower), ["émile", "zoë"]);
    }

    #[test]
    fn control_characters_are_named_by_line_and_column() {
        assert_eq!(
            first(b"emma\nol\x00ivia\n"),
            WordsError::Control {
                line: 2,
                column: 3,
                ch: '\0'
            }
        );
        // Columns count the line as it is, leading spaces included.
        let e = first(b"ok\n  a\tb\n");
        assert_eq!(
            e,
            WordsError::Control {
                line: 2,
                column: 4,
                ch: '\t'
            }
        );
        let msg = e.to_string();
        assert!(
            msg.contains("U+0009 CHARACTER TABULATION") && msg.contains("cut -f1"),
            "{msg}"
        );
        assert!(
            first("a\u{85}b".as_bytes())
                .to_string()
                .contains("U+0085 NEXT LINE")
        );
    }

    #[test]
    fn a_given_alphabet_refuses_or_skips_the_words_outside_it() {
        let rules = Rules {
            alphabet: given("abc"),
            ..Rules::default()
        };
        let e = parse_words(b"ab\nabd\ncab\nxa\n", &rules).unwrap_err();
        assert_eq!(e.count, 2);
        let shown = e.at("w.txt").to_string();
        assert!(
            shown.contains("w.txt:2:3: 'd' is not in the alphabet given by --alphabet")
                && shown.contains("--skip-bad-words"),
            "{shown}"
        );
        let skip = Rules {
            skip_bad_words: true,
            ..rules.clone()
        };
        let w = parse_words(b"ab\nabd\ncab\nxa\n", &skip).unwrap();
        assert_eq!((w.skipped, w.chars.len()), (2, 3));
        assert_eq!(text(&w), ["ab", "cab"]);
        // The given alphabet stands even where the data leaves a character out.
        let w = parse_words(b"a\n", &skip).unwrap();
        assert_eq!(
            (w.chars.clone(), w.counts.clone()),
            (vec!['a', 'b', 'c'], vec![1, 0, 0])
        );
        assert_eq!(
            parse_words(b"x\ny\n", &skip).unwrap_err().errors,
            [WordsError::AllSkipped { skipped: 2 }]
        );
        // Lowercasing comes first: 'A' is 'a'; without it, the error says so.
        let e = parse_words(b"CAB\n", &rules).unwrap_err();
        assert!(
            e.errors[0]
                .to_string()
                .contains("its lowercase is: pass --lowercase"),
            "{e:?}"
        );
        let lower = Rules {
            lowercase: true,
            ..rules
        };
        assert_eq!(text(&parse_words(b"CAB\n", &lower).unwrap()), ["cab"]);
    }

    #[test]
    fn an_alphabet_beyond_the_capacity_names_the_rarest_characters_and_the_flags() {
        // a–z (a 200 times), A–Z, Cyrillic А–я and Greek α–ω: 141 characters, 84 symbols
        // once lowercased.
        let mut text = "a\n".repeat(200);
        let chars = ('a'..='z')
            .chain('A'..='Z')
            .chain('\u{410}'..='\u{44f}')
            .chain('\u{3b1}'..='\u{3c9}');
        for c in chars {
            text.push(c);
            text.push('\n');
        }
        let e = first(text.as_bytes());
        let WordsError::TooManySymbols {
            symbols,
            ref rarest,
            lowercased,
        } = e
        else {
            panic!("{e:?}");
        };
        assert_eq!(symbols, 142);
        assert_eq!(rarest.len(), 8);
        assert!(rarest.iter().all(|&(_, n)| n == 1));
        assert_eq!(lowercased, Some(84));
        let msg = e.to_string();
        assert!(
            msg.contains("at most 128")
                && msg.contains("--lowercase leaves")
                && msg.contains("--alphabet")
                && msg.contains("--skip-bad-words"),
            "{msg}"
        );
        // And the flag it names works.
        let rules = Rules {
            lowercase: true,
            ..Rules::default()
        };
        assert!(parse_words(text.as_bytes(), &rules).is_ok());
        // 127 characters fit exactly; 128 do not.
        let fit: String = ('\u{100}'..).take(127).map(|c| format!("{c}\n")).collect();
        assert_eq!(parse(fit.as_bytes()).unwrap().symbols(), MAX_SYMBOLS);
        let over: String = ('\u{100}'..).take(128).map(|c| format!("{c}\n")).collect();
        assert!(matches!(
            first(over.as_bytes()),
            WordsError::TooManySymbols { symbols: 129, .. }
        ));
    }

    #[test]
    fn invisible_characters_are_named() {
        let msg = |bytes: &[u8]| first(bytes).to_string();
        assert!(msg(b"a\x0bb").contains("U+000B LINE TABULATION"));
        assert!(msg(b"a\x7fb").contains("U+007F DELETE"));
        assert!(describe('\u{200b}').contains("U+200B ZERO WIDTH SPACE"));
        assert_eq!(describe('é'), "'é' (U+00E9)");
    }

    #[test]
    fn every_bad_line_is_counted_and_the_first_ones_listed() {
        let mut text = String::new();
        for i in 0..25 {
            text.push_str(if i % 2 == 0 { "ok\n" } else { "n\x010\n" });
        }
        let e = parse(text.as_bytes()).unwrap_err();
        assert_eq!(e.count, 12);
        assert_eq!(e.errors.len(), MAX_REPORTED);
        let shown = e.at("w.txt").to_string();
        assert!(shown.starts_with("w.txt: 12 problems (the first 10 below)"));
        assert!(
            shown.contains("\n  w.txt:2:2: U+0001 START OF HEADING is a control character"),
            "{shown}"
        );
        assert_eq!(shown.lines().count(), 11);
    }

    #[test]
    fn rejects_invalid_utf8_empty_files_and_long_words() {
        assert_eq!(
            first(b"emma\nab\xffc\n"),
            WordsError::NotUtf8 {
                line: 2,
                column: 3,
                byte: 3
            }
        );
        assert_eq!(first(b""), WordsError::Empty);
        assert_eq!(first(b"\n\r\n \n"), WordsError::Empty);
        let long = "a".repeat(MAX_WORD_LEN + 1);
        assert_eq!(
            first(long.as_bytes()),
            WordsError::TooLong {
                line: 1,
                len: MAX_WORD_LEN + 1
            }
        );
        assert!(parse("a".repeat(MAX_WORD_LEN).as_bytes()).is_ok());
    }

    #[test]
    fn endless_inputs_stop_at_the_limits() {
        // /dev/zero: one endless line, refused after MAX_LINE_BYTES + 1 bytes.
        let e = read_words(
            std::io::BufReader::new(std::io::repeat(0)),
            &Rules::default(),
        )
        .unwrap_err();
        assert_eq!(
            e.errors,
            [WordsError::LineTooLong {
                line: 1,
                bare_cr: false
            }]
        );
        // `yes a`: endless words, refused after the word limit (a small one here: the real
        // one, MAX_WORDS, takes about a gigabyte to reach).
        let e = read_words_up_to(
            std::io::BufReader::new(Repeat(b"a\n", 0)),
            &Rules::default(),
            1000,
            5000,
            MAX_LINES,
        )
        .unwrap_err();
        assert_eq!(e.errors, [WordsError::TooMany { line: 1001 }]);
        let ok = read_words_up_to(
            &b"a\n".repeat(1000)[..],
            &Rules::default(),
            1000,
            1000,
            MAX_LINES,
        )
        .unwrap();
        assert_eq!(ok.words.len(), 1000);
        // Long words reach the letter limit first.
        let e = read_words_up_to(
            &b"abcd\n".repeat(1000)[..],
            &Rules::default(),
            1000,
            2000,
            MAX_LINES,
        )
        .unwrap_err();
        assert_eq!(e.errors, [WordsError::TooManyLetters { line: 501 }]);
    }

    #[test]
    fn the_line_limit_counts_content_whatever_the_line_ending() {
        // A blank line of exactly the limit is read (and skipped); one byte more is refused.
        let blank = " ".repeat(MAX_LINE_BYTES);
        for ending in ["\n", "\r\n", ""] {
            let text = format!("anna\n{blank}{ending}");
            assert!(parse(text.as_bytes()).is_ok(), "{ending:?}");
            let text = format!("anna\n{blank} {ending}");
            assert!(
                matches!(
                    first(text.as_bytes()),
                    WordsError::LineTooLong { line: 2, .. }
                ),
                "{ending:?}"
            );
        }
    }

    #[test]
    fn bare_carriage_returns_and_model_files_get_their_own_hint() {
        let e = first(b"anna\rbob\rcyd\r");
        assert_eq!(e, WordsError::BareCr { line: 1, column: 5 });
        assert!(e.to_string().contains("tr '\\r' '\\n'"), "{e}");
        let long = b"anna\r".repeat(300);
        let e = first(&long);
        assert!(e.to_string().contains("tr '\\r' '\\n'"), "{e}");
        assert_eq!(first(b"CMLP\x01\x00"), WordsError::ModelFile);
    }

    #[test]
    fn the_error_that_stops_the_reading_is_always_listed() {
        let mut text = "\x01\n".repeat(MAX_REPORTED);
        text.push_str(&"a".repeat(2000));
        let e = parse(text.as_bytes()).unwrap_err();
        assert_eq!(e.count, MAX_REPORTED + 1);
        assert_eq!(e.errors.len(), MAX_REPORTED);
        assert!(matches!(
            e.errors.last(),
            Some(WordsError::LineTooLong { line: 11, .. })
        ));
        // A blank line after the last allowed word is not one word too many.
        assert!(read_words_up_to(&b"a\na\n\n"[..], &Rules::default(), 2, 10, MAX_LINES).is_ok());
        // A long CRLF line is not an old-Mac file.
        let crlf = format!("{}\r\n", "1".repeat(MAX_LINE_BYTES + 1));
        assert!(matches!(
            first(crlf.as_bytes()),
            WordsError::LineTooLong { bare_cr: false, .. }
        ));
        // Byte offsets count the byte-order mark; columns count characters.
        assert_eq!(
            first(b"\xef\xbb\xbfab\xff"),
            WordsError::NotUtf8 {
                line: 1,
                column: 3,
                byte: 6
            }
        );
        assert_eq!(
            first("é\rb".as_bytes()),
            WordsError::BareCr { line: 1, column: 2 }
        );
    }

    #[test]
    fn endless_blank_or_bad_lines_stop_at_the_line_limit() {
        for line in [&b"\n"[..], b"\x01\n", b"  \n"] {
            let endless = std::io::BufReader::new(Repeat(line, 0));
            let e = read_words_up_to(endless, &Rules::default(), MAX_WORDS, MAX_LETTERS, 1000)
                .unwrap_err();
            assert!(
                matches!(
                    e.errors.last(),
                    Some(WordsError::TooManyLines { line: 1001 })
                ),
                "{line:?}: {e:?}"
            );
        }
    }

    #[test]
    fn a_word_that_starts_with_the_magic_is_a_word() {
        let w = parse(b"CMLPATRICK\nanna\n").unwrap();
        assert_eq!(w.words.len(), 2);
        assert_eq!(first(b"CMLP\x02\x00\x1b\x00"), WordsError::ModelFile);
        assert_eq!(describe('\''), "\"'\"");
        assert_eq!(
            shown_chars(&['a', '\u{feff}', '\u{ad}']),
            "a\\u{feff}\\u{ad}"
        );
    }

    /// A line repeated forever.
    struct Repeat(&'static [u8], usize);
    impl Read for Repeat {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            for b in buf.iter_mut() {
                *b = self.0[self.1];
                self.1 = (self.1 + 1) % self.0.len();
            }
            Ok(buf.len())
        }
    }
}
