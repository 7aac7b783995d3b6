//! Per-customer state: the fields of `streams.core.state.CustomerState`, and `encode` /
//! `decode` to the same bytes (format 2: an orjson array of the fields in a fixed order,
//! no field names).
//!
//! The maps keep the Python core's dict order (insertion order; a removal keeps the
//! others' order: `IndexMap::shift_remove`), because the encoding lists them in that
//! order. `idays` is kept in ascending day order, as the Python core keeps it.

use indexmap::IndexMap;
use rustc_hash::FxBuildHasher;

/// The state's maps: insertion-ordered as the Python core's dicts, with a fast hash.
pub type Map<K, V> = IndexMap<K, V, FxBuildHasher>;
use serde_json::Value;

/// Bumped when the encoded layout changes; decode refuses other versions.
pub const FORMAT: i64 = 2;
/// Days are `epoch // DAY`; "no time" inside records (`NO_TS`), as in state.py.
pub const DAY: i64 = 86_400;
pub const NO_TS: i64 = -(1 << 62);

// Interaction day bucket slots (state.py's I_*).
pub const I_VISIT: usize = 0;
pub const I_SITE_STORE: usize = 1;
pub const I_CALL: usize = 2;
pub const I_INQUIRY: usize = 3;
pub const I_PRICE: usize = 4;
pub const I_OTHER: usize = 5;
pub const I_FULL_PRICE: usize = 6;
pub const I_TOTAL: usize = 7;
pub const I_KINDS: usize = 8;
// Order record slots (O_*).
pub const O_TS: usize = 0;
pub const O_PLACED: usize = 1;
pub const O_REFUNDED: usize = 2;
pub const O_CANCELLED: usize = 3;
pub const O_ADJ_DAY: usize = 4;
pub const O_CANCEL: usize = 5;
pub const O_SLOTS: usize = 6;
// Complaint record slots (C_*).
pub const C_OPENED: usize = 0;
pub const C_SEVERITY: usize = 1;
pub const C_BILLING: usize = 2;
pub const C_ESCALATED: usize = 3;
pub const C_RESOLVED: usize = 4;
pub const C_SEEN: usize = 5;
pub const C_OPEN_SEV: usize = 6;
pub const C_SLOTS: usize = 7;

/// A number as the event carried it: a survey answer may come as 3 or as 3.0, and the
/// Python core keeps it as it came (the encoded bytes differ).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    Int(i64),
    Float(f64),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    pub customer_id: String,
    pub as_of: i64,
    pub seq: i64,
    pub due: Option<i64>,
    /// (seq, as_of, due) when `due` was last computed exactly (not encoded: None on
    /// decode, as in the Python core).
    pub exact_due: Option<(i64, i64, Option<i64>)>,
    pub policy_version: String,
    /// day -> [orders, net cents], inside the RFM window.
    pub days: Map<i64, [i64; 2]>,
    /// Sums of `days` (not encoded; rebuilt on decode).
    pub win_count: i64,
    pub win_cents: i64,
    pub orders: Map<String, [i64; O_SLOTS]>,
    pub live_orders: i64,
    pub first_order: Option<i64>,
    pub last_order: Option<i64>,
    pub untracked_first: Option<i64>,
    pub untracked_last: Option<i64>,
    pub reactivated_at: Option<i64>,
    /// (day, counts per slot), ascending by day.
    pub idays: Vec<(i64, [i64; I_KINDS])>,
    pub complaints: Map<String, [i64; C_SLOTS]>,
    /// day -> [low, medium, high] complaints opened.
    pub cdays: Map<i64, [i64; 3]>,
    /// [answered_at, nps, csat, ces] (-1 = not answered).
    pub survey: Option<Vec<Num>>,
    pub tier: String,
    pub below_since: Option<i64>,
    pub stage: i64,
    pub band: String,
    pub alerted: bool,
    pub alert_band: String,
    pub last_alert: Option<i64>,
    pub seen: Map<String, i64>,
    pub dedup_floor: Option<i64>,
}

