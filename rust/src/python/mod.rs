//! The PyO3 glue: the only file that knows about Python.
//!
//! Every call runs in three phases: with the GIL, borrow the caller's strings
//! (`PyBackedStr`, no copy) and resolve arguments; without it (`Python::detach`), run the
//! pure-Rust work; with it again, return small values. Errors from the core become
//! Python exceptions in one place, [`to_py_err`], raising the classes of
//! `tokensieve/errors.py`.

mod build;
mod details;
mod events;
mod history_memo;
mod instance;
mod loading;
mod memo;
mod narrow;
mod part_memo;
mod read;
mod rebuilt_memo;
mod value_memo;

use crate::cache::{self, CacheInfo};
use crate::compact::{Action, Budget, Dangling};
use crate::counting;
use crate::encoding::{self, Encoding, EncodingId};
use crate::error::Error;
use crate::strategies::{self, mask::MaskConfig, prune::PruneConfig, Details, Strategies};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyString, PyTuple};
use read::{Format, Read};

pyo3::import_exception!(tokensieve.errors, TokensieveError);
pyo3::import_exception!(tokensieve.errors, UnknownEncodingError);
pyo3::import_exception!(tokensieve.errors, InputTypeError);
pyo3::import_exception!(tokensieve.errors, ConfigurationError);
pyo3::import_exception!(tokensieve.errors, InvalidMessageError);
pyo3::import_exception!(tokensieve.errors, BudgetExceededError);

/// Texts shorter than this are counted without releasing the GIL: releasing and
/// re-acquiring it costs about as much as counting a short message.
const DETACH_MIN_BYTES: usize = 4096;

fn to_py_err(err: Error) -> PyErr {
    let msg = err.to_string();
    match err {
        Error::UnknownEncoding { .. } => UnknownEncodingError::new_err(msg),
        Error::NotAString { .. } | Error::WrongType { .. } => InputTypeError::new_err(msg),
        Error::InvalidConfig(_) => ConfigurationError::new_err(msg),
        Error::NotAHistory { .. } => InputTypeError::new_err(msg),
        Error::InvalidMessage { index, reason } => InvalidMessageError::new_err((index, reason)),
        Error::BudgetExceeded { tokens_before, tokens_after, limit } => {
            BudgetExceededError::new_err((tokens_before, tokens_after, limit))
        }
    }
}

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        to_py_err(err)
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".to_owned())
}

/// Borrow the UTF-8 of a Python `str` without copying it.
///
/// A `str` holding lone surrogates has no UTF-8 form. tiktoken's answer, followed here
/// so counts stay equal to its own, is to round-trip through UTF-16 with
/// `surrogatepass` and decode with `replace`: a valid surrogate pair becomes its
/// character, a lone surrogate becomes U+FFFD.
fn borrow_text(obj: &Bound<'_, PyAny>, what: impl FnOnce() -> String) -> PyResult<PyBackedStr> {
    let text = obj.cast::<PyString>().map_err(|_| Error::NotAString { what: what(), got: type_name(obj) })?;
    match PyBackedStr::try_from(text.clone()) {
        Ok(borrowed) => Ok(borrowed),
        Err(_) => {
            let repaired = text
                .call_method1(pyo3::intern!(obj.py(), "encode"), ("utf-16", "surrogatepass"))?
                .call_method1(pyo3::intern!(obj.py(), "decode"), ("utf-16", "replace"))?;
            PyBackedStr::try_from(repaired.cast_into::<PyString>()?)
        }
    }
}

/// Resolve an `encoding` argument (called `what`): a name, or an `Encoding` object.
fn resolve_encoding(py: Python<'_>, arg: &Bound<'_, PyAny>) -> PyResult<&'static Encoding> {
    resolve_encoding_named(py, arg, "encoding")
}

