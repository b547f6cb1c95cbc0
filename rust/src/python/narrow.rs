//! Glue of the tool output budget (`crate::narrow`): one call for a text in memory, and
//! a streaming narrower for files and pipes. The pure work runs without the GIL.

use super::{borrow_text, resolve_encoding};
use crate::encoding::{self, Encoding, EncodingId};
use crate::narrow::{self, Mode, Narrower, Options, Outcome};
use pyo3::prelude::*;
use std::sync::Mutex;

/// What a narrowing returns to Python: (text or None when unchanged, mode, kind,
/// tokens_before or None, tokens_after, lines, lines_dropped, bytes, bytes_dropped,
/// error_lines, errors_dropped).
type OutcomeTuple = (Option<String>, &'static str, &'static str, Option<u64>, u64, u64, u64, u64, u64, u64, u64);

fn to_tuple(o: Outcome) -> OutcomeTuple {
    (
        o.text,
        o.mode.name(),
        o.kind.name(),
        o.tokens_before,
        o.tokens_after,
        o.lines,
        o.lines_dropped,
        o.bytes,
        o.bytes_dropped,
        o.error_lines,
        o.errors_dropped,
    )
}

fn options(
    mode: &str,
    max_tokens: usize,
    head_ratio: f64,
    count_all_max_bytes: usize,
    note: Option<String>,
) -> PyResult<Options> {
    Ok(Options { mode: Mode::from_name(mode)?, max_tokens, head_ratio, count_all_max_bytes, note })
}

fn encoding_of(py: Python<'_>, encoding: Option<&Bound<'_, PyAny>>) -> PyResult<&'static Encoding> {
    match encoding {
        Some(e) => resolve_encoding(py, e),
        None => Ok(py.detach(|| encoding::encoding(EncodingId::O200kBase))),
    }
}

/// Narrow one tool output held in memory (see ``tokensieve.narrow_tool_output``).
#[pyfunction]
#[pyo3(signature = (text, mode, max_tokens, *, encoding = None, head_ratio = 0.4, count_all_max_bytes = 0, note = None))]
#[allow(clippy::too_many_arguments)]
pub fn narrow_text(
    py: Python<'_>,
    text: &Bound<'_, PyAny>,
    mode: &str,
    max_tokens: usize,
    encoding: Option<&Bound<'_, PyAny>>,
    head_ratio: f64,
    count_all_max_bytes: usize,
    note: Option<String>,
) -> PyResult<OutcomeTuple> {
    let enc = encoding_of(py, encoding)?;
    let text = borrow_text(text, || "text".to_owned())?;
    let opts = options(mode, max_tokens, head_ratio, count_all_max_bytes, note)?;
    let outcome = py.detach(|| narrow::narrow(enc, &text, &opts))?;
    Ok(to_tuple(outcome))
}

/// A streaming narrower: ``feed`` chunks of text, then ``finish``. Memory stays bounded
/// by the budget whatever the length of the stream.
#[pyclass(frozen, name = "Narrower", module = "tokensieve._core")]
pub struct PyNarrower {
    inner: Mutex<Option<Narrower<'static>>>,
}

#[pymethods]
impl PyNarrower {
    #[new]
    #[pyo3(signature = (mode, max_tokens, *, encoding = None, head_ratio = 0.4, count_all_max_bytes = 0, note = None))]
    fn new(
        py: Python<'_>,
        mode: &str,
        max_tokens: usize,
        encoding: Option<&Bound<'_, PyAny>>,
        head_ratio: f64,
        count_all_max_bytes: usize,
        note: Option<String>,
    ) -> PyResult<Self> {
        let enc = encoding_of(py, encoding)?;
        let narrower = Narrower::new(enc, options(mode, max_tokens, head_ratio, count_all_max_bytes, note)?)?;
        Ok(PyNarrower { inner: Mutex::new(Some(narrower)) })
    }

    /// Feed the next chunk (a ``str``) of the output.
    fn feed(&self, py: Python<'_>, chunk: &Bound<'_, PyAny>) -> PyResult<()> {
        let chunk = borrow_text(chunk, || "chunk".to_owned())?;
        py.detach(|| {
            let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            match guard.as_mut() {
                Some(n) => {
                    n.feed(&chunk);
                    Ok(())
                }
                None => Err(pyo3::exceptions::PyRuntimeError::new_err("this Narrower is finished")),
            }
        })
    }

    /// Narrow what was fed; ``note`` (where the full output was spilled) goes into the
    /// closing marker. Returns the same tuple as ``narrow_text``; the text is the input
    /// itself when it was under the limit.
    #[pyo3(signature = (note = None))]
    fn finish(&self, py: Python<'_>, note: Option<String>) -> PyResult<OutcomeTuple> {
        let narrower = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
        let narrower =
            narrower.ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("this Narrower is finished"))?;
        Ok(to_tuple(py.detach(|| narrower.finish_keeping(note.as_deref()))))
    }
}
