//! `streams.replay.Replayer.feed_chunk`, its customer runs and sweeps, and its due index
//! (`streams.schedule.DueIndex`), over native states: the loop of a native replay.
//!
//! The Python side keeps what is rare or written once: the refusals' reasons (a line
//! the native boundary does not take goes to `contracts.decode`; an event the core does
//! not take, to the Python core on a copy of the state), the output events built from
//! the steps given here, the partition of a customer (Kafka's murmur2, asked once per
//! customer), and the files.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use indexmap::IndexMap;
use rustc_hash::{FxBuildHasher, FxHashMap as HashMap};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::churn::churn_reasons;
use crate::decode::{Decoder, Event};
use crate::engine::{self, Cause, Outcome, Step};
use crate::grading;
use crate::policy::Policy;
use crate::state::State;
use crate::stepping::roll;
use crate::{reasons_list, snapshot_dict};

/// Due times by customer, popped in (due, customer) order (`schedule.DueIndex`).
#[derive(Default)]
struct DueIndex {
    heap: BinaryHeap<Reverse<(i64, String)>>,
    due: HashMap<String, i64>,
}

impl DueIndex {
    fn set(&mut self, customer_id: &str, due: Option<i64>) {
        let Some(due) = due else {
            self.due.remove(customer_id);
            return;
        };
        if self.due.get(customer_id) == Some(&due) {
            return;
        }
        self.due.insert(customer_id.to_owned(), due);
        self.heap.push(Reverse((due, customer_id.to_owned())));
        // Stale entries accumulate when due times move often; rebuild before they dominate.
        if self.heap.len() > 4 * self.due.len() + 1024 {
            self.heap = self
                .due
                .iter()
                .map(|(c, d)| Reverse((*d, c.clone())))
                .collect();
        }
    }

    fn pop_due(&mut self, now: i64) -> Vec<String> {
        let mut out = Vec::new();
        while self.heap.peek().is_some_and(|Reverse((d, _))| *d <= now) {
            let Reverse((due, customer_id)) = self.heap.pop().expect("peeked");
            if self.due.get(&customer_id) == Some(&due) {
                self.due.remove(&customer_id);
                out.push(customer_id);
            }
        }
        out
    }
}

/// A line's event: read natively, or by `contracts.decode` (then applied by the Python
/// core).
enum Read {
    Native(Event),
    Python(PyObject),
}

struct Line {
    line_no: i64,
    /// Its place in the chunk's lines (which hold its bytes: no reference per line).
    index: usize,
    event: Read,
    at: i64,
    /// How many of its partition's rising lines are at or before it.
    rises: usize,
}

/// What an output came from, in `feed`'s order of writes: (line, 0 for a sweep or 1 for
/// the line's own event, the due that woke the customer, the customer).
type Key = (i64, u8, i64, String);

/// A step to build output events from, or the outputs the Python core built.
enum Out {
    Step {
        customer_id: String,
        step: Step,
        event: Option<(String, String)>,
    },
    Python(PyObject),
}

#[pyclass(name = "Replay")]
pub struct PyReplay {
    fold: Policy,
    decoder: Decoder,
    partitions: usize,
    states: HashMap<String, Box<State>>,
    partition_of: HashMap<String, usize>,
    times: HashMap<usize, i64>,
    dues: HashMap<usize, DueIndex>,
    // the statistics kept here (`ReplayStats`'s counts; the Counters are the Python side's)
    lines: i64,
    applied: i64,
    duplicates: i64,
    regraded_by_time: i64,
    stream_time: Option<i64>,
    /// The Python side's callables (`streams/replay.py`): `read(raw)` for a line the
    /// native boundary leaves to `contracts.decode` ((event, customer_id, time) or None
    /// for a refusal), `ask(state, event, time)` for an event the native core leaves to
    /// the Python core ((rejection, duplicate, outputs, state or None)), and
    /// `partition(customer_id)`.
    read: PyObject,
    ask: PyObject,
    partition: PyObject,
}

impl PyReplay {
    pub fn new(
        fold: Policy,
        decoder: Decoder,
        partitions: usize,
        callbacks: (PyObject, PyObject, PyObject),
    ) -> Self {
        let (read, ask, partition) = callbacks;
        PyReplay {
            fold,
            decoder,
            partitions,
            states: HashMap::default(),
            partition_of: HashMap::default(),
            times: HashMap::default(),
            dues: HashMap::default(),
            lines: 0,
            applied: 0,
            duplicates: 0,
            regraded_by_time: 0,
            stream_time: None,
            read,
            ask,
            partition,
        }
    }

