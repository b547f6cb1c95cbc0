//! The one walker of nested values: the JSON text (`docs/compaction.md`) of tool
//! arguments, structured results and any other non-string content, for every format.
//!
//! It is iterative: containers being rendered are frames on an explicit stack, so a value
//! nested a million deep costs heap, not the thread's stack. It refuses cycles as
//! `json.dumps` does, by the containers on the current path: below [`TRACK_DEPTH`] levels
//! none are tracked (a cycle cannot stay shallower than that: it nests without end), from
//! there on every container entered is checked against a set of the addresses on the path.
//! The objects the value was read from (its message, its part) count as on the path: a
//! value that refers back to its own message is a cycle too, whatever holds the reference.
//! A value with a cycle is [`WalkError::Circular`], turned by the reader into an
//! `InvalidMessageError` naming the message and the field.

use super::borrow_text;
use crate::history::BINARY_PART_TOKENS;
use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use rustc_hash::FxHashSet;

/// From this many open containers on, each one entered is checked against the path.
pub const TRACK_DEPTH: usize = 64;

/// Media items (pydantic-ai multimodal content) by their `kind`: counted as binary.
pub const BINARY_KINDS: [&str; 6] = ["binary", "image-url", "audio-url", "video-url", "document-url", "uploaded-file"];

/// Why a value has no JSON text.
pub enum WalkError {
    /// A container holds itself (directly or through others).
    Circular,
    /// Python code run while rendering (`str()`, an attribute) raised.
    Python(PyErr),
}

impl From<PyErr> for WalkError {
    fn from(err: PyErr) -> Self {
        WalkError::Python(err)
    }
}

enum Frame<'py> {
    /// A dict (exact or subclass) walked with `PyDict_Next`, as `dict.items` does.
    Dict {
        dict: Bound<'py, PyDict>,
        pos: ffi::Py_ssize_t,
        len: ffi::Py_ssize_t,
        first: bool,
    },
    /// A list or a tuple (or a subclass), read in place by index.
    List {
        list: Bound<'py, PyList>,
        i: usize,
    },
    Tuple {
        tuple: Bound<'py, PyTuple>,
        i: usize,
    },
}

impl Frame<'_> {
    fn address(&self) -> usize {
        match self {
            Frame::Dict { dict, .. } => dict.as_ptr() as usize,
            Frame::List { list, .. } => list.as_ptr() as usize,
            Frame::Tuple { tuple, .. } => tuple.as_ptr() as usize,
        }
    }
}

/// The walker's stack, kept by the reader between values (no allocation per value).
#[derive(Default)]
pub struct Walker<'py> {
    stack: Vec<Frame<'py>>,
    /// Addresses of the containers on the path, once it got [`TRACK_DEPTH`] deep.
    markers: Option<FxHashSet<usize>>,
    /// Addresses of the objects the value being rendered was read from (its message, the
    /// pydantic-ai part), set by the reader: they are on the path too. A value that holds
    /// one of them holds itself, even through an object rendered by `str()` (whose repr
    /// elides the cycle): [`WalkError::Circular`].
    pub enclosing: [usize; 2],
}

impl<'py> Walker<'py> {
    /// Render `value` as JSON text into `out` (a string as is when `top`); binary items
    /// add to `binary`.
    pub fn json_text(
        &mut self,
        value: &Bound<'py, PyAny>,
        out: &mut String,
        binary: &mut u64,
        top: bool,
    ) -> Result<(), WalkError> {
        let result = self.run(value, out, binary, top);
        if result.is_err() {
            self.stack.clear();
        }
        self.markers = None;
        result
    }

