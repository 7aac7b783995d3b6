//! The churn score's hot path: a port of `measures.churn_core` (without a churn model),
//! `complaint_weights`, `engagement_component`, `round4`, `score_of` and `band_of`. The
//! float operations are the Python core's, in its order (an f64 op is the same IEEE op
//! as a Python float op; int / int is Python's true division, exact below 2^53), so the
//! scores are the same to the last bit.

use crate::folding::is_open;
use crate::measures::{poor_survey, survey_is_poor};
use crate::policy::Policy;
use crate::state::{Num, State, C_SEVERITY, DAY, I_TOTAL};

/// The churn facts: recency component, the other components weighted and summed, whole
/// days since the last order, cadence in days, `others` without engagement, engagement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChurnCore {
    pub recency: f64,
    pub others: f64,
    pub recency_days: i64,
    pub cadence_days: f64,
    pub base: f64,
    pub engagement: f64,
}

pub fn complaint_weights(s: &State, t: i64, c: &Policy) -> (f64, f64) {
    let (mut open_w, mut recent_w) = (0.0, 0.0);
    for r in s.complaints.values() {
        if is_open(r) {
            open_w += c.open_weights[r[C_SEVERITY] as usize];
        }
    }
    let lo = t.div_euclid(DAY) - c.complaint_days;
    let rw = &c.recent_weights;
    for (day, b) in &s.cdays {
        if *day > lo {
            recent_w += b[0] as f64 * rw[0] + b[1] as f64 * rw[1] + b[2] as f64 * rw[2];
        }
    }
    (open_w, recent_w)
}

/// Interactions in the recent and the earlier half of the intent window at `t`.
pub fn engagement_counts(s: &State, t: i64, c: &Policy) -> (i64, i64) {
    let today = t.div_euclid(DAY);
    let (mid, lo) = (today - c.intent_half_days, today - c.intent_days);
    let (mut recent, mut earlier) = (0, 0);
    for (day, b) in &s.idays {
        if *day > mid {
            recent += b[I_TOTAL];
        } else if *day > lo {
            earlier += b[I_TOTAL];
        }
    }
    (recent, earlier)
}

/// 1 - recent/earlier when engagement fell from a baseline, else 0.
pub fn engagement_component(s: &State, t: i64, c: &Policy) -> f64 {
    if s.idays.is_empty() {
        return 0.0;
    }
    let (recent, earlier) = engagement_counts(s, t, c);
    if earlier >= c.engagement_min_baseline && recent < earlier {
        1.0 - recent as f64 / earlier as f64
    } else {
        0.0
    }
}

/// `measures.add_engagement` without a model: the others with engagement `eng` in [0, 1].
pub fn add_engagement(base: f64, eng: f64, c: &Policy) -> f64 {
    if eng <= 0.0 {
        base
    } else {
        base + c.w_engagement * eng
    }
}

/// `measures.with_engagement`: parts computed without engagement, completed with it.
pub fn with_engagement(k: &ChurnCore, s: &State, t: i64, c: &Policy) -> ChurnCore {
    let eng = engagement_component(s, t, c);
    ChurnCore {
        others: add_engagement(k.base, eng, c),
        engagement: eng,
        ..*k
    }
}

/// `measures.recency_component`: the overdue ramp, clamped to [0, 1] by Python's
/// conditional. Not `f64::clamp`: that keeps a -0.0, which the
/// conditional turns into 0.0 (NaN stays NaN either way).
#[allow(clippy::manual_clamp)]
pub fn recency_component(days: i64, cadence: f64, c: &Policy) -> f64 {
    let ratio = days as f64 / cadence;
    let x = (ratio - c.overdue_start) / (c.overdue_full - c.overdue_start);
    if x <= 0.0 {
        0.0
    } else if x >= 1.0 {
        1.0
    } else {
        x
    }
}

/// Without `engagement`, its term is left out (0). Policies with a churn model are not
/// ported yet: the caller checks `has_model`.
pub fn churn_core(s: &State, t: i64, c: &Policy, engagement: bool) -> ChurnCore {
    let (rec, days, cad) = match s.last_order {
        None => (0.0, 0, 0.0),
        Some(last) => {
            let days = (t - last).div_euclid(DAY);
            let n = s.live_orders;
            let cad = match s.first_order {
                Some(first) if n >= 2 => {
                    let cad = (last - first) as f64 / DAY as f64 / (n - 1) as f64;
                    if cad < c.cadence_min_days {
                        c.cadence_min_days
                    } else {
                        cad
                    }
                }
                _ => c.cadence_default_days,
            };
            (recency_component(days, cad, c), days, cad)
        }
    };
    let mut others = 0.0;
    if !s.complaints.is_empty() || !s.cdays.is_empty() {
        let (open_w, recent_w) = complaint_weights(s, t, c);
        others += c.w_complaints * py_min(1.0, open_w + recent_w);
    }
    if survey_is_poor(s, t, c) {
        others += c.w_surveys * 1.0;
    }
    let base = others;
    let eng = if engagement {
        engagement_component(s, t, c)
    } else {
        0.0
    };
    if eng > 0.0 {
        others += c.w_engagement * eng;
    }
    ChurnCore {
        recency: rec,
        others,
        recency_days: days,
        cadence_days: cad,
        base,
        engagement: eng,
    }
}

