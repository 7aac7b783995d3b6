//! gradestream's native hot path (docs/grading.md, "Decision"): the grading core's state
//! and, slice by slice, its rules, each checked against the Python core, which stays the
//! reference. Slice 1: the state and its encoding (format 2, the very bytes of
//! `streams.core.state.encode`).

pub mod state;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Decode an encoded state and encode it again: the parity check of slice 1 (the Python
/// core's `encode` must give the same bytes for the state it decodes).
#[pyfunction]
fn reencode_state<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let state = state::State::decode(data).map_err(PyValueError::new_err)?;
    Ok(PyBytes::new(py, &state.encode()))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(reencode_state, m)?)?;
    Ok(())
}
