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
