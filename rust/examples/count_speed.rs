//! Single-thread counting speed of the pure-Rust engine, no Python, no cache:
//! `cargo run --release --example count_speed -- FILE [ENCODING] [ROUNDS]`, where FILE
//! holds each text as its length in bytes, a newline and its UTF-8 bytes
//! (`benches/dump_corpus.py` writes the benchmark corpora so). Prints the total token count and the best round's MB/s; run it under
//! `valgrind --tool=callgrind` with ROUNDS=1 for instruction counts that a busy machine
//! does not disturb.

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("usage: count_speed FILE [ENCODING] [ROUNDS]");
    let name = args.get(2).map_or("o200k_base", String::as_str);
    let rounds: usize = args.get(3).map_or(5, |r| r.parse().expect("ROUNDS is a number"));
    let data = std::fs::read(path).expect("FILE is readable");
    let mut texts: Vec<&str> = Vec::new();
    let mut rest = &data[..];
    while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
        let len: usize =
            std::str::from_utf8(&rest[..newline]).ok().and_then(|n| n.parse().ok()).expect("a length line");
        let text = &rest[newline + 1..newline + 1 + len];
        texts.push(std::str::from_utf8(text).expect("texts are UTF-8"));
        rest = &rest[newline + 1 + len..];
    }
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    let enc = tokensieve::get_encoding(name).expect("a known encoding");
    let mut best = f64::INFINITY;
    let mut total = 0;
    for _ in 0..rounds {
        let start = Instant::now();
        total = texts.iter().map(|t| enc.count(t)).sum::<usize>();
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "{name}: {} texts, {:.2} MB, {total} tokens, {:.1} MB/s",
        texts.len(),
        bytes as f64 / 1e6,
        bytes as f64 / best / 1e6
    );
}