/// Python's `min(a, b)`: `a` unless `b` is smaller.
fn py_min(a: f64, b: f64) -> f64 {
    if b < a {
        b
    } else {
        a
    }
}

/// Python's `round(x, places)`: the correctly rounded text of the exact binary value
/// (ties to even), read back. Rust's `{:.N}` formats the exact value the same way.
pub fn py_round(x: f64, places: usize) -> f64 {
    if !x.is_finite() {
        return x;
    }
    // "-0.0000" reads back as -0.0: round keeps the sign of a zero result too.
    format!("{x:.places$}").parse().unwrap_or(x)
}

/// `round(x, 4)`, the slow way (`round4` takes the fast one where it is safe).
pub fn py_round4(x: f64) -> f64 {
    py_round(x, 4)
}

/// `measures.round4`: round(x, 4) bit for bit, the fast way where it is safe.
pub fn round4(x: f64) -> f64 {
    if 0.0 < x && x <= 1.0 {
        let y = x * 10_000.0;
        let n = y.floor();
        let frac = y - n;
        if frac < 0.4999999 {
            return n / 10_000.0;
        }
        if frac > 0.5000001 {
            return (n + 1.0) / 10_000.0;
        }
    } else if x == 0.0 {
        return x;
    }
    py_round4(x)
}

/// Rounded to 4 places: the band is decided on the score the outputs show.
pub fn score_of(recency: f64, others: f64, c: &Policy) -> f64 {
    let raw = c.w_recency * recency + others;
    round4(if raw < 1.0 { raw } else { 1.0 })
}

pub fn band_of(score: f64, c: &Policy) -> usize {
    let mut i = c.band_mins.len() - 1;
    while score < c.band_mins[i] {
        i -= 1;
    }
    i
}

/// (score, band index), without reasons.
pub fn churn_score(s: &State, t: i64, c: &Policy) -> (f64, usize) {
    let k = churn_core(s, t, c, true);
    let score = score_of(k.recency, k.others, c);
    (score, band_of(score, c))
}

/// The parts `churn_reasons` quotes (`measures.churn_parts`): components in [0, 1] and
/// the facts behind them.
struct Parts {
    recency: f64,
    complaints: f64,
    surveys: f64,
    engagement: f64,
    recency_days: i64,
    cadence_days: f64,
    open_weight: f64,
    recent_weight: f64,
}

fn parts(s: &State, t: i64, c: &Policy) -> Parts {
    let (rec, days, cad) = match s.last_order {
        None => (0.0, 0, 0.0),
        Some(last) => {
            let days = (t - last).div_euclid(DAY);
            // `cadence_days`: max(cadence_min_days, gap), the first when equal.
            let cad = match s.first_order {
                Some(first) if s.live_orders >= 2 => {
                    let gap = (last - first) as f64 / DAY as f64 / (s.live_orders - 1) as f64;
                    if gap > c.cadence_min_days {
                        gap
                    } else {
                        c.cadence_min_days
                    }
                }
                _ => c.cadence_default_days,
            };
            (recency_component(days, cad, c), days, cad)
        }
    };
    let (open_w, recent_w, comp) = if !s.complaints.is_empty() || !s.cdays.is_empty() {
        let (o, r) = complaint_weights(s, t, c);
        (o, r, py_min(1.0, o + r))
    } else {
        (0.0, 0.0, 0.0)
    };
    Parts {
        recency: rec,
        complaints: comp,
        surveys: if survey_is_poor(s, t, c) { 1.0 } else { 0.0 },
        engagement: engagement_component(s, t, c),
        recency_days: days,
        cadence_days: cad,
        open_weight: open_w,
        recent_weight: recent_w,
    }
}

