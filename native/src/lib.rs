//! gradestream's native core (docs/grading.md, "Native hot path (Rust)"): the grading
//! core's state and rules, each module a port of its Python namesake in `streams/core`
//! (which stays the reference, checked against in `tests/native`), the boundary's fast
//! path (`decode.rs`) and replay's loop (`replay.rs`). This file is the Python binding.

pub mod churn;
pub mod decode;
pub mod due;
pub mod engine;
pub mod folding;
pub mod grading;
pub mod measures;
pub mod policy;
pub mod replay;
pub mod state;
pub mod stepping;
pub mod timefmt;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use std::collections::HashMap;

use pyo3::types::{PyBytes, PyDict, PyFloat};

use engine::{Outcome, Step};

use policy::Policy;
use state::{Num, State};

/// Decode an encoded state and encode it again: the parity check of slice 1 (the Python
/// core's `encode` must give the same bytes for the state it decodes).
#[pyfunction]
fn reencode_state<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let state = State::decode(data).map_err(PyValueError::new_err)?;
    Ok(PyBytes::new(py, &state.encode()))
}

/// `timefmt.parse_rfc3339`'s fast path: None where the Python core asks `datetime`.
#[pyfunction]
fn parse_whole_seconds(text: &str) -> Option<i64> {
    timefmt::parse_whole_seconds(text)
}

/// `timefmt.format_rfc3339` for years 1000-9999; None where the Python core asks strftime.
#[pyfunction]
fn format_rfc3339(ts: i64) -> Option<String> {
    timefmt::format_rfc3339(ts)
}

/// `measures.round4`: `round(x, 4)` bit for bit.
#[pyfunction]
fn round4(x: f64) -> f64 {
    churn::round4(x)
}

/// The policy values the native code reads, taken from a `CompiledPolicy`.
#[pyclass(name = "Policy", frozen)]
struct PyPolicy {
    fold: Policy,
}

#[pymethods]
impl PyPolicy {
    #[new]
    fn new(compiled: &Bound<'_, PyAny>) -> PyResult<Self> {
        let get = |name: &str| -> PyResult<i64> { compiled.getattr(name)?.extract() };
        let float = |name: &str| -> PyResult<f64> { compiled.getattr(name)?.extract() };
        let fold = Policy {
            version: compiled.getattr("version")?.extract()?,
            rates: compiled.getattr("rates")?.extract()?,
            full_price_max_discount: float("full_price_max_discount")?,
            window_days: get("window_days")?,
            intent_days: get("intent_days")?,
            complaint_days: get("complaint_days")?,
            max_orders: compiled.getattr("max_orders")?.extract()?,
            max_complaints: compiled.getattr("max_complaints")?.extract()?,
            lateness_s: get("lateness_s")?,
            dedup_max: compiled.getattr("dedup_max")?.extract()?,
            r_max_days: compiled.getattr("r_max_days")?.extract()?,
            f_min: compiled.getattr("f_min")?.extract()?,
            m_min_cents: compiled.getattr("m_min_cents")?.extract()?,
            segments: compiled.getattr("segments")?.extract()?,
            tier_rules: compiled.getattr("tier_rules")?.extract()?,
            value_a_cents: get("value_a_cents")?,
            value_b_cents: get("value_b_cents")?,
            new_s: get("new_s")?,
            silent_s: get("silent_s")?,
            churned_s: get("churned_s")?,
            reactivated_s: get("reactivated_s")?,
            ability_min_cents: get("ability_min_cents")?,
            satisfied_max_severity: get("satisfied_max_severity")?,
            repeat_visit_days: get("repeat_visit_days")?,
            min_calls: get("min_calls")?,
            min_site_store: get("min_site_store")?,
            min_purchase_inquiries: get("min_purchase_inquiries")?,
            survey_age_s: get("survey_age_s")?,
            nps_detractor_max: get("nps_detractor_max")?,
            csat_low_max: get("csat_low_max")?,
            ces_high_min: get("ces_high_min")?,
            has_model: !compiled.getattr("model")?.is_none(),
            cadence_min_days: float("cadence_min_days")?,
            cadence_default_days: float("cadence_default_days")?,
            overdue_start: float("overdue_start")?,
            overdue_full: float("overdue_full")?,
            open_weights: compiled.getattr("open_weights")?.extract()?,
            recent_weights: compiled.getattr("recent_weights")?.extract()?,
            w_recency: float("w_recency")?,
            w_complaints: float("w_complaints")?,
            w_surveys: float("w_surveys")?,
            w_engagement: float("w_engagement")?,
            intent_half_days: get("intent_half_days")?,
            engagement_min_baseline: get("engagement_min_baseline")?,
            band_mins: compiled.getattr("band_mins")?.extract()?,
            band_names: compiled.getattr("band_names")?.extract()?,
            alert_band: compiled.getattr("alert_band")?.extract()?,
            cooldown_s: get("cooldown_s")?,
            tier_names: compiled.getattr("tier_names")?.extract()?,
            grace_s: get("grace_s")?,
        };
        Ok(PyPolicy { fold })
    }
}

