//! Reading a words file: one word a line, letters a–z only, every mistake named by line and
//! column. The file is read as a stream with every limit applied while reading, so an endless
//! or enormous input ends in bounded time and memory.

use charmlp_core::Token;
use std::fmt;
use std::io::{BufRead, Read};

/// Longest word accepted. makemore's names are at most 15 letters; anything much longer is
/// more likely a file that is not a word list than a word.
pub const MAX_WORD_LEN: usize = 64;

/// Longest line read, in bytes (surrounding blanks included, its `\n` or `\r\n` not). A longer one means
/// the file is not a word list (`/dev/zero`, a binary): reading stops there.
pub const MAX_LINE_BYTES: usize = 1024;

/// Most words read: far above any word list (a large dictionary holds a few hundred thousand);
/// `yes | charmlp train --data /dev/stdin` stops here.
pub const MAX_WORDS: usize = 1 << 24;

/// Most letters read, all words together (makemore's names.txt has 196,113): with the words'
/// own storage this keeps a words file's memory under about 1.5 GB and its validation passes
/// to a couple of seconds.
pub const MAX_LETTERS: usize = 1 << 26;

/// Bad lines listed in one error; the rest are counted.
pub const MAX_REPORTED: usize = 10;

/// What is wrong with one line of a words file, or with the file as a whole. `Display` gives
/// the message without the file name; see [`BadWords::at`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WordsError {
    #[error("{line}: not valid UTF-8 (byte {byte} of the line); a words file is UTF-8 text")]
    NotUtf8 { line: usize, byte: usize },
    #[error(
        "{line}:{column}: '{ch}' is uppercase; only lowercase a-z are allowed \
         (lowercase the file first, e.g. `tr A-Z a-z < FILE > lower.txt`)"
    )]
    Uppercase {
        line: usize,
        column: usize,
        ch: char,
    },
    #[error(
        "{line}:{column}: {} is not a letter a-z; this build trains on a-z only \
         (transliterate the file first, e.g. \
         `LC_ALL=C.UTF-8 iconv -f UTF-8 -t ASCII//TRANSLIT FILE | tr A-Z a-z > ascii.txt`)",
        describe(*ch)
    )]
    NotAscii {
        line: usize,
        column: usize,
        ch: char,
    },
    #[error(
        "{line}:{column}: {} is not a letter a-z; this build trains on a-z only, and words in \
         other scripts cannot be transliterated to it",
        describe(*ch)
    )]
    OtherScript {
        line: usize,
        column: usize,
        ch: char,
    },
    #[error(
        "{line}:{column}: {} is not allowed; a word may only hold the letters a-z \
         ('.' marks the start and end of a word), one word a line",
        describe(*ch)
    )]
    BadChar {
        line: usize,
        column: usize,
        ch: char,
    },
    #[error("{line}: word of {len} letters; the longest allowed is {MAX_WORD_LEN}")]
    TooLong { line: usize, len: usize },
    #[error(
        "{line}: line of more than {MAX_LINE_BYTES} bytes; {}",
        if *bare_cr {
            "its lines end in bare carriage returns (old Mac line endings): convert them \
             first, e.g. `tr '\\r' '\\n' < FILE > unix.txt`"
        } else {
            "this is not a words file (one word of at most 64 letters a line)"
        }
    )]
    LineTooLong { line: usize, bare_cr: bool },
    #[error(
        "{line}:{column}: a carriage return inside the line (old Mac line endings?); a words \
         file's lines end in \\n or \\r\\n: convert it first, e.g. `tr '\\r' '\\n' < FILE > unix.txt`"
    )]
    BareCr { line: usize, column: usize },
    #[error(
        "{line}: more letters than the {MAX_LETTERS} allowed; sample the file first \
         (e.g. `shuf -n 1000000 FILE > sample.txt`)"
    )]
    TooManyLetters { line: usize },
    #[error("starts with CMLP: this is a charmlp model file, not a words file (one word a line)")]
    ModelFile,
    #[error(
        "{line}: more words than the {MAX_WORDS} allowed; sample the file first \
         (e.g. `shuf -n 1000000 FILE > sample.txt`)"
    )]
    TooMany { line: usize },
    #[error("no words: the file is empty or holds only blank lines")]
    Empty,
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
    const RANGES: [(char, char); 9] = [
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

/// A Latin letter with a diacritic (é, ß, ł, ŵ): transliteration to a–z works for these.
fn is_latin(ch: char) -> bool {
    ('\u{c0}'..='\u{24f}').contains(&ch) || ('\u{1e00}'..='\u{1eff}').contains(&ch)
}

/// A character as a message shows it: `'é' (U+00E9)`, or for an invisible one its code point
/// and, for the usual suspects, its name: `U+00A0 NO-BREAK SPACE`.
pub fn describe(ch: char) -> String {
    let code = format!("U+{:04X}", u32::from(ch));
    if let Some((_, name)) = INVISIBLE.iter().find(|(c, _)| *c == ch) {
        format!("{code} {name}")
    } else if is_invisible(ch) {
        format!("{code} (an invisible character)")
    } else if ch.is_ascii() {
        format!("'{ch}'")
    } else {
        format!("'{ch}' ({code})")
    }
}

impl WordsError {
    /// Whether reading stops at this error (the rest of the file cannot be read as lines).
    fn is_fatal(&self) -> bool {
        matches!(
            self,
            WordsError::LineTooLong { .. }
                | WordsError::TooMany { .. }
                | WordsError::TooManyLetters { .. }
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
                        WordsError::Empty | WordsError::Io(_) | WordsError::ModelFile
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

/// One line's word, or why it is not one.
fn parse_line(line: usize, raw: &[u8]) -> Result<Option<Vec<Token>>, WordsError> {
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
    let text = std::str::from_utf8(raw).map_err(|e| WordsError::NotUtf8 {
        line,
        byte: skipped + e.valid_up_to() + 1,
    })?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let mut word = Vec::with_capacity(text.len());
    for (i, ch) in text.chars().enumerate() {
        let column = i + 1;
        match Token::from_char(ch) {
            Some(t) if t != Token::DOT => word.push(t),
            _ if ch.is_ascii_uppercase() => {
                return Err(WordsError::Uppercase { line, column, ch });
            }
            _ if is_latin(ch) => return Err(WordsError::NotAscii { line, column, ch }),
            _ if !ch.is_ascii() && !is_invisible(ch) => {
                return Err(WordsError::OtherScript { line, column, ch });
            }
            _ => return Err(WordsError::BadChar { line, column, ch }),
        }
    }
    if word.len() > MAX_WORD_LEN {
        return Err(WordsError::TooLong {
            line,
            len: word.len(),
        });
    }
    Ok(Some(word))
}

/// Reads a words file from a stream. Lines end in `\n` or `\r\n`; blank (or whitespace-only)
/// lines are skipped, a missing final newline and a leading byte-order mark are fine. Every
/// other line must be a word of 1 to [`MAX_WORD_LEN`] letters a–z. Every bad line is reported
/// (up to [`MAX_REPORTED`], with the count); a line over [`MAX_LINE_BYTES`], more than
/// [`MAX_WORDS`] words or a read error stop the reading at once.
pub fn read_words(reader: impl BufRead) -> Result<Vec<Vec<Token>>, BadWords> {
    read_words_up_to(reader, MAX_WORDS, MAX_LETTERS)
}

/// [`read_words`] with another word limit than [`MAX_WORDS`].
fn read_words_up_to(
    mut reader: impl BufRead,
    max_words: usize,
    max_letters: usize,
) -> Result<Vec<Vec<Token>>, BadWords> {
    let mut words = Vec::new();
    let mut bad = BadWords {
        errors: Vec::new(),
        count: 0,
    };
    if reader.fill_buf().is_ok_and(|b| b.starts_with(b"CMLP")) {
        return Err(BadWords {
            errors: vec![WordsError::ModelFile],
            count: 1,
        });
    }
    // A line's limit counts its content, not its `\n` or `\r\n`: read up to two bytes more.
    let mut buf = Vec::with_capacity(MAX_LINE_BYTES + 2);
    let mut letters = 0usize;
    for line in 1.. {
        buf.clear();
        let limit = (MAX_LINE_BYTES + 2) as u64;
        let result = match (&mut reader).take(limit).read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) if content(&buf).len() > MAX_LINE_BYTES => Err(WordsError::LineTooLong {
                line,
                bare_cr: content(&buf).contains(&b'\r'),
            }),
            Ok(_) => match parse_line(line, &buf) {
                Ok(Some(_)) if words.len() == max_words => Err(WordsError::TooMany { line }),
                Ok(Some(word)) if letters + word.len() > max_letters => {
                    Err(WordsError::TooManyLetters { line })
                }
                parsed => parsed,
            },
            Err(e) => Err(WordsError::Io(e.to_string())),
        };
        match result {
            Ok(Some(word)) => {
                letters += word.len();
                words.push(word);
            }
            Ok(None) => {}
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
        return Err(BadWords {
            errors: vec![WordsError::Empty],
            count: 1,
        });
    }
    Ok(words)
}

/// [`read_words`] of bytes in memory.
pub fn parse_words(bytes: &[u8]) -> Result<Vec<Vec<Token>>, BadWords> {
    read_words(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(words: &[Vec<Token>]) -> Vec<String> {
        words
            .iter()
            .map(|w| w.iter().map(|t| t.to_char()).collect())
            .collect()
    }

    fn first(bytes: &[u8]) -> WordsError {
        parse_words(bytes).unwrap_err().errors[0].clone()
    }

    #[test]
    fn accepts_crlf_blank_lines_bom_and_no_final_newline() {
        let w = parse_words(b"emma\r\n\r\nolivia\n\n  \nava").unwrap();
        assert_eq!(text(&w), ["emma", "olivia", "ava"]);
        let w = parse_words("\u{feff}emma\r\nava\r\n".as_bytes()).unwrap();
        assert_eq!(text(&w), ["emma", "ava"]);
    }

    #[test]
    fn names_the_line_and_column_of_a_bad_character() {
        assert_eq!(
            first(b"emma\nol-ivia\n"),
            WordsError::BadChar {
                line: 2,
                column: 3,
                ch: '-'
            }
        );
        assert_eq!(
            first("emma\nzoë\n".as_bytes()),
            WordsError::NotAscii {
                line: 2,
                column: 3,
                ch: 'ë'
            }
        );
        assert_eq!(
            first(b"a.b\n"),
            WordsError::BadChar {
                line: 1,
                column: 2,
                ch: '.'
            }
        );
        assert_eq!(
            first(b"emma \n"),
            WordsError::BadChar {
                line: 1,
                column: 5,
                ch: ' '
            }
        );
        let e = parse_words(b"ok\nEmma\n").unwrap_err();
        assert_eq!(
            e.errors,
            [WordsError::Uppercase {
                line: 2,
                column: 1,
                ch: 'E'
            }]
        );
        assert!(
            e.at("names.txt")
                .to_string()
                .starts_with("names.txt:2:1: 'E' is uppercase")
        );
    }

    #[test]
    fn invisible_and_non_ascii_characters_are_named() {
        let msg = |bytes: &[u8]| first(bytes).to_string();
        assert!(msg("a\u{a0}b".as_bytes()).contains("U+00A0 NO-BREAK SPACE"));
        assert!(msg("ab\u{200b}".as_bytes()).contains("U+200B ZERO WIDTH SPACE"));
        assert!(msg(b"a\tb").contains("U+0009 CHARACTER TABULATION"));
        assert!(
            msg("x\n\u{feff}ab".as_bytes()).contains("U+FEFF"),
            "a BOM past line 1"
        );
        let e = msg("Émile".as_bytes());
        assert!(e.contains("'É' (U+00C9)") && e.contains("iconv"), "{e}");
        assert!(
            !e.contains("tr A-Z a-z <"),
            "tr alone cannot lowercase É: {e}"
        );
    }

    #[test]
    fn every_bad_line_is_counted_and_the_first_ones_listed() {
        let mut text = String::new();
        for i in 0..25 {
            text.push_str(if i % 2 == 0 { "ok\n" } else { "n0\n" });
        }
        let e = parse_words(text.as_bytes()).unwrap_err();
        assert_eq!(e.count, 12);
        assert_eq!(e.errors.len(), MAX_REPORTED);
        let shown = e.at("w.txt").to_string();
        assert!(shown.starts_with("w.txt: 12 problems (the first 10 below)"));
        assert!(
            shown.contains("\n  w.txt:2:2: '0' is not allowed"),
            "{shown}"
        );
        assert_eq!(shown.lines().count(), 11);
    }

    #[test]
    fn rejects_invalid_utf8_empty_files_and_long_words() {
        assert_eq!(
            first(b"emma\nab\xffc\n"),
            WordsError::NotUtf8 { line: 2, byte: 3 }
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
        assert!(parse_words("a".repeat(MAX_WORD_LEN).as_bytes()).is_ok());
    }

    #[test]
    fn endless_inputs_stop_at_the_limits() {
        // /dev/zero: one endless line, refused after MAX_LINE_BYTES + 1 bytes.
        let e = read_words(std::io::BufReader::new(std::io::repeat(0))).unwrap_err();
        assert_eq!(
            e.errors,
            [WordsError::LineTooLong {
                line: 1,
                bare_cr: false
            }]
        );
        // `yes a`: endless words, refused after the word limit (a small one here: the real
        // one, MAX_WORDS, takes about a gigabyte to reach).
        let e = read_words_up_to(std::io::BufReader::new(YesA(0)), 1000, 5000).unwrap_err();
        assert_eq!(e.errors, [WordsError::TooMany { line: 1001 }]);
        let ok = read_words_up_to(&b"a\n".repeat(1000)[..], 1000, 1000).unwrap();
        assert_eq!(ok.len(), 1000);
        // Long words reach the letter limit first.
        let e = read_words_up_to(&b"abcd\n".repeat(1000)[..], 1000, 2000).unwrap_err();
        assert_eq!(e.errors, [WordsError::TooManyLetters { line: 501 }]);
    }

    #[test]
    fn the_line_limit_counts_content_whatever_the_line_ending() {
        // A blank line of exactly the limit is read (and skipped); one byte more is refused.
        let blank = " ".repeat(MAX_LINE_BYTES);
        for ending in ["\n", "\r\n", ""] {
            let text = format!("anna\n{blank}{ending}");
            assert!(parse_words(text.as_bytes()).is_ok(), "{ending:?}");
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
        let mut text = "A\n".repeat(MAX_REPORTED);
        text.push_str(&"a".repeat(2000));
        let e = parse_words(text.as_bytes()).unwrap_err();
        assert_eq!(e.count, MAX_REPORTED + 1);
        assert_eq!(e.errors.len(), MAX_REPORTED);
        assert!(matches!(
            e.errors.last(),
            Some(WordsError::LineTooLong { line: 11, .. })
        ));
        // A blank line after the last allowed word is not one word too many.
        assert!(read_words_up_to(&b"a\na\n\n"[..], 2, 10).is_ok());
        // A long CRLF line is not an old-Mac file.
        let crlf = format!("{}\r\n", "1".repeat(MAX_LINE_BYTES + 1));
        assert!(matches!(
            first(crlf.as_bytes()),
            WordsError::LineTooLong { bare_cr: false, .. }
        ));
        // Byte offsets count the byte-order mark; columns count characters.
        assert_eq!(
            first(b"\xef\xbb\xbfab\xff"),
            WordsError::NotUtf8 { line: 1, byte: 6 }
        );
        assert_eq!(
            first("é\rb".as_bytes()),
            WordsError::BareCr { line: 1, column: 2 }
        );
    }

    /// `yes a`: "a\n" forever.
    struct YesA(u8);
    impl Read for YesA {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            for b in buf.iter_mut() {
                *b = if self.0 == 0 { b'a' } else { b'\n' };
                self.0 ^= 1;
            }
            Ok(buf.len())
        }
    }
}