/// Python's `str()` of a survey answer as the event carried it: an int, or a float's
/// shortest repr (`3.0`, `9.5`; exponents as Python writes them, `1e+16`, `1e-05`).
pub fn py_str(n: Num) -> String {
    match n {
        Num::Int(x) => x.to_string(),
        Num::Float(x) => py_repr(x),
    }
}

fn py_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    // ryu gives the shortest digits; Python uses plain notation for 1e-4 <= |x| < 1e16.
    let a = x.abs();
    if a == 0.0 || (1e-4..1e16).contains(&a) {
        let text = format!("{x}");
        return if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        };
    }
    let sci = format!("{x:e}"); // "1.5e-7", "1e16"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

/// Each non-zero component as (code, message), largest weighted contribution first
/// (`measures.churn_reasons`, without a churn model).
pub fn churn_reasons(s: &State, t: i64, c: &Policy) -> Vec<(&'static str, String)> {
    let p = parts(s, t, c);
    let mut found: Vec<(f64, u8, &'static str, String)> = Vec::new();
    if p.recency > 0.0 {
        found.push((
            c.w_recency * p.recency,
            0,
            "overdue",
            format!(
                "No order for {} days, {:.1}x this customer's usual gap of {:.0} days",
                p.recency_days,
                p.recency_days as f64 / p.cadence_days,
                p.cadence_days
            ),
        ));
    }
    if p.complaints > 0.0 {
        let w = c.w_complaints * p.complaints;
        let open: Vec<&[i64; 7]> = s.complaints.values().filter(|r| is_open(r)).collect();
        if p.open_weight > 0.0 {
            let worst = open.iter().map(|r| r[C_SEVERITY]).max().unwrap_or(0);
            let sev = ["low", "medium", "high"][worst as usize];
            let n = open.len();
            let msg = format!("{n} open complaint(s), the worst of {sev} severity");
            found.push((w, 1, "open_complaints", msg));
        }
        if p.recent_weight > 0.0 {
            let lo = t.div_euclid(DAY) - c.complaint_days;
            let n: i64 = s
                .cdays
                .iter()
                .filter(|(d, _)| **d > lo)
                .map(|(_, b)| b.iter().sum::<i64>())
                .sum();
            let days = c.complaint_days;
            let msg = format!("{n} complaint(s) opened in the last {days} days");
            found.push((w, 2, "recent_complaints", msg));
        }
    }
    if let (true, Some(sv)) = (p.surveys > 0.0, &s.survey) {
        let w = c.w_surveys * p.surveys;
        let (detractor, low_csat, effort) = poor_survey(s, t, c);
        let (nps, csat, ces) = (py_str(sv[1]), py_str(sv[2]), py_str(sv[3]));
        if detractor {
            let msg = format!("Latest NPS answer is {nps} (a detractor)");
            found.push((w, 3, "nps_detractor", msg));
        }
        if low_csat {
            let msg = format!("Latest satisfaction (CSAT) answer is {csat} of 5");
            found.push((w, 4, "low_csat", msg));
        }
        if effort {
            found.push((
                w,
                5,
                "high_effort",
                format!("Latest effort (CES) answer is {ces} of 7"),
            ));
        }
    }
    if p.engagement > 0.0 {
        let (recent, earlier) = engagement_counts(s, t, c);
        let (half, rest) = (c.intent_half_days, c.intent_days - c.intent_half_days);
        let msg = format!(
            "{recent} interactions in the last {half} days against {earlier} in the {rest} days before"
        );
        found.push((c.w_engagement * p.engagement, 6, "falling_engagement", msg));
    }
    // Python's stable sort on (-weight, rank).
    found.sort_by(|a, b| {
        (-a.0)
            .partial_cmp(&-b.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.1.cmp(&b.1))
    });
    found
        .into_iter()
        .map(|(_, _, code, msg)| (code, msg))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round4_as_python() {
        // Values from tests/core/test_round4.py's doctest, and an exact tie (1/32).
        assert_eq!(round4(0.123449999), 0.1234);
        assert_eq!(round4(1.0), 1.0);
        assert_eq!(round4(0.00005), 0.0001);
        assert!(round4(-1e-17) == 0.0 && round4(-1e-17).is_sign_negative());
        assert_eq!(py_round4(0.03125), 0.0312);
        assert_eq!(py_round4(0.09375), 0.0938);
    }

    #[test]
    fn floats_print_as_python_prints_them() {
        let cases = [
            (3.0, "3.0"),
            (9.5, "9.5"),
            (-0.0, "-0.0"),
            (1e16, "1e+16"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (123456789012345.6, "123456789012345.6"),
        ];
        for (x, want) in cases {
            assert_eq!(py_repr(x), want, "{x}");
        }
    }
}