    fn partition(&mut self, py: Python<'_>, customer_id: &str) -> PyResult<usize> {
        if self.partitions == 1 {
            return Ok(0);
        }
        if let Some(p) = self.partition_of.get(customer_id) {
            return Ok(*p);
        }
        let p: usize = self.partition.call1(py, (customer_id,))?.extract(py)?;
        self.partition_of.insert(customer_id.to_owned(), p);
        Ok(p)
    }

    /// One customer through its lines of a chunk and its partition's rising lines
    /// (`Replayer._run`).
    #[allow(clippy::too_many_arguments)]
    fn run<'py>(
        &mut self,
        py: Python<'py>,
        raws: &[(i64, Bound<'py, PyBytes>)],
        customer_id: &str,
        mine: Vec<Line>,
        rises: &HashMap<usize, (Vec<i64>, Vec<i64>)>,
        outs: &mut Vec<(Key, Out)>,
        dead: &mut Vec<(i64, Py<PyBytes>, Option<PyObject>)>,
    ) -> PyResult<()> {
        let partition = self.partition(py, customer_id)?;
        let (lines, times) = &rises[&partition];
        let mut state = self.states.remove(customer_id);
        let mut k = 0;
        for line in mine {
            match state.as_mut() {
                None => state = Some(Box::new(State::new(customer_id))),
                Some(s) => self.sweep_one(s, lines, times, k, line.rises, outs),
            }
            let s = state.as_mut().expect("set above");
            k = line.rises;
            let event_key = (line.line_no, 1, 0, String::new());
            let native = match &line.event {
                Read::Native(ev) => Some(ev),
                Read::Python(_) => None,
            };
            let mut steps = Vec::new();
            let outcome = match native {
                Some(ev) => {
                    engine::apply(s, &ev.event_id, ev.at, &ev.input, &self.fold, &mut steps)
                }
                None => Outcome::Refused,
            };
            match outcome {
                Outcome::Duplicate => self.duplicates += 1,
                Outcome::Applied => {
                    self.applied += 1;
                    let event = native.map(|ev| (ev.etype.clone(), ev.event_id.clone()));
                    for step in steps {
                        let out = Out::Step {
                            customer_id: customer_id.to_owned(),
                            step,
                            event: event.clone(),
                        };
                        outs.push((event_key.clone(), out));
                    }
                }
                Outcome::Refused => {
                    // The Python core applies it to a copy, or says why it refuses it.
                    let event = match &line.event {
                        Read::Native(_) => raws[line.index].1.clone().into_any().unbind(),
                        Read::Python(event) => event.clone_ref(py),
                    };
                    let data = PyBytes::new(py, &s.encode());
                    let answer = self.ask.call1(py, (data, event, line.at))?;
                    let (rejection, duplicate, outputs, new_state): (
                        PyObject,
                        bool,
                        PyObject,
                        Option<Vec<u8>>,
                    ) = answer.extract(py)?;
                    if !rejection.is_none(py) {
                        let raw = raws[line.index].1.clone().unbind();
                        dead.push((line.line_no, raw, Some(rejection)));
                    } else if duplicate {
                        self.duplicates += 1;
                    } else {
                        self.applied += 1;
                        if let Some(data) = new_state {
                            **s = State::decode(&data)
                                .map_err(pyo3::exceptions::PyValueError::new_err)?;
                        }
                        outs.push((event_key, Out::Python(outputs)));
                    }
                }
            }
        }
        let Some(mut s) = state else {
            return Ok(());
        };
        self.sweep_one(&mut s, lines, times, k, lines.len(), outs);
        let due = s.due;
        self.states.insert(customer_id.to_owned(), s);
        self.dues
            .entry(partition)
            .or_default()
            .set(customer_id, due);
        Ok(())
    }

    /// Sweep one customer as `feed` would at each rising line `k..end` whose stream time
    /// reaches its due (`Replayer._sweep_one`).
    fn sweep_one(
        &mut self,
        s: &mut State,
        lines: &[i64],
        times: &[i64],
        mut k: usize,
        end: usize,
        outs: &mut Vec<(Key, Out)>,
    ) {
        while let Some(due) = s.due {
            if k >= end || times[end - 1] < due {
                break;
            }
            let j = k + times[k..end].partition_point(|&t| t < due);
            let as_of = s.as_of;
            let mut steps = Vec::new();
            engine::advance(s, times[j], &self.fold, &mut steps);
            let key = (lines[j], 0, due, s.customer_id.clone());
            for step in steps {
                let out = Out::Step {
                    customer_id: s.customer_id.clone(),
                    step,
                    event: None,
                };
                outs.push((key.clone(), out));
            }
            if s.as_of != as_of {
                self.regraded_by_time += 1;
            }
            k = j + 1;
        }
    }
}

/// A step as the Python side builds output events from it (`streams.native.outputs_of`):
/// (customer_id, cause kind, time, transitions as (type, previous, current, extra,
/// score), what the events quote, the event's (type, id) for cause "event"). What they
/// quote is (the snapshot or None, churn's reasons or None), built here, or where the
/// native snapshot declines (a year outside 1000-9999) the state then, encoded.
pub fn step_tuple<'py>(
    py: Python<'py>,
    customer_id: String,
    (cause, t, trans, state): Step,
    event: Option<(String, String)>,
    c: &Policy,
) -> PyResult<Bound<'py, PyAny>> {
    let kind = match cause {
        Cause::Event => "event",
        Cause::Inactivity => "inactivity",
        Cause::PolicyChange => "policy_change",
    };
    let wants = |kind: &str| trans.iter().any(|x| x.kind == kind);
    let tier = wants("tier_changed");
    let snapshot = if tier {
        match grading::snapshot(&state, t, c) {
            Some(g) => Some(snapshot_dict(py, &g)?),
            None => None,
        }
    } else {
        None
    };
    let view = if tier && snapshot.is_none() {
        PyBytes::new(py, &state.encode()).into_any()
    } else {
        let reasons = if wants("churn_risk_changed") {
            Some(reasons_list(py, &churn_reasons(&state, t, c))?)
        } else {
            None
        };
        (snapshot, reasons).into_pyobject(py)?.into_any()
    };
    let trans: Vec<_> = trans
        .into_iter()
        .map(|x| (x.kind, x.previous, x.current, x.extra, x.score))
        .collect();
    let event = if cause == Cause::Event { event } else { None };
    Ok((customer_id, kind, t, trans, view, event)
        .into_pyobject(py)?
        .into_any())
}