fn resolve_encoding_named(py: Python<'_>, arg: &Bound<'_, PyAny>, what: &str) -> PyResult<&'static Encoding> {
    if let Ok(enc) = arg.cast::<PyEncoding>() {
        return Ok(enc.get().inner);
    }
    let name = arg.cast::<PyString>().map_err(|_| Error::NotAString { what: what.to_owned(), got: type_name(arg) })?;
    // A name that is not even valid UTF-8 (lone surrogates) is simply not a known name.
    let name = name.to_cow().map(|n| n.into_owned()).unwrap_or_else(|_| format!("{name}"));
    let id = match EncodingId::from_name(&name) {
        Ok(id) => id,
        // A name tokensieve knows but does not embed (Llama 3: its licence) is loaded from
        // an installed package's file if there is one (`tokensieve.encodings._autoload`).
        Err(err) => match loading::autoload(py, &name)? {
            Some(enc) => return Ok(enc),
            None if name == "llama3" => {
                return Err(UnknownEncodingError::new_err(
                    "the llama3 encoding is not embedded (Meta's Llama 3 licence): pip install llama-models \
                     (its tokenizer.model is then found), or load Meta's tokenizer.model with \
                     tokensieve.load_encoding(path, name=\"llama3\", pattern=\"llama3\")",
                ))
            }
            None => return Err(err.into()),
        },
    };
    // The vocabulary is compiled into the binary: loading it takes microseconds.
    Ok(py.detach(|| encoding::encoding(id)))
}

fn count_one(py: Python<'_>, enc: &'static Encoding, text: &Bound<'_, PyAny>) -> PyResult<usize> {
    let text = borrow_text(text, || "text".to_owned())?;
    Ok(if text.len() >= DETACH_MIN_BYTES {
        py.detach(|| counting::count(enc, &text))
    } else {
        counting::count(enc, &text)
    })
}

fn count_many<'py>(
    py: Python<'py>,
    enc: &'static Encoding,
    texts: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, numpy::PyArray1<i64>>> {
    let not_a_sequence = || Error::WrongType {
        what: "texts".to_owned(),
        expected: "a list of str (or another iterable of str; for one text, use count_tokens)",
        got: type_name(texts),
    };
    if texts.is_instance_of::<PyString>() {
        return Err(not_a_sequence().into());
    }
    let caused = |err: Error, cause: PyErr| {
        let err = PyErr::from(err);
        err.set_cause(py, Some(cause));
        err
    };
    let iter = texts.try_iter().map_err(|e| caused(not_a_sequence(), e))?;
    let mut borrowed = Vec::with_capacity(texts.len().unwrap_or(0));
    for (i, item) in iter.enumerate() {
        // An exception raised by the caller's own iterator (a generator) is theirs: it
        // propagates unchanged.
        borrowed.push(borrow_text(&item?, || format!("texts[{i}]"))?);
    }
    let counts = py.detach(|| counting::count_batch(enc, &borrowed));
    Ok(numpy::PyArray1::from_vec(py, counts))
}

/// Histories at least this long may be read and counted at once: a worker thread counts
/// each chunk of texts (cache lookups, tokenizing what is new) while this thread, holding
/// the GIL, reads the next one. In shorter ones, each chunk is counted as it is read.
const PIPELINE_MIN_MESSAGES: usize = 4 * read::CHUNK_MESSAGES;

/// A chunk with at least this much text starts the counting thread (once started, it
/// takes every chunk); smaller ones are counted by the reader as they come.
const HANDOFF_MIN_BYTES: usize = 64 * 1024;

/// Count one chunk: each run of texts with one target is one group (one cache entry).
fn count_chunk(enc: &'static Encoding, (texts, targets): &read::Chunk) -> Vec<(read::Target, i64)> {
    let groups = read::groups(targets);
    let counts = counting::count_groups(enc, texts, &groups);
    groups.iter().zip(counts).map(|(g, n)| (targets[g.start], n)).collect()
}

/// How long the counting thread polls for the next chunk before it sleeps. Chunks come
/// every ~0.1 ms; waking a sleeping thread costs the reader a system call (and, on a
/// virtual machine, an interrupt between cores) per chunk.
const POLL_FOR_CHUNK: std::time::Duration = std::time::Duration::from_micros(500);