impl State {
    pub fn new(customer_id: &str) -> Self {
        State {
            customer_id: customer_id.to_owned(),
            ..Default::default()
        }
    }

    /// The inverse of `encode`; an error naming the field for bytes of another shape.
    pub fn decode(data: &[u8]) -> Result<State, String> {
        let v: Value = serde_json::from_slice(data).map_err(|e| format!("not JSON: {e}"))?;
        let a = match v.as_array() {
            Some(a) if a.len() == 27 && a[0].as_i64() == Some(FORMAT) => a,
            _ => return Err(format!("not an encoded CustomerState of format {FORMAT}")),
        };
        let days: Map<i64, [i64; 2]> = rows(&a[6], "days")?.into_iter().collect();
        let mut idays: Vec<(i64, [i64; I_KINDS])> = rows(&a[14], "idays")?;
        // States encoded before `idays` was kept sorted may list a late day after later ones.
        idays.sort_unstable();
        Ok(State {
            customer_id: string(&a[1], "customer_id")?,
            as_of: int(&a[2], "as_of")?,
            seq: int(&a[3], "seq")?,
            due: opt(&a[4], "due")?,
            exact_due: None,
            policy_version: string(&a[5], "policy_version")?,
            win_count: days.values().map(|b| b[0]).sum(),
            win_cents: days.values().map(|b| b[1]).sum(),
            days,
            orders: records(&a[7], "orders")?,
            live_orders: int(&a[8], "live_orders")?,
            first_order: opt(&a[9], "first_order")?,
            last_order: opt(&a[10], "last_order")?,
            untracked_first: opt(&a[11], "untracked_first")?,
            untracked_last: opt(&a[12], "untracked_last")?,
            reactivated_at: opt(&a[13], "reactivated_at")?,
            idays,
            complaints: records(&a[15], "complaints")?,
            cdays: rows(&a[16], "cdays")?.into_iter().collect(),
            survey: survey(&a[17])?,
            tier: string(&a[18], "tier")?,
            below_since: opt(&a[19], "below_since")?,
            stage: int(&a[20], "stage")?,
            band: string(&a[21], "band")?,
            alerted: a[22].as_bool().ok_or("alerted: not a boolean")?,
            alert_band: string(&a[23], "alert_band")?,
            last_alert: opt(&a[24], "last_alert")?,
            seen: seen(&a[25])?,
            dedup_floor: opt(&a[26], "dedup_floor")?,
        })
    }

    /// Compact bytes, as orjson writes the Python core's tuple of fields.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(512));
        w.raw(b"[");
        w.int(FORMAT);
        w.sep();
        w.string(&self.customer_id);
        w.sep();
        w.int(self.as_of);
        w.sep();
        w.int(self.seq);
        w.sep();
        w.opt(self.due);
        w.sep();
        w.string(&self.policy_version);
        w.sep();
        w.rows(self.days.iter().map(|(d, b)| (*d, &b[..])));
        w.sep();
        w.records(self.orders.iter().map(|(k, r)| (k.as_str(), &r[..])));
        w.sep();
        w.int(self.live_orders);
        for t in [
            self.first_order,
            self.last_order,
            self.untracked_first,
            self.untracked_last,
            self.reactivated_at,
        ] {
            w.sep();
            w.opt(t);
        }
        w.sep();
        w.rows(self.idays.iter().map(|(d, b)| (*d, &b[..])));
        w.sep();
        w.records(self.complaints.iter().map(|(k, r)| (k.as_str(), &r[..])));
        w.sep();
        w.rows(self.cdays.iter().map(|(d, b)| (*d, &b[..])));
        w.sep();
        match &self.survey {
            None => w.raw(b"null"),
            Some(answers) => {
                w.raw(b"[");
                for (i, n) in answers.iter().enumerate() {
                    if i > 0 {
                        w.sep();
                    }
                    match *n {
                        Num::Int(x) => w.int(x),
                        Num::Float(x) => w.float(x),
                    }
                }
                w.raw(b"]");
            }
        }
        w.sep();
        w.string(&self.tier);
        w.sep();
        w.opt(self.below_since);
        w.sep();
        w.int(self.stage);
        w.sep();
        w.string(&self.band);
        w.sep();
        w.raw(if self.alerted { b"true" } else { b"false" });
        w.sep();
        w.string(&self.alert_band);
        w.sep();
        w.opt(self.last_alert);
        w.sep();
        w.raw(b"{");
        for (i, (k, t)) in self.seen.iter().enumerate() {
            if i > 0 {
                w.sep();
            }
            w.string(k);
            w.raw(b":");
            w.int(*t);
        }
        w.raw(b"}");
        w.sep();
        w.opt(self.dedup_floor);
        w.raw(b"]");
        w.0
    }
}