impl PyPolicy {
    /// The churn calls refuse a policy with a churn model: its signal is not ported yet.
    fn without_model(&self) -> PyResult<()> {
        if self.fold.has_model {
            return Err(PyValueError::new_err(
                "a policy with a churn model is not ported to the native core yet",
            ));
        }
        Ok(())
    }
}

/// A survey answer as the event carried it: an int stays an int, a float a float.
fn num(x: &Bound<'_, PyAny>) -> PyResult<Num> {
    if x.is_instance_of::<PyFloat>() {
        Ok(Num::Float(x.extract()?))
    } else {
        Ok(Num::Int(x.extract()?))
    }
}

/// One customer's state held natively, with the folds of `streams.core.folding`.
#[pyclass(name = "State")]
struct PyState {
    inner: State,
    /// The steps of the last `apply` or `advance`, until `take_steps`, and the event
    /// (type, id) of the last `apply`.
    steps: Vec<Step>,
    event: Option<(String, String)>,
}

/// What `apply` and `advance` answer (`streams/_native.pyi`).
const APPLIED: u8 = 0;
const DUPLICATE: u8 = 1;
const ASK_PYTHON: u8 = 2;
const STEPPED: u8 = 3;

/// An input event read by the native boundary (`Decoder.decode`).
#[pyclass(name = "Event", frozen)]
struct PyEvent {
    event: decode::Event,
    raw: Py<PyBytes>,
}

#[pymethods]
impl PyEvent {
    #[getter]
    fn customer_id(&self) -> &str {
        &self.event.customer_id
    }

    #[getter]
    fn event_id(&self) -> &str {
        &self.event.event_id
    }

    #[getter]
    fn r#type(&self) -> &str {
        &self.event.etype
    }

    /// occurred_at as epoch seconds (`engine.event_time`).
    #[getter]
    fn at(&self) -> i64 {
        self.event.at
    }

    /// The line it was read from.
    #[getter]
    fn raw(&self, py: Python<'_>) -> Py<PyBytes> {
        self.raw.clone_ref(py)
    }
}

/// The boundary's fast path for a file's lines (`native/src/decode.rs`).
#[pyclass(name = "Decoder", frozen)]
struct PyDecoder {
    decoder: decode::Decoder,
    fold: Policy,
}

#[pymethods]
impl PyDecoder {
    /// `schemas`: (name, file URI, JSON text) of every schema of `schemas/`;
    /// `topic_of_type`: `contracts.TOPIC_OF_TYPE`. The policy gives the currency rates.
    #[new]
    fn new(
        schemas: Vec<(String, String, String)>,
        topic_of_type: HashMap<String, String>,
        policy: &PyPolicy,
    ) -> PyResult<Self> {
        let docs = schemas
            .into_iter()
            .map(|(name, uri, text)| {
                let doc = serde_json::from_str(&text)
                    .map_err(|e| PyValueError::new_err(format!("{name}.json: {e}")))?;
                Ok((name, uri, doc))
            })
            .collect::<PyResult<Vec<_>>>()?;
        let decoder = decode::Decoder::new(&docs, topic_of_type).map_err(PyValueError::new_err)?;
        Ok(PyDecoder {
            decoder,
            fold: policy.fold.clone(),
        })
    }