    fn run(
        &mut self,
        value: &Bound<'py, PyAny>,
        out: &mut String,
        binary: &mut u64,
        top: bool,
    ) -> Result<(), WalkError> {
        self.emit(value, out, binary, top)?;
        while let Some(frame) = self.stack.last_mut() {
            let next = match frame {
                Frame::Dict { dict, pos, len, first } => {
                    // Safety: the GIL is held and `dict` is alive (held by the frame); the
                    // borrowed key and value are held at once, before any Python code runs.
                    let item = unsafe {
                        if ffi::PyDict_Size(dict.as_ptr()) != *len {
                            return Err(PyRuntimeError::new_err("dictionary changed size during iteration").into());
                        }
                        let (mut key, mut item) = (std::ptr::null_mut(), std::ptr::null_mut());
                        if ffi::PyDict_Next(dict.as_ptr(), pos, &mut key, &mut item) == 0 {
                            None
                        } else {
                            let py = dict.py();
                            Some((Bound::from_borrowed_ptr(py, key), Bound::from_borrowed_ptr(py, item)))
                        }
                    };
                    match item {
                        None => None,
                        Some((key, item)) => {
                            if !std::mem::take(first) {
                                out.push(',');
                            }
                            match key.cast::<PyString>() {
                                Ok(key) => push_str_value(key, out, false)?,
                                Err(_) => push_str_value(&key.str()?, out, false)?,
                            }
                            out.push(':');
                            Some(item)
                        }
                    }
                }
                Frame::List { list, i } => {
                    if *i < list.len() {
                        let item = list.get_item(*i)?;
                        if *i > 0 {
                            out.push(',');
                        }
                        *i += 1;
                        Some(item)
                    } else {
                        None
                    }
                }
                Frame::Tuple { tuple, i } => {
                    if *i < tuple.len() {
                        let item = tuple.get_item(*i)?;
                        if *i > 0 {
                            out.push(',');
                        }
                        *i += 1;
                        Some(item)
                    } else {
                        None
                    }
                }
            };
            match next {
                Some(item) => self.emit(&item, out, binary, false)?,
                None => self.close(out),
            }
        }
        Ok(())
    }

    fn enter(&mut self, frame: Frame<'py>, out: &mut String) -> Result<(), WalkError> {
        if self.markers.is_some() || self.stack.len() >= TRACK_DEPTH {
            let stack = &self.stack;
            let markers = self.markers.get_or_insert_with(|| stack.iter().map(Frame::address).collect());
            if !markers.insert(frame.address()) {
                return Err(WalkError::Circular);
            }
        }
        out.push(if matches!(frame, Frame::Dict { .. }) { '{' } else { '[' });
        self.stack.push(frame);
        Ok(())
    }

    fn close(&mut self, out: &mut String) {
        let frame = self.stack.pop().expect("a frame to close");
        out.push(if matches!(frame, Frame::Dict { .. }) { '}' } else { ']' });
        if let Some(markers) = &mut self.markers {
            markers.remove(&frame.address());
        }
    }

    fn open_dict(&mut self, dict: &Bound<'py, PyDict>, out: &mut String) -> Result<(), WalkError> {
        // Safety: the GIL is held and `dict` is alive.
        let len = unsafe { ffi::PyDict_Size(dict.as_ptr()) };
        self.enter(Frame::Dict { dict: dict.clone(), pos: 0, len, first: true }, out)
    }

