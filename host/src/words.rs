//! Reading a words file: one word a line, letters a–z only, every mistake named by line and
//! column.

use charmlp_core::Token;
use std::fmt;

/// Longest word accepted. makemore's names are at most 15 letters; anything much longer is
/// more likely a file that is not a word list than a word.
pub const MAX_WORD_LEN: usize = 64;

/// What is wrong with a words file. `Display` gives the message without the file name; see
/// [`WordsError::at`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WordsError {
    #[error("{line}: not valid UTF-8 (byte {byte} of the line); a words file is UTF-8 text")]
    NotUtf8 { line: usize, byte: usize },
    #[error(
        "{line}:{column}: {ch:?} is uppercase; only lowercase a-z are allowed \
         (lowercase the file first, e.g. with `tr A-Z a-z`)"
    )]
    Uppercase {
        line: usize,
        column: usize,
        ch: char,
    },
    #[error(
        "{line}:{column}: {ch:?} is not allowed; a word may only hold the letters a-z \
         ('.' marks the start and end of a word), one word a line"
    )]
    BadChar {
        line: usize,
        column: usize,
        ch: char,
    },
    #[error("{line}: word of {len} letters; the longest allowed is {MAX_WORD_LEN}")]
    TooLong { line: usize, len: usize },
    #[error("no words: the file is empty or holds only blank lines")]
    Empty,
}

impl WordsError {
    /// The error with the file name in front, as compilers print it: `names.txt:3:5: …`.
    pub fn at<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        struct At<'a>(&'a str, &'a WordsError);
        impl fmt::Display for At<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}:{}", self.0, self.1)
            }
        }
        At(file, self)
    }
}

/// Parses a words file. Lines end in `\n` or `\r\n`; blank (or whitespace-only) lines are
/// skipped and a missing final newline is fine. Every other line must be a word of 1 to
/// [`MAX_WORD_LEN`] letters a–z: the first line that is not is the error.
pub fn parse_words(bytes: &[u8]) -> Result<Vec<Vec<Token>>, WordsError> {
    let mut words = Vec::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = std::str::from_utf8(raw).map_err(|e| WordsError::NotUtf8 {
            line,
            byte: e.valid_up_to() + 1,
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let mut word = Vec::with_capacity(text.len());
        for (i, ch) in text.chars().enumerate() {
            let column = i + 1;
            match Token::from_char(ch) {
                Some(t) if t != Token::DOT => word.push(t),
                _ if ch.is_uppercase() => return Err(WordsError::Uppercase { line, column, ch }),
                _ => return Err(WordsError::BadChar { line, column, ch }),
            }
        }
        if word.len() > MAX_WORD_LEN {
            return Err(WordsError::TooLong {
                line,
                len: word.len(),
            });
        }
        words.push(word);
    }
    if words.is_empty() {
        return Err(WordsError::Empty);
    }
    Ok(words)
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

    #[test]
    fn accepts_crlf_blank_lines_and_no_final_newline() {
        let w = parse_words(b"emma\r\n\r\nolivia\n\n  \nava").unwrap();
        assert_eq!(text(&w), ["emma", "olivia", "ava"]);
    }

    #[test]
    fn names_the_line_and_column_of_a_bad_character() {
        assert_eq!(
            parse_words(b"emma\nol-ivia\n"),
            Err(WordsError::BadChar {
                line: 2,
                column: 3,
                ch: '-'
            })
        );
        assert_eq!(
            parse_words("emma\nzoë\n".as_bytes()),
            Err(WordsError::BadChar {
                line: 2,
                column: 3,
                ch: 'ë'
            })
        );
        assert_eq!(
            parse_words(b"a.b\n"),
            Err(WordsError::BadChar {
                line: 1,
                column: 2,
                ch: '.'
            })
        );
        assert_eq!(
            parse_words(b"emma \n"),
            Err(WordsError::BadChar {
                line: 1,
                column: 5,
                ch: ' '
            })
        );
        let e = parse_words(b"ok\nEmma\n").unwrap_err();
        assert_eq!(
            e,
            WordsError::Uppercase {
                line: 2,
                column: 1,
                ch: 'E'
            }
        );
        assert!(
            e.at("names.txt")
                .to_string()
                .starts_with("names.txt:2:1: 'E' is uppercase")
        );
    }

    #[test]
    fn rejects_invalid_utf8_empty_files_and_long_words() {
        assert_eq!(
            parse_words(b"emma\nab\xffc\n"),
            Err(WordsError::NotUtf8 { line: 2, byte: 3 })
        );
        assert_eq!(parse_words(b""), Err(WordsError::Empty));
        assert_eq!(parse_words(b"\n\r\n \n"), Err(WordsError::Empty));
        let long = "a".repeat(MAX_WORD_LEN + 1);
        assert_eq!(
            parse_words(long.as_bytes()),
            Err(WordsError::TooLong {
                line: 1,
                len: MAX_WORD_LEN + 1
            })
        );
        assert!(parse_words("a".repeat(MAX_WORD_LEN).as_bytes()).is_ok());
    }
}