    /// A native replay loop (`native/src/replay.rs`) with this boundary and policy:
    /// `partitions` as `Replayer.partitions`; the callables as `PyReplay` says.
    fn replay(
        &self,
        partitions: usize,
        read: PyObject,
        ask: PyObject,
        partition: PyObject,
    ) -> replay::PyReplay {
        replay::PyReplay::new(
            self.fold.clone(),
            self.decoder.clone(),
            partitions,
            (read, ask, partition),
        )
    }

    /// The event of a line, or None: `contracts.decode` decides (and refuses or takes it).
    fn decode(&self, raw: &Bound<'_, PyBytes>) -> Option<PyEvent> {
        let event = self.decoder.decode(raw.as_bytes(), &self.fold)?;
        Some(PyEvent {
            event,
            raw: raw.clone().unbind(),
        })
    }
}

#[pymethods]
impl PyState {
    #[new]
    fn new(customer_id: &str) -> Self {
        PyState {
            inner: State::new(customer_id),
            steps: Vec::new(),
            event: None,
        }
    }

    #[staticmethod]
    fn decode(data: &[u8]) -> PyResult<Self> {
        let inner = State::decode(data).map_err(PyValueError::new_err)?;
        Ok(PyState {
            inner,
            steps: Vec::new(),
            event: None,
        })
    }

    /// Take the state of these bytes (what the Python core left after an event it applied).
    fn load(&mut self, data: &[u8]) -> PyResult<()> {
        self.inner = State::decode(data).map_err(PyValueError::new_err)?;
        Ok(())
    }

    #[getter]
    fn customer_id(&self) -> &str {
        &self.inner.customer_id
    }

    #[getter]
    fn as_of(&self) -> i64 {
        self.inner.as_of
    }

    #[getter]
    fn seq(&self) -> i64 {
        self.inner.seq
    }

    #[getter]
    fn due(&self) -> Option<i64> {
        self.inner.due
    }

    /// `engine.apply` for an event of the native boundary: APPLIED, STEPPED (applied;
    /// `take_steps` has the re-grades to emit), DUPLICATE, or ASK_PYTHON (the state is
    /// untouched: the Python core must apply this event, or say why it refuses it).
    fn apply(&mut self, event: &PyEvent, policy: &PyPolicy) -> PyResult<u8> {
        policy.without_model()?;
        let ev = &event.event;
        if ev.customer_id != self.inner.customer_id {
            return Ok(ASK_PYTHON);
        }
        self.steps.clear();
        self.event = Some((ev.etype.clone(), ev.event_id.clone()));
        let outcome = engine::apply(
            &mut self.inner,
            &ev.event_id,
            ev.at,
            &ev.input,
            &policy.fold,
            &mut self.steps,
        );
        Ok(match outcome {
            Outcome::Duplicate => DUPLICATE,
            Outcome::Refused => ASK_PYTHON,
            Outcome::Applied if self.steps.is_empty() => APPLIED,
            Outcome::Applied => STEPPED,
        })
    }

    /// `engine.advance(state, now, policy)`: STEPPED when `take_steps` has re-grades to
    /// emit, else APPLIED.
    fn advance(&mut self, now: i64, policy: &PyPolicy) -> PyResult<u8> {
        policy.without_model()?;
        self.steps.clear();
        self.event = None;
        engine::advance(&mut self.inner, now, &policy.fold, &mut self.steps);
        Ok(if self.steps.is_empty() {
            APPLIED
        } else {
            STEPPED
        })
    }