/// The next chunk to count, or None once the reader is done.
fn next_chunk(rx: &std::sync::mpsc::Receiver<read::Chunk>) -> Option<read::Chunk> {
    use std::sync::mpsc::TryRecvError;
    let start = std::time::Instant::now();
    loop {
        for _ in 0..64 {
            match rx.try_recv() {
                Ok(chunk) => return Some(chunk),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => std::hint::spin_loop(),
            }
        }
        if start.elapsed() >= POLL_FOR_CHUNK {
            return rx.recv().ok();
        }
    }
}

/// The caller's `messages` as a list (a tuple is read as one) and their format: the one
/// named, or the one detected.
pub(crate) fn history_and_format<'py>(
    py: Python<'py>,
    messages: &Bound<'py, PyAny>,
    format: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyList>, Format)> {
    let list = if let Ok(list) = messages.cast::<PyList>() {
        list.clone()
    } else if let Ok(tuple) = messages.cast::<PyTuple>() {
        PyList::new(py, tuple)?
    } else {
        return Err(Error::NotAHistory { what: "messages".to_owned(), got: type_name(messages) }.into());
    };
    let format = match format.filter(|f| !f.is_none()) {
        None => read::detect(py, &list)?,
        Some(name) => match name.cast::<PyString>() {
            Ok(name) => Format::from_name(&name.to_cow().map(|n| n.into_owned()).unwrap_or_default())?,
            Err(_) => return Err(Error::NotAString { what: "format".to_owned(), got: type_name(name) }.into()),
        },
    };
    Ok((list, format))
}

/// Phases one and two of a history call: the caller's list (a tuple is read as a list),
/// its format, and the history read from it with every text counted. Strings are
/// borrowed, not copied. A chunk of little text (a history met before: its parts are
/// memoized) is counted as it comes, without the GIL from 4 KiB of text; in a long
/// history, the first chunk with much to count starts a thread that counts it and every
/// later one while reading goes on.
fn read_history<'py>(
    py: Python<'py>,
    messages: &Bound<'py, PyAny>,
    format: Option<&Bound<'py, PyAny>>,
    stubs: bool,
    enc: &'static Encoding,
) -> PyResult<(Bound<'py, PyList>, Read)> {
    let (list, format) = history_and_format(py, messages, format)?;
    let pipeline = list.len() >= PIPELINE_MIN_MESSAGES && counting::parallelism_allowed();
    let (mut read, counts) = std::thread::scope(|scope| {
        let mut counts = Vec::new();
        let mut worker = None;
        let read = read::read(py, &list, format, stubs, enc, &mut |chunk| {
            let bytes: usize = chunk.0.iter().map(|t| t.as_ref().len()).sum();
            if worker.is_none() && !(pipeline && bytes >= HANDOFF_MIN_BYTES) {
                // Little to count (a history met before: its parts are memoized): here
                // and now costs less than a handoff.
                counts.extend(if bytes >= DETACH_MIN_BYTES {
                    py.detach(|| count_chunk(enc, &chunk))
                } else {
                    count_chunk(enc, &chunk)
                });
                let mut chunk = chunk;
                read::release(py, &mut chunk);
                return Some(chunk);
            }
            let (tx, spent_rx, _) = worker.get_or_insert_with(|| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<read::Chunk>(64);
                // Counted chunks come back to be dropped here, with the GIL, while their
                // strings are still warm in the cache (dropping releases their references).
                let (spent_tx, spent_rx) = std::sync::mpsc::channel::<read::Chunk>();
                let handle = scope.spawn(move || {
                    let mut counts = Vec::new();
                    while let Some(chunk) = next_chunk(&rx) {
                        counts.extend(count_chunk(enc, &chunk));
                        let _ = spent_tx.send(chunk);
                    }
                    counts
                });
                (tx, spent_rx, handle)
            });
            let _ = tx.send(chunk);
            let mut reuse = None;
            for mut spent in spent_rx.try_iter() {
                read::release(py, &mut spent);
                reuse = Some(spent);
            }
            reuse
        });
        if let Some((tx, spent_rx, handle)) = worker {
            drop(tx);
            counts.extend(py.detach(|| handle.join()).expect("the counting thread does not panic"));
            spent_rx.try_iter().for_each(|mut spent| read::release(py, &mut spent));
        }
        Ok::<_, PyErr>((read?, counts))
    })?;
    read.apply_counts(&counts);
    read.remember(enc.id(), stubs);
    Ok((list, read))
}

