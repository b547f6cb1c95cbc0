//! Glue of `tokensieve.load_encoding`: bytes in, a registered `Encoding` out. The
//! parsing and table building (`crate::loading`) run without the GIL.

use super::{type_name, PyEncoding};
use crate::encoding::{self, Encoding, Family, Normalization};
use crate::error::Error;
use crate::loading;
use crate::pretokenize::{Pattern, Splitter};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Load and register an encoding from the bytes of a user's file.
///
/// ``kind`` is ``"tiktoken"`` (a rank file; ``pattern`` names its pre-tokenizer) or
/// ``"tokenizer.json"``. ``template`` names the chat-template family (guessed from the
/// name and special tokens when ``None``); ``normalization`` is ``"nfc"`` or ``None``
/// (rank files only: a ``tokenizer.json`` says its own); ``specials`` the special tokens
/// of a rank file. ``tokensieve.load_encoding`` is the public, documented entry point.
#[pyfunction]
#[allow(clippy::too_many_arguments)] // the Python signature's keyword arguments
#[pyo3(signature = (data, name, kind, pattern = None, template = None, normalization = None, specials = None))]
pub fn _load_encoding(
    py: Python<'_>,
    data: &Bound<'_, PyBytes>,
    name: String,
    kind: &str,
    pattern: Option<String>,
    template: Option<String>,
    normalization: Option<String>,
    specials: Option<Vec<(String, u32)>>,
) -> PyResult<PyEncoding> {
    let family = match template.as_deref() {
        None => None,
        Some(t) => Some(Family::from_name(t).ok_or_else(|| {
            Error::InvalidConfig(format!("unknown template {t:?}; expected one of openai, harmony, llama3, chatml"))
        })?),
    };
    let normalization = match normalization.as_deref() {
        None | Some("none") => Normalization::None,
        Some("nfc" | "NFC") => Normalization::Nfc,
        Some(other) => {
            return Err(
                Error::InvalidConfig(format!("unknown normalization {other:?}; expected \"nfc\" or None")).into()
            )
        }
    };
    let bytes = data.as_bytes();
    let spec = match kind {
        "tiktoken" => {
            let pattern = pattern.unwrap_or_default();
            // A known pattern's name, or a regex of the file's own (tiktoken's semantics:
            // only the matches are encoded).
            let splitter = match Pattern::from_name(&pattern) {
                Some(p) => Splitter::Scanner(p),
                None if pattern.is_empty() => {
                    return Err(Error::InvalidConfig(
                        "a tiktoken rank file needs pattern= naming its pre-tokenizer (o200k, cl100k, llama3, qwen2) or giving its regex"
                            .to_owned(),
                    )
                    .into())
                }
                None => Splitter::regex(&pattern, false).map_err(Error::InvalidConfig)?,
            };
            py.detach(|| loading::from_tiktoken(&name, bytes, splitter, normalization, family, specials))?
        }
        "tokenizer.json" => py.detach(|| loading::from_hf_json(&name, bytes, family))?,
        other => return Err(Error::InvalidConfig(format!("unknown file kind {other:?}")).into()),
    };
    Ok(PyEncoding { inner: encoding::register(spec)? })
}

/// The names of every encoding usable now: the embedded ones, then the loaded ones.
#[pyfunction]
pub fn _encoding_names() -> Vec<String> {
    encoding::encoding_names()
}

/// An encoding tokensieve knows by name but does not embed, loaded from an installed
/// package's file by `tokensieve.encodings._autoload` (None if it has none).
pub fn autoload(py: Python<'_>, name: &str) -> PyResult<Option<&'static Encoding>> {
    if name != "llama3" {
        return Ok(None);
    }
    let found = py.import("tokensieve.encodings")?.getattr("_autoload")?.call1((name,))?;
    if found.is_none() {
        return Ok(None);
    }
    match found.cast::<PyEncoding>() {
        Ok(enc) => Ok(Some(enc.get().inner)),
        Err(_) => {
            Err(Error::WrongType { what: "_autoload()".to_owned(), expected: "an Encoding", got: type_name(&found) }
                .into())
        }
    }
}