    /// The steps of the last `apply` or `advance`, as the native loop gives them
    /// (`replay::step_tuple`).
    fn take_steps<'py>(
        &mut self,
        py: Python<'py>,
        policy: &PyPolicy,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let event = self.event.take();
        self.steps
            .drain(..)
            .map(|step| {
                let customer_id = self.inner.customer_id.clone();
                replay::step_tuple(py, customer_id, step, event.clone(), &policy.fold)
            })
            .collect()
    }

    fn encode<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.encode())
    }

    /// (win_count, win_cents): the cached sums of the order day buckets (not encoded).
    #[getter]
    fn window(&self) -> (i64, i64) {
        (self.inner.win_count, self.inner.win_cents)
    }

    #[allow(clippy::too_many_arguments)]
    fn fold_order(
        &mut self,
        kind: i64,
        order_id: &str,
        ts: i64,
        cents: i64,
        full_price: bool,
        policy: &PyPolicy,
    ) {
        folding::fold_order(
            &mut self.inner,
            kind,
            order_id,
            ts,
            cents,
            full_price,
            &policy.fold,
        );
    }

    fn fold_interaction(&mut self, slot: usize, ts: i64, policy: &PyPolicy) -> Option<i64> {
        folding::fold_interaction(&mut self.inner, slot, ts, &policy.fold)
    }

    #[allow(clippy::too_many_arguments)]
    fn fold_complaint(
        &mut self,
        kind: i64,
        complaint_id: &str,
        ts: i64,
        severity: i64,
        billing: bool,
        policy: &PyPolicy,
    ) {
        folding::fold_complaint(
            &mut self.inner,
            kind,
            complaint_id,
            ts,
            severity,
            billing,
            &policy.fold,
        );
    }

    fn fold_survey(
        &mut self,
        ts: i64,
        nps: &Bound<'_, PyAny>,
        csat: &Bound<'_, PyAny>,
        ces: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        folding::fold_survey(&mut self.inner, ts, num(nps)?, num(csat)?, num(ces)?);
        Ok(())
    }

    fn remember(&mut self, event_id: &str, ts: i64, policy: &PyPolicy) {
        folding::remember(&mut self.inner, event_id, ts, &policy.fold);
    }

    /// The measures at `t`, as the tuple `tests/native` builds from the Python core's:
    /// (rfm fields, segment, qualifying tier, lifecycle, value class, poor survey flags,
    /// intent grade, ability, satisfaction, indicators).
    #[allow(clippy::type_complexity)]
    fn measures(
        &self,
        t: i64,
        policy: &PyPolicy,
    ) -> (
        (Option<i64>, i64, i64, i64, i64, i64),
        String,
        usize,
        i64,
        &'static str,
        (bool, bool, bool),
        (&'static str, bool, bool, [bool; 5]),
    ) {
        let (s, c) = (&self.inner, &policy.fold);
        let r = measures::rfm(s, t, c);
        let i = measures::intent(s, t, c);
        (
            (r.recency_days, r.frequency, r.cents, r.r, r.f, r.m),
            measures::segment(r.r, r.f, r.m, c).to_owned(),
            measures::qualifying_tier(s, c),
            measures::lifecycle(s, t, c),
            measures::value_class(r.cents, c),
            measures::poor_survey(s, t, c),
            (i.grade, i.ability, i.satisfaction, i.indicators),
        )
    }

    /// `measures.churn_core` at `t` as (recency, others, recency_days, cadence_days, base,
    /// engagement), with `churn_score`'s (score, band) after it.
    #[allow(clippy::type_complexity)]
    fn churn(
        &self,
        t: i64,
        policy: &PyPolicy,
        engagement: bool,
    ) -> PyResult<((f64, f64, i64, f64, f64, f64), (f64, usize))> {
        policy.without_model()?;
        let c = &policy.fold;
        let k = churn::churn_core(&self.inner, t, c, engagement);
        Ok((
            (
                k.recency,
                k.others,
                k.recency_days,
                k.cadence_days,
                k.base,
                k.engagement,
            ),
            churn::churn_score(&self.inner, t, c),
        ))
    }

    /// `measures.churn_reasons` at `t` as (code, message) pairs.
    fn churn_reasons(&self, t: i64, policy: &PyPolicy) -> PyResult<Vec<(&'static str, String)>> {
        policy.without_model()?;
        Ok(churn::churn_reasons(&self.inner, t, &policy.fold))
    }

    /// `stepping.settle` at `t` (no parts given): the transitions as
    /// (type, previous, current, extra, score).
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn settle(
        &mut self,
        t: i64,
        policy: &PyPolicy,
        how: i64,
        orders: bool,
        churn: bool,
        at_once: bool,
    ) -> PyResult<Vec<(&'static str, String, String, &'static str, f64)>> {
        policy.without_model()?;
        let (out, _) = stepping::settle(
            &mut self.inner,
            t,
            &policy.fold,
            how,
            orders,
            churn,
            at_once,
            None,
        );
        Ok(out
            .into_iter()
            .map(|x| (x.kind, x.previous, x.current, x.extra, x.score))
            .collect())
    }

    fn move_to(&mut self, t: i64) {
        folding::move_to(&mut self.inner, t);
    }

    fn prune(&mut self, policy: &PyPolicy) {
        folding::prune(&mut self.inner, &policy.fold);
    }

    // ---- due times (`streams.core.due`), at the state's as_of ----

    /// `due.next_due_c` (the churn parts computed).
    fn next_due(&self, policy: &PyPolicy) -> PyResult<Option<i64>> {
        policy.without_model()?;
        Ok(due::next_due_c(&self.inner, &policy.fold, None))
    }

    /// The parts of the due, each on its own: (orders_due, order_times_due,
    /// intent_grade_due, complaints_due, holds_due, churn_due, churn_due with the worst
    /// engagement, band_due with the exact parts).
    #[allow(clippy::type_complexity)]
    fn dues(
        &self,
        policy: &PyPolicy,
    ) -> PyResult<(
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    )> {
        policy.without_model()?;
        let (s, c) = (&self.inner, &policy.fold);
        let k = churn::churn_core(s, s.as_of, c, true);
        Ok((
            due::orders_due(s, c),
            due::order_times_due(s, c),
            due::intent_grade_due(s, c),
            due::complaints_due(s, c),
            due::holds_due(s, c),
            due::churn_due(s, c, None, None, false),
            due::churn_due(s, c, None, None, true),
            due::band_due(s, c, &k, None),
        ))
    }

    /// `due.churn_due` (the parts computed) with a due already known, `before`.
    fn churn_due_before(
        &self,
        before: i64,
        worst_engagement: bool,
        policy: &PyPolicy,
    ) -> PyResult<Option<i64>> {
        policy.without_model()?;
        let (s, c) = (&self.inner, &policy.fold);
        Ok(due::churn_due(s, c, None, Some(before), worst_engagement))
    }

    /// `due.band_due` with the exact parts and a due already known, `before`.
    fn band_due_before(&self, before: i64, policy: &PyPolicy) -> PyResult<Option<i64>> {
        policy.without_model()?;
        let (s, c) = (&self.inner, &policy.fold);
        let k = churn::churn_core(s, s.as_of, c, true);
        Ok(due::band_due(s, c, &k, Some(before)))
    }

    /// `due.indicator_reached`: did the unit just folded into `slot` on `day` bring an
    /// intent indicator to A? ValueError for a day without a bucket or a wrong slot.
    fn indicator_reached(&self, slot: usize, day: i64, policy: &PyPolicy) -> PyResult<bool> {
        policy.without_model()?;
        let s = &self.inner;
        if slot >= state::I_KINDS || !s.idays.iter().any(|(d, _)| *d == day) {
            return Err(PyValueError::new_err(format!(
                "no interaction bucket for slot {slot} on day {day}"
            )));
        }
        Ok(due::indicator_reached(s, slot, day, &policy.fold))
    }

    // ---- the grade snapshot (`streams.core.grading`) ----

    /// `grading.build_snapshot(state, t, policy)` (`t` the state's as_of); None where the
    /// Python core must build it (a year outside 1000-9999: strftime).
    fn snapshot<'py>(
        &self,
        py: Python<'py>,
        t: i64,
        policy: &PyPolicy,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        policy.without_model()?;
        grading::snapshot(&self.inner, t, &policy.fold)
            .map(|g| snapshot_dict(py, &g))
            .transpose()
    }

    /// `measures.churn_reasons` at `t` in its own shape, [{"code", "message"}, ...], as a
    /// churn_risk_changed event carries it.
    fn churn_reasons_dicts<'py>(
        &self,
        py: Python<'py>,
        t: i64,
        policy: &PyPolicy,
    ) -> PyResult<Bound<'py, pyo3::types::PyList>> {
        policy.without_model()?;
        reasons_list(py, &churn::churn_reasons(&self.inner, t, &policy.fold))
    }
}

