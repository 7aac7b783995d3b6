//! The boundary's fast path (`streams.contracts.decode` for a file's line): parse with
//! serde_json, validate with the very schemas of `schemas/` (the crate jsonschema-rs wraps,
//! same version), and read what `engine.apply` reads, into an `Event`.
//!
//! It only ever says yes: a line it has the least doubt about (a parse or schema error,
//! a nested value, a digit run orjson and serde_json might read differently, a time the
//! fast path of `timefmt` does not take) gets `None`, and `contracts.decode` decides,
//! with its exact rejection. So the rejections are written once, in Python.

use std::collections::HashMap;

use jsonschema::{Retrieve, Uri, Validator};
use serde_json::{Map, Value};

use crate::engine::Input;
use crate::folding::{CANCELLED, ESCALATED, OPENED, PLACED, REFUNDED, RESOLVED};
use crate::policy::Policy;
use crate::state::{Num, I_CALL, I_INQUIRY, I_OTHER, I_PRICE, I_SITE_STORE, I_VISIT};
use crate::timefmt::parse_whole_seconds;

/// `contracts.MAX_VALUE_BYTES`.
const MAX_VALUE_BYTES: usize = 64 * 1024;
/// orjson reads integers up to 64 bits and refuses longer ones; serde_json reads those
/// as floats. 18 digits are below both limits, so a line without a longer run of digits
/// is read alike (floats: both round correctly).
const MAX_DIGITS: usize = 18;

/// An input event that passed the boundary, read as `engine.apply` reads it.
pub struct Event {
    pub customer_id: String,
    pub event_id: String,
    pub etype: String,
    pub at: i64,
    /// `Input::Refused` when the core refuses it (an unknown currency), or reads a value
    /// it leaves to the Python core.
    pub input: Input,
}

/// `$ref`s resolve to our own schemas by file name, never over the network (as
/// `contracts._load`'s `retrieve`).
struct ByFileName(HashMap<String, Value>);

impl Retrieve for ByFileName {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let text = uri.as_str();
        let path = text.split('#').next().unwrap_or("").trim_end_matches('/');
        let name = path.rsplit('/').next().unwrap_or("");
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| format!("$ref to {text}: no such schema").into())
    }
}

#[derive(Clone)]
pub struct Decoder {
    /// topic -> its validator
    validators: HashMap<String, Validator>,
    /// event type -> topic
    topic_of_type: HashMap<String, String>,
}

impl Decoder {
    /// `schemas`: (name, file URI, document) of every schema; `topic_of_type` as
    /// `contracts.TOPIC_OF_TYPE`.
    pub fn new(
        schemas: &[(String, String, Value)],
        topic_of_type: HashMap<String, String>,
    ) -> Result<Decoder, String> {
        let by_name: HashMap<String, Value> = schemas
            .iter()
            .map(|(name, _, doc)| (format!("{name}.json"), doc.clone()))
            .collect();
        let mut validators = HashMap::new();
        for topic in topic_of_type.values() {
            if validators.contains_key(topic) {
                continue;
            }
            let (_, uri, doc) = schemas
                .iter()
                .find(|(name, _, _)| name == topic)
                .ok_or_else(|| format!("no schema for topic {topic}"))?;
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .should_ignore_unknown_formats(false)
                .with_base_uri(uri.clone())
                .with_retriever(ByFileName(by_name.clone()))
                .build(doc)
                .map_err(|e| format!("{topic}.json: {e}"))?;
            validators.insert(topic.clone(), validator);
        }
        Ok(Decoder {
            validators,
            topic_of_type,
        })
    }

