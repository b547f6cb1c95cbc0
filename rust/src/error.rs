//! The one error type of the crate. The Python glue converts each variant to a
//! subclass of `tokensieve.TokensieveError` in a single place.

use crate::encoding::ENCODING_NAMES;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error(
        "unknown encoding {name:?}; tokensieve offers {} and the encodings loaded with load_encoding()",
        ENCODING_NAMES.join(", ")
    )]
    UnknownEncoding { name: String },
    #[error("{what}: expected str, got {got}")]
    NotAString { what: String, got: String },
    #[error("{what}: expected {expected}, got {got}")]
    WrongType { what: String, expected: &'static str, got: String },
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    #[error("messages[{index}]: {reason}")]
    InvalidMessage { index: usize, reason: String },
    #[error("{what}: expected a list of messages, got {got}")]
    NotAHistory { what: String, got: String },
    #[error(
        "the history needs {tokens_after} tokens after compaction (from {tokens_before}), over the hard limit of {limit}"
    )]
    BudgetExceeded { tokens_before: u64, tokens_after: u64, limit: u64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