/// `grading.build_snapshot`'s dict: the same keys in the same order, the same value types
/// (ints, floats, None for no recency), so orjson writes the same bytes.
pub(crate) fn snapshot_dict<'py>(
    py: Python<'py>,
    g: &grading::Snapshot,
) -> PyResult<Bound<'py, PyDict>> {
    let rfm = PyDict::new(py);
    rfm.set_item(intern!(py, "recency_days"), g.rfm.recency_days)?;
    rfm.set_item(intern!(py, "frequency"), g.rfm.frequency)?;
    rfm.set_item(intern!(py, "monetary"), g.monetary)?;
    rfm.set_item(intern!(py, "r"), g.rfm.r)?;
    rfm.set_item(intern!(py, "f"), g.rfm.f)?;
    rfm.set_item(intern!(py, "m"), g.rfm.m)?;
    rfm.set_item(intern!(py, "code"), g.code())?;
    let churn = PyDict::new(py);
    churn.set_item(intern!(py, "score"), g.score)?;
    churn.set_item(intern!(py, "band"), g.band)?;
    churn.set_item(intern!(py, "reasons"), reasons_list(py, &g.reasons)?)?;
    let d = PyDict::new(py);
    d.set_item(intern!(py, "customer_id"), g.customer_id)?;
    d.set_item(intern!(py, "as_of"), &g.as_of)?;
    d.set_item(intern!(py, "seq"), g.seq)?;
    d.set_item(intern!(py, "policy_version"), g.policy_version)?;
    d.set_item(intern!(py, "rfm"), rfm)?;
    d.set_item(intern!(py, "segment"), g.segment)?;
    d.set_item(intern!(py, "tier"), g.tier)?;
    d.set_item(intern!(py, "lifecycle"), g.lifecycle)?;
    d.set_item(intern!(py, "intent_grade"), g.intent_grade)?;
    d.set_item(intern!(py, "value_class"), g.value_class)?;
    d.set_item(intern!(py, "churn"), churn)?;
    Ok(d)
}