fn out_object<'py>(py: Python<'py>, out: Out, c: &Policy) -> PyResult<Bound<'py, PyAny>> {
    match out {
        Out::Python(outputs) => Ok(outputs.into_bound(py)),
        Out::Step {
            customer_id,
            step,
            event,
        } => step_tuple(py, customer_id, step, event, c),
    }
}

#[pymethods]
impl PyReplay {
    /// `Replayer.feed_chunk` for numbered lines in file order: returns (outputs, dead),
    /// in `feed`'s order of writes. Each of outputs is a step tuple (`step_tuple`) or a
    /// list of output events the Python core built; each of dead is (line, raw,
    /// rejection or None: `contracts.decode`'s).
    #[allow(clippy::type_complexity)]
    fn feed_chunk<'py>(
        &mut self,
        py: Python<'py>,
        lines: Vec<(i64, Bound<'py, PyBytes>)>,
    ) -> PyResult<(
        Bound<'py, PyList>,
        Vec<(i64, Py<PyBytes>, Option<PyObject>)>,
    )> {
        // Pass 1, in line order: decode, stream time, the rising lines per partition.
        let mut by_customer: IndexMap<String, Vec<Line>, FxBuildHasher> = IndexMap::default();
        let mut rises: HashMap<usize, (Vec<i64>, Vec<i64>)> = HashMap::default();
        let mut partitions_seen: Vec<usize> = Vec::new();
        let mut dead: Vec<(i64, Py<PyBytes>, Option<PyObject>)> = Vec::new();
        for (index, (line_no, raw)) in lines.iter().enumerate() {
            let line_no = *line_no;
            self.lines += 1;
            let (customer_id, at, event) = match self.decoder.decode(raw.as_bytes(), &self.fold) {
                Some(ev) => (ev.customer_id.clone(), ev.at, Read::Native(ev)),
                None => {
                    let read = self.read.call1(py, (raw.clone(),))?;
                    if read.is_none(py) {
                        dead.push((line_no, raw.clone().unbind(), None));
                        continue;
                    }
                    let (event, customer_id, at): (PyObject, String, i64) = read.extract(py)?;
                    (customer_id, at, Read::Python(event))
                }
            };
            if self.stream_time.is_none_or(|t| at > t) {
                self.stream_time = Some(at);
            }
            let partition = self.partition(py, &customer_id)?;
            let (rise_lines, rise_times) = rises.entry(partition).or_insert_with(|| {
                partitions_seen.push(partition);
                (Vec::new(), Vec::new())
            });
            self.dues.entry(partition).or_default();
            if self.times.get(&partition).is_none_or(|&t| at > t) {
                self.times.insert(partition, at);
                rise_lines.push(line_no);
                rise_times.push(at);
            }
            let line = Line {
                line_no,
                index,
                event,
                at,
                rises: rise_lines.len(),
            };
            by_customer.entry(customer_id).or_default().push(line);
        }

        // Pass 2, customer by customer; keys put the outputs back in `feed`'s order.
        let mut outs: Vec<(Key, Out)> = Vec::new();
        let mut quiet: Vec<String> = Vec::new();
        for partition in &partitions_seen {
            if let Some(&last) = rises[partition].1.last() {
                let index = self.dues.entry(*partition).or_default();
                for customer_id in index.pop_due(last) {
                    if !by_customer.contains_key(&customer_id) {
                        quiet.push(customer_id);
                    }
                }
            }
        }
        for customer_id in quiet {
            self.run(
                py,
                &lines,
                &customer_id,
                Vec::new(),
                &rises,
                &mut outs,
                &mut dead,
            )?;
        }
        for (customer_id, mine) in by_customer {
            self.run(py, &lines, &customer_id, mine, &rises, &mut outs, &mut dead)?;
        }
        // Stable: one key's outputs stay in the order they were made.
        outs.sort_by(|a, b| a.0.cmp(&b.0));
        dead.sort_by_key(|d| d.0);
        let list = PyList::empty(py);
        for (_, out) in outs {
            list.append(out_object(py, out, &self.fold)?)?;
        }
        Ok((list, dead))
    }

