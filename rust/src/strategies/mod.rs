//! Compaction strategies beyond the window, each a pure module.

pub mod summary;
