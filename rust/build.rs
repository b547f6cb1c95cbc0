//! Lays out at compile time what counting needs, so a process's first count builds
//! nothing: for each embedded vocabulary (`vocab/*.tiktoken`) its hash table, token blob
//! and token lengths (format in `src/vocab_table.rs`), and the character-class table of
//! the pre-tokenizer (format in `src/classes.rs`). The crate `include_bytes!`s them from
//! `OUT_DIR`. Takes about a second.

use std::path::{Path, PathBuf};

#[path = "src/vocab_table.rs"]
mod vocab_table;

const ENCODINGS: [&str; 3] = ["o200k_base", "cl100k_base", "qwen3"];

/// Code points per block of the two-level class table.
const BLOCK: usize = 128;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let little = std::env::var("CARGO_CFG_TARGET_ENDIAN").as_deref() != Ok("big");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/vocab_table.rs");
    for name in ENCODINGS {
        let source = format!("vocab/{name}.tiktoken");
        println!("cargo:rerun-if-changed={source}");
        let file = std::fs::read_to_string(&source).unwrap_or_else(|e| panic!("{source}: {e}"));
        let tokens = vocab_table::parse_tiktoken(&file);
        let refs: Vec<&[u8]> = tokens.iter().map(Vec::as_slice).collect();
        let (table, blob, lens) = vocab_table::build(&refs);
        write(&out, &format!("{name}.table"), &vocab_table::slots_to_bytes(&table, little));
        write(&out, &format!("{name}.blob"), &blob);
        write(&out, &format!("{name}.lens"), &lens);
    }
    let (index, blocks) = class_tables();
    write(&out, "classes.index", &index);
    write(&out, "classes.blocks", &blocks);
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    let path = dir.join(name);
    // Unchanged contents keep their timestamp, so nothing downstream rebuilds.
    if std::fs::read(&path).ok().as_deref() != Some(data) {
        std::fs::write(&path, data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// The classes (bits as in `src/classes.rs`) from `regex-syntax`, the Unicode data of
/// the regex engines tiktoken runs on. Returns (block index per 128 code points, the
/// distinct blocks); `blocks[index[cp / 128] * 128 + cp % 128]` are the bits of `cp`.
fn class_tables() -> (Vec<u8>, Vec<u8>) {
    use regex_syntax::hir::{Class, HirKind};
    const SOURCES: [(&str, u8); 5] = [
        (r"\s", 1 << 0),
        (r"\p{L}", 1 << 1),
        (r"\p{N}", 1 << 2),
        (r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", 1 << 3),
        (r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]", 1 << 4),
    ];
    let mut flat = vec![0u8; 0x11_0000];
    for (pattern, bit) in SOURCES {
        let hir = regex_syntax::parse(pattern).expect("static class pattern parses");
        let HirKind::Class(Class::Unicode(class)) = hir.kind() else { panic!("{pattern} is a Unicode class") };
        for range in class.ranges() {
            for entry in &mut flat[range.start() as usize..=range.end() as usize] {
                *entry |= bit;
            }
        }
    }
    let mut blocks: Vec<u8> = Vec::new();
    let mut index = Vec::with_capacity(flat.len() / BLOCK);
    for block in flat.chunks(BLOCK) {
        let found = blocks.chunks(BLOCK).position(|b| b == block);
        let i = found.unwrap_or_else(|| {
            blocks.extend_from_slice(block);
            blocks.len() / BLOCK - 1
        });
        index.push(u8::try_from(i).expect("fewer than 256 distinct blocks"));
    }
    (index, blocks)
}