// ---- decoding helpers: each names the field it refuses ----------------------------------

fn int(v: &Value, key: &str) -> Result<i64, String> {
    v.as_i64().ok_or_else(|| format!("{key}: not an integer"))
}

fn opt(v: &Value, key: &str) -> Result<Option<i64>, String> {
    if v.is_null() {
        Ok(None)
    } else {
        int(v, key).map(Some)
    }
}

fn string(v: &Value, key: &str) -> Result<String, String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{key}: not a string"))
}

fn ints<const N: usize>(v: &[Value], key: &str) -> Result<[i64; N], String> {
    if v.len() != N {
        return Err(format!("{key}: {} numbers, not {N}", v.len()));
    }
    let mut out = [0i64; N];
    for (slot, x) in out.iter_mut().zip(v) {
        *slot = int(x, key)?;
    }
    Ok(out)
}

/// `[[day, n0, n1, ...], ...]` rows in their order.
fn rows<const N: usize>(v: &Value, key: &str) -> Result<Vec<(i64, [i64; N])>, String> {
    let rows = v.as_array().ok_or_else(|| format!("{key}: not a list"))?;
    rows.iter()
        .map(|r| match r.as_array() {
            Some(r) if !r.is_empty() => Ok((int(&r[0], key)?, ints::<N>(&r[1..], key)?)),
            _ => Err(format!("{key}: a row is not a list")),
        })
        .collect()
}

/// `{id: [n0, n1, ...], ...}` in its order.
fn records<const N: usize>(v: &Value, key: &str) -> Result<Map<String, [i64; N]>, String> {
    let map = v
        .as_object()
        .ok_or_else(|| format!("{key}: not an object"))?;
    map.iter()
        .map(|(k, r)| {
            let r = r
                .as_array()
                .ok_or_else(|| format!("{key}: a record is not a list"))?;
            Ok((k.clone(), ints::<N>(r, key)?))
        })
        .collect()
}

fn seen(v: &Value) -> Result<Map<String, i64>, String> {
    let map = v.as_object().ok_or("seen: not an object")?;
    map.iter()
        .map(|(k, t)| Ok((k.clone(), int(t, "seen")?)))
        .collect()
}

fn survey(v: &Value) -> Result<Option<Vec<Num>>, String> {
    if v.is_null() {
        return Ok(None);
    }
    let answers = v.as_array().ok_or("survey: not a list")?;
    answers
        .iter()
        .map(|x| match (x.as_i64(), x.as_f64()) {
            (Some(i), _) => Ok(Num::Int(i)),
            (None, Some(f)) => Ok(Num::Float(f)),
            _ => Err("survey: not a number".to_owned()),
        })
        .collect::<Result<Vec<_>, String>>()
        .map(Some)
}

// ---- encoding: the bytes orjson writes ----------------------------------------------------

struct Writer(Vec<u8>);

impl Writer {
    fn raw(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }

    fn sep(&mut self) {
        self.0.push(b',');
    }

    fn int(&mut self, x: i64) {
        self.raw(itoa::Buffer::new().format(x).as_bytes());
    }