fn per_message_tokens<'py>(py: Python<'py>, read: &Read) -> Bound<'py, numpy::PyArray1<i64>> {
    let tokens = read.history.tokens_per_message().into_iter().map(|t| t as i64).collect();
    numpy::PyArray1::from_vec(py, tokens)
}

/// [`per_message_tokens`] as the bytes of an `int64` array in native order: the
/// compaction report's, made into an array by Python when first read, so that a
/// compaction does not import numpy (`CompactionResult.per_message_tokens`).
fn per_message_token_bytes<'py>(py: Python<'py>, read: &Read) -> Bound<'py, PyByteArray> {
    let tokens = read.history.tokens_per_message();
    let mut bytes = Vec::with_capacity(tokens.len() * 8);
    for t in tokens {
        bytes.extend_from_slice(&(t as i64).to_ne_bytes());
    }
    PyByteArray::new(py, &bytes)
}

/// Have every child this process forks replace the identity memos that the fork caught
/// locked (see `fork.rs`; the core's own state is reset by [`crate::fork::install`]).
/// Nothing of Python runs there: the old memos and their references are leaked.
fn install_memo_reset() {
    static INSTALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    extern "C" fn in_child() {
        memo::after_fork_in_child();
        details::after_fork_in_child();
        part_memo::after_fork_in_child();
        value_memo::after_fork_in_child();
        history_memo::after_fork_in_child();
        rebuilt_memo::after_fork_in_child();
    }
    if !INSTALLED.swap(true, std::sync::atomic::Ordering::AcqRel) {
        crate::fork::on_fork_in_child(in_child);
    }
}

/// What `compact_history` hands back to Python: the messages, the report, and the
/// pipeline's steps `(name, tokens_saved, items)`.
type CompactReturn<'py> = (Bound<'py, PyList>, CompactReport<'py>, Vec<(&'static str, u64, usize)>);

type CompactReport<'py> = (
    &'static str,
    u64,
    u64,
    usize,
    Vec<(usize, usize)>,
    usize,
    usize,
    usize,
    usize,
    Bound<'py, PyByteArray>,
    &'static str,
);

/// The pipeline's steps as Python passes them: `mask = (keep_exchanges,
/// min_tokens_saved)`, `prune = (repeated_calls, superseded_reads, acknowledgements,
/// superseded_failures)`, `None` for a step that is off.
type StrategiesArg = (Option<(usize, u64)>, Option<(bool, bool, bool, bool)>);

/// A tiktoken encoding loaded for repeated use.
#[pyclass(frozen, name = "Encoding", module = "tokensieve")]
pub struct PyEncoding {
    inner: &'static Encoding,
}