    /// Re-grade every customer due at or before `now` (`Replayer.sweep`): the outputs
    /// as `feed_chunk` gives them, in order.
    fn sweep<'py>(&mut self, py: Python<'py>, now: i64) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        let mut partitions: Vec<usize> = self.dues.keys().copied().collect();
        partitions.sort_unstable();
        for partition in partitions {
            let due = self.dues.get_mut(&partition).expect("listed").pop_due(now);
            for customer_id in due {
                let s = self.states.get_mut(&customer_id).expect("indexed");
                let as_of = s.as_of;
                let mut steps = Vec::new();
                engine::advance(s, now, &self.fold, &mut steps);
                if s.as_of != as_of {
                    self.regraded_by_time += 1;
                }
                let next = s.due;
                for step in steps {
                    let out = Out::Step {
                        customer_id: customer_id.clone(),
                        step,
                        event: None,
                    };
                    list.append(out_object(py, out, &self.fold)?)?;
                }
                self.dues
                    .get_mut(&partition)
                    .expect("listed")
                    .set(&customer_id, next);
            }
        }
        Ok(list)
    }

    /// Every customer's final grade, by id (`Replayer.finish` after its sweep): the
    /// snapshot at its as_of, or with `as_of` at max(as_of, its own) as `grading.grade`
    /// looks ahead (on a copy); the state encoded where the native snapshot declines.
    #[pyo3(signature = (as_of))]
    fn grades<'py>(&self, py: Python<'py>, as_of: Option<i64>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for customer_id in self.customers() {
            let s = &self.states[&customer_id];
            let ahead;
            let (state, t) = match as_of {
                Some(now) if now > s.as_of => {
                    let mut copy = s.as_ref().clone();
                    roll(&mut copy, now, &self.fold, &mut Vec::new());
                    ahead = copy;
                    (&ahead, now)
                }
                _ => (s.as_ref(), s.as_of),
            };
            match grading::snapshot(state, t, &self.fold) {
                Some(g) => list.append(snapshot_dict(py, &g)?)?,
                None => list.append(PyBytes::new(py, &s.encode()))?,
            }
        }
        Ok(list)
    }

    /// Every customer's id, sorted.
    fn customers(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.states.keys().cloned().collect();
        ids.sort_unstable();
        ids
    }

    /// A customer's state, encoded (`streams.core.state.decode` reads it).
    fn encoded<'py>(&self, py: Python<'py>, customer_id: &str) -> Option<Bound<'py, PyBytes>> {
        self.states
            .get(customer_id)
            .map(|s| PyBytes::new(py, &s.encode()))
    }

    /// (lines, applied, duplicates, regraded_by_time, stream_time).
    fn counts(&self) -> (i64, i64, i64, i64, Option<i64>) {
        (
            self.lines,
            self.applied,
            self.duplicates,
            self.regraded_by_time,
            self.stream_time,
        )
    }
}
