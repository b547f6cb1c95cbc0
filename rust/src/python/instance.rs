//! Reading a Python object's fields from its instance `__dict__`, borrowed, without
//! fetching a value (fetching writes its reference count: a cache miss per value on the
//! warm path). Valid only for types where `getattr` would find those fields there, which
//! [`fields_in_dict`] decides: the identity memos (`history_memo.rs`, `rebuilt_memo.rs`)
//! ask it once per type.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyType};

/// `obj.__dict__` (a new reference), or None.
pub fn instance_dict<'py>(obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    // Safety: the GIL is held and `obj` is alive; a NULL result has its error cleared.
    unsafe {
        let dict = ffi::PyObject_GenericGetDict(obj.as_ptr(), std::ptr::null_mut());
        if dict.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        Some(Bound::from_owned_ptr(obj.py(), dict))
    }
}

/// The address of `dict[name]`, borrowed (0: absent).
pub fn entry(dict: &Bound<'_, PyAny>, name: &Bound<'_, PyString>) -> usize {
    // Safety: the GIL is held and `dict` is a dict (from `instance_dict`); the result is a
    // borrowed reference: only its address is kept.
    unsafe {
        let found = ffi::PyDict_GetItemWithError(dict.as_ptr(), name.as_ptr());
        if found.is_null() {
            ffi::PyErr_Clear();
        }
        found as usize
    }
}

/// Whether `getattr(obj, name)` of an instance of `ty` is its `__dict__` entry for every
/// one of `names`: `ty` keeps `object.__getattribute__` and no class of its MRO defines
/// one of them as a data descriptor (a property, a slot), which would win over the dict.
pub fn fields_in_dict<'py>(
    ty: &Bound<'py, PyType>,
    names: impl Clone + Iterator<Item = Bound<'py, PyString>>,
) -> PyResult<bool> {
    let object = ty.py().get_type::<PyAny>();
    if !ty.getattr("__getattribute__")?.is(&object.getattr("__getattribute__")?) {
        return Ok(false);
    }
    for klass in ty.getattr("__mro__")?.try_iter()? {
        let namespace = klass?.getattr("__dict__")?;
        for name in names.clone() {
            if let Ok(attr) = namespace.get_item(&name) {
                let kind = attr.get_type();
                if kind.hasattr("__set__")? || kind.hasattr("__delete__")? {
                    return Ok(false);
                }
            }
        }
    }
    Ok(true)
}

/// Ask the CPU to bring the cache line holding `address` in (a hint: a prefetch never
/// faults and changes nothing, whatever the address, so a stale one costs a wasted load
/// and nothing else). The warm check of a long history is bound by its objects' cache
/// misses, one chain per object (the object, its `__dict__`, the dict's values): asking
/// for the objects a few messages ahead overlaps those chains.
#[inline(always)]
pub fn prefetch(address: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` has no architectural effect and cannot fault for any address;
    // SSE (which has it) is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address as *const i8)
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above, `prfm` is a hint that never faults.
    unsafe {
        std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) address, options(nostack, readonly, preserves_flags))
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = address;
}

/// The lines a warm check reads around an object at `address` besides its header: the
/// two words before it, where CPython 3.11+ keeps a managed `__dict__` pointer (a hint:
/// prefetched, never read by this crate).
pub fn prefetch_object(address: usize) {
    prefetch(address);
    prefetch(address.wrapping_sub(24));
}

/// The layouts the hints below read, as CPython 3.10 to 3.14 lay them out on 64-bit
/// platforms (`dict.__basicsize__ == 48`: `ma_keys` and `ma_values` its last two words;
/// `list.__basicsize__ == 40`: `ob_item` the word after the variable-size header). Not
/// part of the stable ABI, hence checked once: with another layout no hint is read. A
/// hint is only ever prefetched, never dereferenced, so a layout that moved a field
/// within the same size would cost speed, not correctness.
fn known_layouts(py: Python<'_>) -> bool {
    static KNOWN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *KNOWN.get_or_init(|| {
        let size = |t: Bound<'_, PyType>| t.getattr("__basicsize__").and_then(|s| s.extract::<usize>()).ok();
        cfg!(target_pointer_width = "64")
            && size(py.get_type::<pyo3::types::PyDict>()) == Some(48)
            && size(py.get_type::<pyo3::types::PyList>()) == Some(40)
    })
}

/// Where a lookup in `dict` reads besides the (shared, warm) key table: its values array
/// when split (an instance `__dict__`), else its keys object (entries inline). 0 when
/// `dict` is not an exact dict or the layout is not the known one. A hint for
/// [`prefetch`], valid while the dict is unchanged.
pub fn dict_hint(dict: &Bound<'_, PyAny>) -> usize {
    if !dict.is_exact_instance_of::<pyo3::types::PyDict>() || !known_layouts(dict.py()) {
        return 0;
    }
    // SAFETY: `dict` is alive (bound, the GIL held) and an exact dict whose basic size is
    // 48 bytes (`known_layouts`): both words read lie inside the object. Their values are
    // only prefetched, never dereferenced.
    unsafe {
        let words = dict.as_ptr() as *const usize;
        let (keys, values) = (words.add(4).read(), words.add(5).read());
        if values != 0 {
            values
        } else {
            keys
        }
    }
}

/// The item array of the exact list `list` (0 otherwise, or with another layout): a hint
/// for [`prefetch`], valid until the list is resized.
pub fn list_items_hint(list: &Bound<'_, PyAny>) -> usize {
    if !list.is_exact_instance_of::<pyo3::types::PyList>() || !known_layouts(list.py()) {
        return 0;
    }
    // SAFETY: `list` is alive and an exact list of basic size 40: the word at offset 24
    // (`ob_item`) lies inside it. Only prefetched, never dereferenced.
    unsafe { (list.as_ptr() as *const usize).add(3).read() }
}
