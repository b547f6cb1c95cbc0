//! tokensieve's Rust core: exact tiktoken token counting, fast enough to run before
//! every model request.
//!
//! Pure Rust, no Python: [`pretokenize`] splits text exactly as tiktoken's regexes do,
//! [`bpe`] merges each piece, [`encoding`] holds the embedded vocabularies, [`cache`]
//! remembers counts by content, and [`counting`] ties them together for one text or a
//! batch; [`slab`] stores the glue's identity memos; [`fork`] keeps all of it usable in
//! a forked child. The optional `python` feature adds the thin PyO3 glue in `python/`.

pub mod bpe;
pub mod cache;
pub mod classes;
pub mod compact;
pub mod counting;
pub mod encoding;
pub mod error;
pub mod fork;
pub mod history;
pub mod narrow;
pub mod pretokenize;
pub mod slab;
pub mod strategies;

pub use encoding::{get_encoding, Encoding, EncodingId};
pub use error::{Error, Result};

#[cfg(feature = "python")]
mod python;