#[pymethods]
impl PyEncoding {
    /// The encoding's name, e.g. ``"o200k_base"``.
    #[getter]
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    /// The chat-template family: ``"openai"``, ``"harmony"``, ``"llama3"`` or ``"chatml"``.
    #[getter]
    fn family(&self) -> &'static str {
        self.inner.family().name()
    }

    /// Tokens each message costs besides its content in the family's chat template.
    #[getter]
    fn message_overhead(&self) -> u64 {
        self.inner.message_overhead()
    }

    /// Tokens each model response (assistant) message costs besides its content: the
    /// same as ``message_overhead`` except for harmony (``<|channel|>final``: 2 more).
    #[getter]
    fn response_overhead(&self) -> u64 {
        self.inner.family().response_overhead()
    }

    /// Tokens every request adds after its messages to prime the reply (and for Llama 3
    /// the ``<|begin_of_text|>`` before them), in the family's chat template.
    #[getter]
    fn reply_priming(&self) -> u64 {
        self.inner.family().reply_priming()
    }

    /// The special tokens, text to id (never produced by counting: special-token text in
    /// content counts as plain text).
    #[getter]
    fn special_tokens<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let d = pyo3::types::PyDict::new(py);
        for (text, id) in self.inner.specials() {
            d.set_item(text, id)?;
        }
        Ok(d)
    }

    /// ``"nfc"`` or ``None``: the normalization applied before splitting.
    #[getter]
    fn normalization(&self) -> Option<&'static str> {
        match self.inner.normalization() {
            encoding::Normalization::None => None,
            encoding::Normalization::Nfc => Some("nfc"),
        }
    }

    /// Number of ordinary tokens in the vocabulary.
    #[getter]
    fn vocabulary_size(&self) -> usize {
        self.inner.vocabulary_size()
    }

    /// Exact number of tokens of ``text`` (special-token text counts as plain text).
    fn count(&self, py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<usize> {
        count_one(py, self.inner, text)
    }

    /// Token counts of many texts at once, as an int64 numpy array.
    fn count_batch<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, numpy::PyArray1<i64>>> {
        count_many(py, self.inner, texts)
    }

    fn __repr__(&self) -> String {
        format!("<Encoding '{}'>", self.inner.name())
    }

    /// Encodings are shared per name: equal when their names are.
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<PyEncoding>().is_ok_and(|o| o.get().inner.id() == self.inner.id())
    }

    fn __hash__(&self) -> u64 {
        self.inner.id().index() as u64
    }

    /// Pickle by name: the vocabulary is in the binary on the other side too (a loaded
    /// encoding must be loaded there under the same name).
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (&'static str,))> {
        let get = py.import("tokensieve")?.getattr("get_encoding")?;
        Ok((get, (self.inner.name(),)))
    }
}

#[pymodule]
pub mod _core {
    use super::*;

    #[pymodule_export]
    use super::PyEncoding;

    #[pymodule_export]
    use super::narrow::{narrow_text, PyNarrower};

    #[pymodule_export]
    const ENCODINGS: [&str; 4] = encoding::ENCODING_NAMES;

    #[pymodule_export]
    use super::loading::{_encoding_names, _load_encoding};

    #[pymodule_export]
    use super::events::{read_events, PyEvents, PyFacts};

    #[pymodule_export]
    const PARALLEL_MIN_BYTES: usize = counting::PARALLEL_MIN_BYTES;