/// `measures.churn_reasons`'s shape: a list of {"code", "message"} dicts.
pub(crate) fn reasons_list<'py>(
    py: Python<'py>,
    reasons: &[(&str, String)],
) -> PyResult<Bound<'py, pyo3::types::PyList>> {
    let list = pyo3::types::PyList::empty(py);
    for (code, message) in reasons {
        let d = PyDict::new(py);
        d.set_item(intern!(py, "code"), code)?;
        d.set_item(intern!(py, "message"), message)?;
        list.append(d)?;
    }
    Ok(list)
}

/// `round(x, 2)` bit for bit (the snapshot's monetary), for the tests.
#[pyfunction]
fn round2(x: f64) -> f64 {
    grading::py_round2(x)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(reencode_state, m)?)?;
    m.add_function(wrap_pyfunction!(parse_whole_seconds, m)?)?;
    m.add_function(wrap_pyfunction!(format_rfc3339, m)?)?;
    m.add_function(wrap_pyfunction!(round4, m)?)?;
    m.add_function(wrap_pyfunction!(round2, m)?)?;
    m.add("APPLIED", APPLIED)?;
    m.add("DUPLICATE", DUPLICATE)?;
    m.add("ASK_PYTHON", ASK_PYTHON)?;
    m.add("STEPPED", STEPPED)?;
    m.add_class::<PyPolicy>()?;
    m.add_class::<PyState>()?;
    m.add_class::<PyEvent>()?;
    m.add_class::<PyDecoder>()?;
    m.add_class::<replay::PyReplay>()?;
    Ok(())
}