    /// The event of a line, or None: `contracts.decode` decides.
    pub fn decode(&self, raw: &[u8], c: &Policy) -> Option<Event> {
        if raw.len() > MAX_VALUE_BYTES || long_digit_run(raw) {
            return None;
        }
        let value: Value = serde_json::from_slice(raw).ok()?;
        let obj = value.as_object()?;
        // Known fields are scalars; a nested extra field is the Python side's (depth).
        if obj.values().any(|v| v.is_object() || v.is_array()) {
            return None;
        }
        let etype = obj.get("type")?.as_str()?;
        let topic = self.topic_of_type.get(etype)?;
        if !self.validators.get(topic)?.is_valid(&value) {
            return None;
        }
        let text = |k: &str| obj.get(k).and_then(Value::as_str);
        let at = parse_whole_seconds(text("occurred_at")?)?;
        Some(Event {
            customer_id: text("customer_id")?.to_owned(),
            event_id: text("event_id")?.to_owned(),
            etype: etype.to_owned(),
            at,
            input: read_input(obj, etype, c).unwrap_or(Input::Refused),
        })
    }
}

fn long_digit_run(raw: &[u8]) -> bool {
    let mut run = 0;
    for &b in raw {
        if b.is_ascii_digit() {
            run += 1;
            if run > MAX_DIGITS {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// A number as f64, exact as Python's arithmetic on it: None beyond 2**52 for an int
/// (sums of two stop being exact as f64 there; Python's ints do not).
fn number(v: &Value) -> Option<f64> {
    let n = v.as_number()?;
    if let Some(i) = n.as_i64() {
        return (i.unsigned_abs() <= 1 << 52).then_some(i as f64);
    }
    if n.is_f64() {
        return n.as_f64();
    }
    None
}

/// A survey answer as the event carried it: 3 stays an int, 3.0 a float.
fn answer(v: Option<&Value>) -> Option<Num> {
    let Some(v) = v else {
        return Some(Num::Int(-1));
    };
    let n = v.as_number()?;
    if let Some(i) = n.as_i64() {
        return Some(Num::Int(i));
    }
    if n.is_f64() {
        return n.as_f64().map(Num::Float);
    }
    None
}

/// `engine.apply`'s reading of an event's own fields; None: the Python core's (a refusal,
/// or a value it reads exactly where f64 might not).
pub fn read_input(obj: &Map<String, Value>, etype: &str, c: &Policy) -> Option<Input> {
    let text = |k: &str| obj.get(k).and_then(Value::as_str);
    let order = |kind: i64| -> Option<Input> {
        let rate = *c.rates.get(text("currency")?)?;
        let amount = number(obj.get("amount")?)?;
        let cents = (amount * rate * 100.0).round_ties_even();
        if cents.abs() >= (1u64 << 62) as f64 {
            return None;
        }
        let discount = match obj.get("discount") {
            Some(Value::Null) | None => 0.0,
            Some(d) => number(d)?,
        };
        let paid = amount + discount;
        let full_price =
            kind == PLACED && (paid <= 0.0 || discount / paid <= c.full_price_max_discount);
        Some(Input::Order {
            kind,
            order_id: text("order_id")?.to_owned(),
            cents: cents as i64,
            full_price,
        })
    };
    let complaint = |kind: i64| -> Option<Input> {
        let severity = match text("severity")? {
            "low" => 0,
            "medium" => 1,
            "high" => 2,
            _ => return None,
        };
        Some(Input::Complaint {
            kind,
            complaint_id: text("complaint_id")?.to_owned(),
            severity,
            billing: text("category") == Some("billing"),
        })
    };
    let slot = |slot: usize| Some(Input::Interaction { slot, survey: None });
    match etype {
        "order_placed" => order(PLACED),
        "order_refunded" => order(REFUNDED),
        "order_cancelled" => order(CANCELLED),
        "complaint_opened" => complaint(OPENED),
        "complaint_escalated" => complaint(ESCALATED),
        "complaint_resolved" => complaint(RESOLVED),
        "page_view" | "app_open" => slot(I_VISIT),
        "site_visit" | "store_visit" => slot(I_SITE_STORE),
        "inbound_call" => slot(I_CALL),
        "inquiry" | "purchase_inquiry" => slot(I_INQUIRY),
        "price_inquiry" => slot(I_PRICE),
        "email_open" | "email_click" | "support_chat" => slot(I_OTHER),
        "survey_response" => Some(Input::Interaction {
            slot: I_OTHER,
            survey: Some([
                answer(obj.get("nps"))?,
                answer(obj.get("csat"))?,
                answer(obj.get("ces"))?,
            ]),
        }),
        _ => None,
    }
}