    #[pymodule_export]
    const MIN_CACHED_BYTES: usize = cache::MIN_CACHED_BYTES;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        crate::fork::install();
        install_memo_reset();
        // Resolve the imported exception classes now, before any thread can race: done at
        // the first error instead, the import would run Python code inside PyOnceLock's
        // lock, and a fork by another thread meanwhile would leave it held in the child.
        let py = m.py();
        for class in [
            UnknownEncodingError::type_object_raw,
            InputTypeError::type_object_raw,
            ConfigurationError::type_object_raw,
            InvalidMessageError::type_object_raw,
            BudgetExceededError::type_object_raw,
        ] {
            class(py);
        }
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }

    /// Count the tokens of ``text`` exactly as tiktoken does.
    ///
    /// Special-token text such as ``<|endoftext|>`` counts as ordinary text (tiktoken's
    /// ``encode_ordinary``), so user content can never raise. Counts go through the
    /// content cache: counting the same text again is a hash lookup.
    ///
    /// Args:
    ///     text: The text to count.
    ///     encoding: ``"o200k_base"`` (default), ``"cl100k_base"``, ``"o200k_harmony"``,
    ///         ``"qwen3"``, ``"llama3"``, a name registered with ``load_encoding``, or an
    ///         ``Encoding``.
    ///
    /// Returns:
    ///     The number of tokens.
    ///
    /// Raises:
    ///     InputTypeError: ``text`` is not a ``str``.
    ///     UnknownEncodingError: ``encoding`` names no encoding tokensieve offers.
    ///
    /// Example:
    ///     >>> import tokensieve
    ///     >>> tokensieve.count_tokens("Hello, world!")
    ///     4
    ///     >>> tokensieve.count_tokens("Hello, world!", encoding="cl100k_base")
    ///     4
    #[pyfunction]
    #[pyo3(signature = (text, encoding = None))]
    fn count_tokens(py: Python<'_>, text: &Bound<'_, PyAny>, encoding: Option<&Bound<'_, PyAny>>) -> PyResult<usize> {
        let enc = match encoding {
            Some(e) => resolve_encoding(py, e)?,
            None => py.detach(|| encoding::encoding(EncodingId::O200kBase)),
        };
        count_one(py, enc, text)
    }

    /// Count the tokens of many texts at once.
    ///
    /// The strings are borrowed, not copied, and counted without holding the GIL; a
    /// batch of more than ``PARALLEL_MIN_BYTES`` of text is spread over all cores (set
    /// ``TOKENSIEVE_PARALLELISM=0`` to keep it on one).
    ///
    /// Args:
    ///     texts: A sequence (or any iterable) of ``str``.
    ///     encoding: ``"o200k_base"`` (default) or ``"cl100k_base"``, or an ``Encoding``.
    ///
    /// Returns:
    ///     A ``numpy.ndarray`` of ``int64``, one count per text.
    ///
    /// Raises:
    ///     InputTypeError: ``texts`` is a ``str`` or not iterable, or an item is not a
    ///         ``str`` (the message names its index).
    ///     UnknownEncodingError: ``encoding`` names no encoding tokensieve offers.
    ///
    /// Example:
    ///     >>> import tokensieve
    ///     >>> tokensieve.count_tokens_batch(["Hello, world!", "", "How are you?"]).tolist()
    ///     [4, 0, 4]
    #[pyfunction]
    #[pyo3(signature = (texts, encoding = None))]
    fn count_tokens_batch<'py>(
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        encoding: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, numpy::PyArray1<i64>>> {
        let enc = match encoding {
            Some(e) => resolve_encoding(py, e)?,
            None => py.detach(|| encoding::encoding(EncodingId::O200kBase)),
        };
        count_many(py, enc, texts)
    }

    /// The encoding named ``name``, for repeated use.
    ///
    /// Vocabularies are compiled into the binary as ready-made tables: getting one takes
    /// microseconds, and every use shares it.
    ///
    /// Example:
    ///     >>> import tokensieve
    ///     >>> enc = tokensieve.get_encoding("cl100k_base")
    ///     >>> enc.count("tokensieve")
    ///     2
    #[pyfunction]
    fn get_encoding(py: Python<'_>, name: &Bound<'_, PyAny>) -> PyResult<PyEncoding> {
        Ok(PyEncoding { inner: resolve_encoding_named(py, name, "name")? })
    }

    /// The embedded vocabulary in tiktoken's ``.tiktoken`` format, byte for byte the
    /// file OpenAI publishes. Write it to disk to build ``tiktoken`` (or any other
    /// tool) offline.
    ///
    /// Example:
    ///     >>> import hashlib, tokensieve
    ///     >>> hashlib.sha256(tokensieve.tiktoken_bpe_file("cl100k_base")).hexdigest()[:16]
    ///     '223921b76ee99bde'
    #[pyfunction]
    fn tiktoken_bpe_file<'py>(py: Python<'py>, encoding: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
        let enc = resolve_encoding(py, encoding)?;
        let file = py.detach(|| enc.tiktoken_file());
        Ok(PyBytes::new(py, &file))
    }

    /// Raw cache counters: ``(hits, misses, size, max_entries, enabled)``.
    /// ``tokensieve.cache_info()`` wraps them in a named tuple.
    #[pyfunction]
    fn cache_info() -> (u64, u64, usize, usize, bool) {
        let CacheInfo { hits, misses, size, max_entries, enabled } = cache::global().info();
        (hits, misses, size, max_entries, enabled)
    }

    /// Empty the content cache and reset its counters.
    ///
    /// Also forgets the messages' strings, parts and argument dicts that the reader
    /// remembers by identity, the last histories read (up to 8) and the messages the
    /// pipeline rebuilt (up to 64 MiB of text each, kept alive to check them on the next
    /// request): call it to release them once a conversation is over.
    ///
    /// Example:
    ///     >>> import tokensieve
    ///     >>> tokensieve.clear_cache()
    ///     >>> tokensieve.cache_info().size
    ///     0
    #[pyfunction]
    fn clear_cache() {
        cache::global().clear();
        memo::clear();
        details::clear();
        value_memo::clear();
        part_memo::clear();
        history_memo::clear();
        rebuilt_memo::clear();
    }

    /// Bound the content cache to ``max_entries`` counts (entries over the bound are
    /// evicted now) and switch it on or off. ``None`` keeps the current setting.
    ///
    /// Raises:
    ///     ConfigurationError: ``max_entries`` is negative.
    ///
    /// Example:
    ///     >>> import tokensieve
    ///     >>> tokensieve.configure_cache(max_entries=10_000)
    ///     >>> tokensieve.cache_info().max_entries
    ///     10000
    ///     >>> tokensieve.configure_cache(max_entries=100_000)  # the default
    #[pyfunction]
    #[pyo3(signature = (max_entries = None, enabled = None))]
    fn configure_cache(max_entries: Option<&Bound<'_, PyAny>>, enabled: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let current = cache::global().info();
        let max_entries = match max_entries.filter(|m| !m.is_none()) {
            None => current.max_entries,
            Some(m) => {
                if m.is_instance_of::<pyo3::types::PyBool>() || !m.is_instance_of::<pyo3::types::PyInt>() {
                    return Err(Error::WrongType {
                        what: "max_entries".to_owned(),
                        expected: "an int",
                        got: type_name(m),
                    }
                    .into());
                }
                let n: i128 = m.extract().unwrap_or(i128::MAX);
                if n < 0 {
                    return Err(Error::InvalidConfig(format!("max_entries must be 0 or more, got {n}")).into());
                }
                usize::try_from(n).unwrap_or(usize::MAX)
            }
        };
        let enabled = match enabled.filter(|e| !e.is_none()) {
            None => current.enabled,
            Some(e) => e.cast::<pyo3::types::PyBool>().map(|b| b.is_true()).map_err(|_| Error::WrongType {
                what: "enabled".to_owned(),
                expected: "a bool",
                got: type_name(e),
            })?,
        };
        cache::global().configure(max_entries, enabled);
        Ok(())
    }

    /// Tokens of each message of a history, as the compactor counts them.
    #[pyfunction]
    #[pyo3(signature = (messages, *, encoding = None, format = None))]
    fn count_history_tokens<'py>(
        py: Python<'py>,
        messages: &Bound<'py, PyAny>,
        encoding: Option<&Bound<'py, PyAny>>,
        format: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, numpy::PyArray1<i64>>> {
        let enc = match encoding {
            Some(e) => resolve_encoding(py, e)?,
            None => py.detach(|| encoding::encoding(EncodingId::O200kBase)),
        };
        let (_, read) = read_history(py, messages, format, false, enc)?;
        let tokens = per_message_tokens(py, &read);
        read.keep();
        Ok(tokens)
    }

    /// [`count_history_tokens`] for the package's own use, without numpy (a compaction
    /// imports none): the counts as a list of ints, or their sum with `total`.
    #[pyfunction]
    #[pyo3(signature = (messages, *, encoding = None, format = None, total = false))]
    fn _history_tokens<'py>(
        py: Python<'py>,
        messages: &Bound<'py, PyAny>,
        encoding: Option<&Bound<'py, PyAny>>,
        format: Option<&Bound<'py, PyAny>>,
        total: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let enc = match encoding {
            Some(e) => resolve_encoding(py, e)?,
            None => py.detach(|| encoding::encoding(EncodingId::O200kBase)),
        };
        let (_, read) = read_history(py, messages, format, false, enc)?;
        let tokens = read.history.tokens_per_message();
        read.keep();
        if total {
            Ok(tokens.iter().sum::<u64>().into_pyobject(py)?.into_any())
        } else {
            Ok(tokens.into_pyobject(py)?.into_any())
        }
    }

    /// Compact a history. `budget` is `(max_input_tokens, compaction_threshold,
    /// hard_limit_threshold, target_input_tokens, max_exchanges, reserved_tokens,
    /// stub_dangling_calls)`, validated by `BudgetConfig`; `strategies` the pipeline's
    /// steps (`ContextStrategies._core_strategies()`), None for the window alone.
    #[pyfunction]
    #[pyo3(signature = (messages, budget, *, encoding = None, format = None, strategies = None))]
    fn compact_history<'py>(
        py: Python<'py>,
        messages: &Bound<'py, PyAny>,
        budget: (u64, f64, f64, u64, Option<usize>, u64, bool),
        encoding: Option<&Bound<'py, PyAny>>,
        format: Option<&Bound<'py, PyAny>>,
        strategies: Option<StrategiesArg>,
    ) -> PyResult<CompactReturn<'py>> {
        let enc = match encoding {
            Some(e) => resolve_encoding(py, e)?,
            None => py.detach(|| encoding::encoding(EncodingId::O200kBase)),
        };
        let (list, mut read) = read_history(py, messages, format, budget.6, enc)?;

        let budget = Budget {
            max_input_tokens: budget.0,
            compaction_threshold: budget.1,
            hard_limit_threshold: budget.2,
            target_input_tokens: budget.3,
            max_exchanges: budget.4,
            reserved_tokens: budget.5,
            dangling: if budget.6 { Dangling::Stub } else { Dangling::Drop },
        };
        let strategies = Strategies {
            mask: strategies
                .and_then(|s| s.0)
                .map(|(keep_exchanges, min_tokens_saved)| MaskConfig { keep_exchanges, min_tokens_saved }),
            prune: strategies
                .and_then(|s| s.1)
                .map(|(repeated_calls, superseded_reads, acknowledgements, superseded_failures)| PruneConfig {
                    repeated_calls,
                    superseded_reads,
                    acknowledgements,
                    superseded_failures,
                })
                .filter(|p| p.repeated_calls || p.superseded_reads || p.acknowledgements || p.superseded_failures),
        };
        let rules = read.format.rules();
        let acknowledgements = strategies.prune.is_some_and(|p| p.acknowledgements);
        // What the steps need from the parts, read only when they will run; those of the
        // messages the history memo found unchanged are the ones read last time.
        let details = if strategies.any() && strategies::over_threshold(&read.history, &budget) {
            let known = match read.details.take() {
                Some(kept) if kept.acknowledgements == acknowledgements && read.memo_prefix > 0 => {
                    Some((kept.messages.min(read.memo_prefix), kept.details))
                }
                _ => None,
            };
            Some(details::read_details(py, &list, &read, enc, acknowledgements, known))
        } else {
            None
        };
        let no_details = Details::default();
        let history = &read.history;
        // Through the content cache: a warm request writes the same placeholders and
        // pointers again, and counts each from a hash lookup.
        let count = |text: &str| cache::global().get_or_count(enc.id(), text, |t| counting::count(enc, t)) as u64;
        let pipeline = py.detach(|| {
            strategies::run(history, details.as_ref().unwrap_or(&no_details), rules, &budget, &strategies, &count)
        })?;
        let outcome = &pipeline.outcome;
        let out = build::build(py, &list, &read, &outcome.messages, &pipeline.replaced)?;
        let report = (
            match outcome.action {
                Action::None => "none",
                Action::Compacted => "compacted",
            },
            outcome.tokens_before,
            outcome.tokens_after,
            outcome.exchanges_kept,
            crate::compact::index_runs(&outcome.dropped),
            outcome.orphans_removed,
            outcome.calls_repaired,
            outcome.input_defects_repaired,
            outcome.pairs_cut_by_window,
            per_message_token_bytes(py, &read),
            read.format.name(),
        );
        if let Some(details) = details {
            let messages = read.history.len();
            read.details = Some(history_memo::KeptDetails { acknowledgements, messages, details });
        }
        read.keep();
        Ok((out, report, pipeline.steps.iter().map(|s| (s.step, s.tokens_saved, s.items)).collect()))
    }

    #[pyfunction]
    fn _parallelism_allowed() -> bool {
        counting::parallelism_allowed()
    }
}
