//! What the counting engine sees in a corpus: `cargo run --release --example piece_stats
//! -- FILE [ENCODING]` (FILE as `count_speed` reads it). Prints the pieces and bytes,
//! how many pieces are one token, how many need merging (and how many distinct: what
//! the per-thread memo has to hold), and the longest merged pieces by bytes.

use std::collections::HashMap;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data = std::fs::read(args.get(1).expect("usage: piece_stats FILE [ENCODING]")).expect("FILE is readable");
    let name = args.get(2).map_or("o200k_base", String::as_str);
    let mut texts: Vec<&str> = Vec::new();
    let mut rest = &data[..];
    while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
        let len: usize =
            std::str::from_utf8(&rest[..newline]).ok().and_then(|n| n.parse().ok()).expect("a length line");
        texts.push(std::str::from_utf8(&rest[newline + 1..newline + 1 + len]).expect("texts are UTF-8"));
        rest = &rest[newline + 1 + len..];
    }
    let enc = tokensieve::get_encoding(name).expect("a known encoding");
    let (mut pieces, mut bytes, mut ascii, mut one, mut one_bytes) = (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut merged: HashMap<&[u8], usize> = HashMap::new();
    let mut by_log2_len = [0usize; 8];
    for text in &texts {
        ascii += text.bytes().filter(u8::is_ascii).count();
        for piece in enc.pieces(text) {
            pieces += 1;
            bytes += piece.len();
            by_log2_len[piece.len().min(127).ilog2() as usize] += 1;
            if enc.count_piece(piece) == 1 {
                one += 1;
                one_bytes += piece.len();
            } else {
                *merged.entry(piece).or_default() += 1;
            }
        }
    }
    let merged_bytes: usize = merged.iter().map(|(p, n)| p.len() * n).sum();
    let distinct_bytes: usize = merged.keys().map(|p| p.len()).sum();
    println!("{name}: {pieces} pieces, {bytes} bytes ({ascii} ASCII)");
    println!("one token: {one} pieces ({one_bytes} bytes)");
    println!(
        "merged: {} pieces ({merged_bytes} bytes), {} distinct ({distinct_bytes} bytes), {} distinct over 52 bytes",
        merged.values().sum::<usize>(),
        merged.len(),
        merged.keys().filter(|p| p.len() > 52).count()
    );
    println!("pieces by log2 of length (1, 2-3, 4-7, ...): {by_log2_len:?}");
    let mut long: Vec<_> = merged.iter().filter(|(p, _)| p.len() >= 100).collect();
    long.sort_by_key(|(p, n)| std::cmp::Reverse(p.len() * **n));
    for (piece, n) in long.iter().take(8) {
        let shown: String = String::from_utf8_lossy(piece).chars().take(40).collect();
        println!("{n} x {} bytes: {shown:?}", piece.len());
    }
}