    /// Write a leaf, or open a container (its items come from the stack).
    ///
    /// The exact built-in types (what tool arguments and results are made of) are told
    /// apart by comparing type pointers, before the slower checks that also accept
    /// subclasses.
    fn emit(
        &mut self,
        value: &Bound<'py, PyAny>,
        out: &mut String,
        binary: &mut u64,
        top: bool,
    ) -> Result<(), WalkError> {
        if let Ok(s) = value.cast_exact::<PyString>() {
            return Ok(push_str_value(s, out, top)?);
        }
        if let Ok(d) = value.cast_exact::<PyDict>() {
            return self.open_dict(d, out);
        }
        if value.is_exact_instance_of::<PyInt>() {
            return Ok(push_int(value, out)?);
        }
        // Text wrappers render as their content: followed here, without recursion.
        let mut value = value.clone();
        let mut wrappers: Option<FxHashSet<usize>> = None;
        let mut unwrapped = 0;
        loop {
            let py = value.py();
            if let Ok(s) = value.cast::<PyString>() {
                push_str_value(s, out, top)?;
            } else if value.is_none() {
                if !top {
                    out.push_str("null");
                }
            } else if let Ok(b) = value.cast::<PyBool>() {
                out.push_str(if b.is_true() { "true" } else { "false" });
            } else if value.is_instance_of::<PyInt>() {
                push_int(&value, out)?;
            } else if value.is_instance_of::<PyFloat>() {
                out.push_str(&value.str()?.to_cow()?);
            } else if let Ok(d) = value.cast::<PyDict>() {
                return self.open_dict(d, out);
            } else if let Ok(list) = value.cast::<PyList>() {
                return self.enter(Frame::List { list: list.clone(), i: 0 }, out);
            } else if let Ok(tuple) = value.cast::<PyTuple>() {
                return self.enter(Frame::Tuple { tuple: tuple.clone(), i: 0 }, out);
            } else if value.is_instance_of::<PyBytes>() || value.is_instance_of::<PyByteArray>() {
                *binary += BINARY_PART_TOKENS;
                if !top {
                    out.push_str("null");
                }
            } else {
                // Objects: media items by their kind, text wrappers by their content, the rest as str().
                let kind = value.getattr(intern!(py, "kind")).ok().and_then(|k| k.extract::<String>().ok());
                match kind.as_deref() {
                    Some(k) if BINARY_KINDS.contains(&k) => {
                        *binary += BINARY_PART_TOKENS;
                        if !top {
                            out.push_str("null");
                        }
                    }
                    Some("cache-point") => {
                        if !top {
                            out.push_str("null");
                        }
                    }
                    Some("text-content" | "structured-content") => {
                        let content = value.getattr(intern!(py, "content"))?;
                        unwrapped += 1;
                        if unwrapped >= TRACK_DEPTH {
                            let seen = wrappers.get_or_insert_with(FxHashSet::default);
                            if !seen.insert(value.as_ptr() as usize) {
                                return Err(WalkError::Circular);
                            }
                        }
                        value = content;
                        continue;
                    }
                    _ => {
                        if self.enclosing.contains(&(value.as_ptr() as usize)) {
                            return Err(WalkError::Circular);
                        }
                        let s = value.str()?;
                        let s = borrow_text(s.as_any(), || "text".to_owned())?;
                        if top {
                            out.push_str(&s);
                        } else {
                            json_string(&s, out);
                        }
                    }
                }
            }
            return Ok(());
        }
    }
}

/// An `int` as Python prints it (`bool` is handled before: it is an `int` too).
fn push_int(value: &Bound<'_, PyAny>, out: &mut String) -> PyResult<()> {
    match value.extract::<i64>() {
        Ok(i) => push_decimal(i, out),
        Err(_) => out.push_str(&value.str()?.to_cow()?), // beyond 64 bits
    }
    Ok(())
}

/// `i` in decimal, without the formatting machinery of `write!`.
fn push_decimal(i: i64, out: &mut String) {
    let mut digits = [0u8; 20];
    let mut n = i.unsigned_abs();
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        out.push('-');
    }
    out.push_str(std::str::from_utf8(&digits[at..]).expect("ASCII digits"));
}

/// A string inside JSON text (quoted and escaped), or as is at the top level. Read in
/// place: the text is copied into `out` while the string is held, so it is not borrowed.
fn push_str_value(s: &Bound<'_, PyString>, out: &mut String, top: bool) -> PyResult<()> {
    let repaired;
    let text = match s.to_str() {
        Ok(text) => text,
        Err(_) => {
            repaired = borrow_text(s.as_any(), || "text".to_owned())?;
            &*repaired
        }
    };
    if top {
        out.push_str(text);
    } else {
        json_string(text, out);
    }
    Ok(())
}

/// A JSON string literal as Python's `json.dumps(s, ensure_ascii=False)` writes it.
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
