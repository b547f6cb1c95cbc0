//! Character classes used by the tiktoken pre-tokenizer patterns.
//!
//! The tables are built from `regex-syntax`, the crate that gives the `regex` /
//! `fancy-regex` engines (and so tiktoken itself) their Unicode data. Deriving them
//! from the same source, instead of a separate Unicode crate, keeps `\s`, `\p{L}` and
//! friends identical to what tiktoken's regexes see, code point for code point.

use crate::fork::Global;
use regex_syntax::hir::{Class, HirKind};

/// `\s` (Unicode White_Space, as the regex crate defines it).
pub const WS: u8 = 1 << 0;
/// `\p{L}`.
pub const LETTER: u8 = 1 << 1;
/// `\p{N}`.
pub const NUMBER: u8 = 1 << 2;
/// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`: the "upper-ish" class of o200k_base.
pub const UPPER: u8 = 1 << 3;
/// `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`: the "lower-ish" class of o200k_base.
pub const LOWER: u8 = 1 << 4;

const SOURCES: [(&str, u8); 5] = [
    (r"\s", WS),
    (r"\p{L}", LETTER),
    (r"\p{N}", NUMBER),
    (r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", UPPER),
    (r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]", LOWER),
];

/// One byte of class bits per Unicode scalar value (1.1 MB, built once in ~1 ms).
/// A flat table beats a range search: the scanner looks up every character.
///
/// Published lock-free (threads racing at first use may each build it, once): a child
/// forked while a `OnceLock` was being initialized would wait for it forever.
pub fn table() -> &'static [u8] {
    static TABLE: Global<Box<[u8]>> = Global::new(build);
    TABLE.get()
}

fn build() -> Box<[u8]> {
    let mut table = vec![0u8; 0x11_0000];
    for (pattern, bit) in SOURCES {
        let hir = regex_syntax::parse(pattern).expect("static class pattern parses");
        let HirKind::Class(Class::Unicode(class)) = hir.kind() else { unreachable!("{pattern} is a Unicode class") };
        for range in class.ranges() {
            for entry in &mut table[range.start() as usize..=range.end() as usize] {
                *entry |= bit;
            }
        }
    }
    table.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(c: char) -> u8 {
        table()[c as usize]
    }

    #[test]
    fn ascii_classes_match_the_regex_definitions() {
        assert_eq!(bits(' '), WS);
        assert_eq!(bits('\n'), WS);
        assert_eq!(bits('a'), LETTER | LOWER);
        assert_eq!(bits('A'), LETTER | UPPER);
        assert_eq!(bits('7'), NUMBER);
        assert_eq!(bits('/'), 0);
        // \s is Unicode White_Space: the ASCII information separators are not in it.
        assert_eq!(bits('\u{1c}'), 0);
    }

    #[test]
    fn marks_and_other_letters_are_in_both_o200k_letter_classes() {
        assert_eq!(bits('\u{0301}'), UPPER | LOWER); // combining acute: \p{M}, not \p{L}
        assert_eq!(bits('中'), LETTER | UPPER | LOWER); // Lo
        assert_eq!(bits('\u{3000}'), WS);
    }
}
