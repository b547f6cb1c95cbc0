//! Character classes used by the tiktoken pre-tokenizer patterns.
//!
//! The tables are built at compile time (`build.rs`) from `regex-syntax`, the crate
//! that gives the `regex` / `fancy-regex` engines (and so tiktoken itself) their
//! Unicode data. Deriving them from the same source, instead of a separate Unicode
//! crate, keeps `\s`, `\p{L}` and friends identical to what tiktoken's regexes see,
//! code point for code point.
//!
//! Two levels, compiled into the binary: a block index per 128 code points (8.5 KiB)
//! and the distinct blocks (a few KiB), so nothing is built at first use and ASCII text
//! stays in a handful of cache lines. [`ASCII`] is the first block, for the scanners'
//! byte-at-a-time fast path.

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

const BLOCK_BITS: u32 = 7;

static INDEX: [u8; 0x11_0000 >> BLOCK_BITS] = *include_bytes!(concat!(env!("OUT_DIR"), "/classes.index"));
const BLOCKS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/classes.blocks"));

/// Class bits of the 128 ASCII characters (the first block of the table).
pub static ASCII: [u8; 128] = {
    let mut a = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        a[i] = BLOCKS[i];
        i += 1;
    }
    a
};

/// Class bits of the code point `cp` (at most `0x10FFFF`).
#[inline(always)]
pub fn of(cp: u32) -> u8 {
    let block = INDEX[(cp >> BLOCK_BITS) as usize] as usize;
    BLOCKS[(block << BLOCK_BITS) | (cp as usize & ((1 << BLOCK_BITS) - 1))]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(c: char) -> u8 {
        of(c as u32)
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
        for b in 0..128u8 {
            assert_eq!(ASCII[b as usize], bits(b as char));
        }
    }

    #[test]
    fn marks_and_other_letters_are_in_both_o200k_letter_classes() {
        assert_eq!(bits('\u{0301}'), UPPER | LOWER); // combining acute: \p{M}, not \p{L}
        assert_eq!(bits('中'), LETTER | UPPER | LOWER); // Lo
        assert_eq!(bits('\u{3000}'), WS);
        assert_eq!(bits('\u{10FFFF}'), 0);
    }

    /// The compiled table against regex-syntax's classes, every code point, through the
    /// regex engine tiktoken uses (fancy-regex wraps `regex`, which uses regex-syntax).
    #[test]
    fn every_code_point_has_the_classes_the_regex_engine_gives_it() {
        let classes = [
            (r"\s", WS),
            (r"\p{L}", LETTER),
            (r"\p{N}", NUMBER),
            (r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", UPPER),
            (r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]", LOWER),
        ];
        for (pattern, bit) in classes {
            let re = fancy_regex::Regex::new(&format!("^{pattern}$")).unwrap();
            for cp in (0..0x11_0000u32).step_by(7).chain(0..0x3000) {
                if let Some(c) = char::from_u32(cp) {
                    let mut buf = [0u8; 4];
                    let s = c.encode_utf8(&mut buf);
                    assert_eq!(re.is_match(s).unwrap(), of(cp) & bit != 0, "{pattern} on U+{cp:04X}");
                }
            }
        }
    }
}
