//! Rust core of tenantstore, exposed to Python as `tenantstore._native`.
//!
//! * [`keys`]: per-project storage-key rewriting and project-id validation.
//! * [`frame`]: storage-key frames around stored values.
//! * [`index`]: the persistent ordered index behind the watch cache.
//!
//! Each module keeps its logic in plain Rust (covered by `cargo test`) and its Python bindings in
//! a `py` submodule; this file only registers the exports.

pub mod frame;
pub mod index;
pub mod keys;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();

    m.add(
        "InvalidProjectError",
        py.get_type::<keys::py::InvalidProjectError>(),
    )?;
    m.add_function(wrap_pyfunction!(keys::py::validate_project_id, m)?)?;
    m.add_function(wrap_pyfunction!(keys::py::scope_prefix, m)?)?;
    m.add_function(wrap_pyfunction!(keys::py::scoped_key, m)?)?;
    m.add_function(wrap_pyfunction!(keys::py::project_of_key, m)?)?;
    m.add_function(wrap_pyfunction!(keys::py::scoped_keys, m)?)?;
    m.add_function(wrap_pyfunction!(keys::py::projects_of_keys, m)?)?;

    m.add(
        "CorruptFrameError",
        py.get_type::<frame::py::CorruptFrameError>(),
    )?;
    m.add("FRAME_MAGIC", pyo3::types::PyBytes::new(py, &frame::MAGIC))?;
    m.add("FRAME_VERSION", frame::VERSION)?;
    m.add_function(wrap_pyfunction!(frame::py::frame, m)?)?;
    m.add_function(wrap_pyfunction!(frame::py::unframe, m)?)?;

    m.add_class::<index::py::Index>()?;
    m.add_class::<index::py::IndexSnapshot>()?;
    Ok(())
}