    fn opt(&mut self, x: Option<i64>) {
        match x {
            Some(x) => self.int(x),
            None => self.raw(b"null"),
        }
    }

    /// Shortest round-trip digits, as orjson: a whole number keeps its ".0", and a
    /// positive exponent has its sign (orjson `1e+16`, ryu `1e16`).
    fn float(&mut self, x: f64) {
        if x.is_finite() {
            let mut buffer = ryu::Buffer::new();
            let text = buffer.format_finite(x);
            match text.split_once('e') {
                Some((digits, exp)) if !exp.starts_with('-') => {
                    self.raw(digits.as_bytes());
                    self.raw(b"e+");
                    self.raw(exp.as_bytes());
                }
                _ => self.raw(text.as_bytes()),
            }
        } else {
            self.raw(b"null"); // orjson writes NaN and infinities as null
        }
    }

    /// A JSON string escaped as orjson escapes it: `"`, `\` and the control characters
    /// (the short forms where JSON has them), everything else as UTF-8.
    fn string(&mut self, s: &str) {
        self.0.push(b'"');
        let bytes = s.as_bytes();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0..=0x1f => b"",
                _ => continue,
            };
            self.0.extend_from_slice(&bytes[start..i]);
            if escape.is_empty() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                self.0.extend_from_slice(b"\\u00");
                self.0.push(HEX[(b >> 4) as usize]);
                self.0.push(HEX[(b & 0xf) as usize]);
            } else {
                self.0.extend_from_slice(escape);
            }
            start = i + 1;
        }
        self.0.extend_from_slice(&bytes[start..]);
        self.0.push(b'"');
    }

    fn rows<'a>(&mut self, rows: impl Iterator<Item = (i64, &'a [i64])>) {
        self.raw(b"[");
        for (i, (day, counts)) in rows.enumerate() {
            if i > 0 {
                self.sep();
            }
            self.raw(b"[");
            self.int(day);
            for c in counts {
                self.sep();
                self.int(*c);
            }
            self.raw(b"]");
        }
        self.raw(b"]");
    }

    fn records<'a>(&mut self, records: impl Iterator<Item = (&'a str, &'a [i64])>) {
        self.raw(b"{");
        for (i, (key, slots)) in records.enumerate() {
            if i > 0 {
                self.sep();
            }
            self.string(key);
            self.raw(b":[");
            for (j, c) in slots.iter().enumerate() {
                if j > 0 {
                    self.sep();
                }
                self.int(*c);
            }
            self.raw(b"]");
        }
        self.raw(b"}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_state_round_trips() {
        let s = State::new("c-1");
        let bytes = s.encode();
        assert_eq!(State::decode(&bytes).unwrap(), s);
    }

    #[test]
    fn the_doctest_state_has_the_python_bytes() {
        // streams/core/state.py's doctest: 118 bytes.
        let mut s = State::new("c-1");
        s.days.insert(19800, [1, 12_345]);
        s.win_count = 1;
        s.win_cents = 12_345;
        assert_eq!(s.encode().len(), 118);
        assert_eq!(State::decode(&s.encode()).unwrap(), s);
    }

    #[test]
    fn strings_are_escaped_as_orjson_escapes_them() {
        let s = State::new("a\"b\\c\n\u{1}é");
        let bytes = s.encode();
        assert!(bytes.starts_with(b"[2,\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\","));
    }

    #[test]
    fn a_wrong_shape_names_the_field() {
        let err = State::decode(b"[2,\"c\",\"x\"]").unwrap_err();
        assert!(err.contains("format 2"), "{err}");
        let mut bytes = State::new("c").encode();
        let at = bytes.windows(3).position(|w| w == b",0,").unwrap();
        bytes.splice(at + 1..at + 2, b"\"t\"".iter().copied());
        assert_eq!(State::decode(&bytes).unwrap_err(), "as_of: not an integer");
    }
}
