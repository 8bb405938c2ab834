//! Rust core of tenantstore, exposed to Python as `tenantstore._native`.
//!
//! * [`keys`]: per-project storage-key rewriting and project-id validation.
//! * [`frame`]: storage-key frames around stored values.
//! * [`index`]: the persistent ordered index behind the watch cache.
//! * [`objects`]: cached objects kept as encoded JSON, their projection and selectors.
//! * [`owners`]: the tenant map's compact `uid -> owner` table.
//! * [`proto`]: Kubernetes' protobuf encoding of the built-in types, to and from stored JSON.
//! * [`shared_bytes`]: the one-allocation, one-word handle a cached object lives in.
//!
//! Each module keeps its logic in plain Rust (covered by `cargo test`) and its Python bindings in
//! a `py` submodule; this file only registers the exports. Errors cross the boundary one way:
//! each module's error enum has a `From<...Error> for PyErr` impl in its `py` submodule, so the
//! bindings use `?` and the enum decides the Python exception class.
//!
//! Every `m.add*` call below also appends the name to the module's `__all__` (PyO3 does this),
//! so `__all__` is exactly the registered exports; `_native.pyi` repeats it for stubtest.

pub mod frame;
pub mod index;
pub mod keys;
pub mod objects;
pub mod owners;
pub mod proto;
pub mod shared_bytes;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();

    m.add(
        "InvalidProjectError",
        py.get_type::<keys::py::InvalidProjectError>(),
    )?;
    // The segment names Python needs (e.g. to recognise scoped keys) come from here, so they
    // cannot drift from the rewriting rules.
    m.add("CLUSTERS_SEGMENT", keys::CLUSTERS_SEGMENT)?;
    m.add("ROOT_SEGMENT", keys::ROOT_SEGMENT)?;
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

    m.add_class::<objects::py::CachedObject>()?;
    m.add_class::<objects::py::Selector>()?;
    m.add_class::<index::py::Index>()?;
    m.add_class::<index::py::IndexSnapshot>()?;
    m.add_class::<owners::py::OwnerMap>()?;
    m.add_function(wrap_pyfunction!(trim_heap, m)?)?;
    m.add_function(wrap_pyfunction!(tune_heap, m)?)?;

    m.add(
        "PROTOBUF_MAGIC",
        pyo3::types::PyBytes::new(py, &proto::MAGIC),
    )?;
    m.add(
        "ProtobufDecodeError",
        py.get_type::<proto::py::ProtobufDecodeError>(),
    )?;
    m.add(
        "ProtobufEncodeError",
        py.get_type::<proto::py::ProtobufEncodeError>(),
    )?;
    m.add_function(wrap_pyfunction!(proto::py::protobuf_to_json, m)?)?;
    m.add_function(wrap_pyfunction!(proto::py::json_to_protobuf, m)?)?;
    m.add_function(wrap_pyfunction!(proto::py::protobuf_watch_frame, m)?)?;
    m.add_function(wrap_pyfunction!(proto::py::protobuf_kinds, m)?)?;
    Ok(())
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" {
    fn malloc_trim(pad: usize) -> std::os::raw::c_int;
    fn mallopt(param: std::os::raw::c_int, value: std::os::raw::c_int) -> std::os::raw::c_int;
}

/// Keep the C heap's large transient buffers in the heap, resident, between requests.
///
/// A LIST of 500 objects builds about half a megabyte three times over (the page, the
/// response, the write buffer). glibc's defaults hand such blocks back to the system as
/// soon as they are freed (its mmap threshold and trim threshold start at 128 KiB), so
/// every LIST faulted fresh pages in again: on this machine that halved the LISTs a server
/// answers. `mmap_threshold`: blocks at least this large still get their own mapping;
/// `trim_threshold`: free memory at the top of the heap kept for the next request. Both in
/// bytes; true when glibc took them (elsewhere a no-op, false).
#[pyfunction]
fn tune_heap(mmap_threshold: usize, trim_threshold: usize) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_TRIM_THRESHOLD: std::os::raw::c_int = -1;
        const M_MMAP_THRESHOLD: std::os::raw::c_int = -3;
        let clamp = |v: usize| std::os::raw::c_int::try_from(v).unwrap_or(std::os::raw::c_int::MAX);
        // SAFETY: `mallopt` only sets the allocator's parameters, under its locks.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, clamp(mmap_threshold)) == 1
                && mallopt(M_TRIM_THRESHOLD, clamp(trim_threshold)) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = (mmap_threshold, trim_threshold);
        false
    }
}

/// Give the C heap's free pages back to the system; true if any were.
///
/// Building the cache allocates each object's bytes between the transient buffers of the
/// list that read it (rows, decoded values, encodings). Once those are freed, glibc keeps the
/// holes between the cached objects resident for ever: at 40,000 objects that was more than
/// the objects themselves. Called after a list has been absorbed; elsewhere a no-op.
#[pyfunction]
fn trim_heap(py: Python<'_>) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` only walks the allocator's own free lists, under its locks.
        py.detach(|| unsafe { malloc_trim(0) } != 0)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = py;
        false
    }
}
