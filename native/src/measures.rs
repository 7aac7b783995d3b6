//! The measures grades are made of: a port of the first part of
//! `streams/core/measures.py` (RFM, segment, qualifying tier, lifecycle, value class,
//! surveys, intent). Its docstrings say what each means; product.md says why.

use crate::folding::is_open;
use crate::policy::Policy;
use crate::state::{
    Num, State, C_BILLING, C_SEVERITY, DAY, I_CALL, I_FULL_PRICE, I_INQUIRY, I_SITE_STORE, I_VISIT,
    NO_TS, O_CANCELLED, O_PLACED, O_REFUNDED, O_TS,
};

pub const PROSPECT: i64 = 0;
pub const NEW: i64 = 1;
pub const ACTIVE: i64 = 2;
pub const REACTIVATED: i64 = 3;
pub const SILENT: i64 = 4;
pub const CHURNED: i64 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rfm {
    pub recency_days: Option<i64>,
    pub frequency: i64,
    pub cents: i64,
    pub r: i64,
    pub f: i64,
    pub m: i64,
}

/// Scores are 1..n+1 (higher is better); 0 = no order (r) or none in the window (f, m).
pub fn rfm(s: &State, t: i64, c: &Policy) -> Rfm {
    let (rd, r) = match s.last_order {
        None => (None, 0),
        Some(last) => {
            let rd = (t - last).div_euclid(DAY);
            let edges = &c.r_max_days;
            let r = edges
                .iter()
                .position(|&edge| rd <= edge)
                .map_or(1, |i| edges.len() as i64 + 1 - i as i64);
            (Some(rd), r)
        }
    };
    let n = s.win_count;
    let f = if n <= 0 {
        0
    } else {
        1 + c.f_min.iter().filter(|&&x| n >= x).count() as i64
    };
    let cents = s.win_cents.max(0);
    // Thresholds are floats (units times cents): Python compares the int exactly, as does
    // an f64 for any amount below 2^53 cents.
    let m = if cents <= 0 {
        0
    } else {
        1 + c.m_min_cents.iter().filter(|&&x| cents as f64 >= x).count() as i64
    };
    Rfm {
        recency_days: rd,
        frequency: n.max(0),
        cents,
        r,
        f,
        m,
    }
}

pub fn segment(r: i64, f: i64, m: i64, c: &Policy) -> &str {
    for (name, r0, r1, f0, f1, m0, m1) in &c.segments {
        if (*r0..=*r1).contains(&r) && (*f0..=*f1).contains(&f) && (*m0..=*m1).contains(&m) {
            return name;
        }
    }
    // Unreachable: the policy check proves the rules cover all codes.
    c.segments.last().map_or("", |s| s.0.as_str())
}

/// Largest net amount of one tracked, live order in the window (cents).
pub fn max_single_order(s: &State) -> i64 {
    s.orders
        .values()
        .filter(|e| e[O_TS] != NO_TS && e[O_CANCELLED] == 0)
        .map(|e| e[O_PLACED] - e[O_REFUNDED])
        .fold(0, i64::max)
}

/// Index of the highest rung whose conditions the window's orders meet now.
pub fn qualifying_tier(s: &State, c: &Policy) -> usize {
    let (cents, n) = (s.win_cents, s.win_count);
    for i in (1..c.tier_rules.len()).rev() {
        let (spend, orders, single) = c.tier_rules[i];
        if spend.is_some_and(|x| cents >= x) || orders.is_some_and(|x| n >= x) {
            return i;
        }
        if let Some(single) = single {
            if n >= 1 && cents >= single && max_single_order(s) >= single {
                return i;
            }
        }
    }
    0
}

/// Index into LIFECYCLE_STAGES; precedence: prospect, new, reactivated, churned, silent.
pub fn lifecycle(s: &State, t: i64, c: &Policy) -> i64 {
    let (Some(first), Some(last)) = (s.first_order, s.last_order) else {
        return PROSPECT;
    };
    if s.live_orders <= 0 {
        return PROSPECT;
    }
    if t - first <= c.new_s {
        return NEW;
    }
    if s.reactivated_at.is_some_and(|r| t - r <= c.reactivated_s) {
        return REACTIVATED;
    }
    let gap = t - last;
    if gap > c.churned_s {
        CHURNED
    } else if gap > c.silent_s {
        SILENT
    } else {
        ACTIVE
    }
}

pub fn value_class(cents: i64, c: &Policy) -> &'static str {
    if cents >= c.value_a_cents {
        "A"
    } else if cents >= c.value_b_cents {
        "B"
    } else {
        "C"
    }
}

/// A survey answer as a number (int or float, compared by value as Python does).
fn value(n: Num) -> f64 {
    match n {
        Num::Int(x) => x as f64,
        Num::Float(x) => x,
    }
}

/// (NPS detractor, low CSAT, high effort) of the latest answer, if recent enough.
pub fn poor_survey(s: &State, t: i64, c: &Policy) -> (bool, bool, bool) {
    let Some(sv) = &s.survey else {
        return (false, false, false);
    };
    let answered = match sv[0] {
        Num::Int(x) => x,
        Num::Float(x) => x as i64, // never: the time is an int
    };
    if t - answered > c.survey_age_s {
        return (false, false, false);
    }
    let (nps, csat, ces) = (value(sv[1]), value(sv[2]), value(sv[3]));
    (
        0.0 <= nps && nps <= c.nps_detractor_max as f64,
        0.0 < csat && csat <= c.csat_low_max as f64,
        ces >= c.ces_high_min as f64,
    )
}

pub fn survey_is_poor(s: &State, t: i64, c: &Policy) -> bool {
    let (a, b, d) = poor_survey(s, t, c);
    a || b || d
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    pub grade: &'static str,
    pub ability: bool,
    pub satisfaction: bool,
    pub indicators: [bool; 5],
}

/// (ability to pay, satisfaction) at `t`.
pub fn intent_conditions(s: &State, t: i64, c: &Policy) -> (bool, bool) {
    let (mut billing_open, mut worst_open) = (false, -1);
    for r in s.complaints.values() {
        if is_open(r) {
            worst_open = worst_open.max(r[C_SEVERITY]);
            billing_open |= r[C_BILLING] != 0;
        }
    }
    let ability = s.win_cents.max(0) >= c.ability_min_cents && !billing_open;
    let satisfaction = worst_open <= c.satisfied_max_severity && !survey_is_poor(s, t, c);
    (ability, satisfaction)
}

/// Two conditions and five indicators -> A..E (product.md §2; docs/grading.md).
pub fn intent(s: &State, t: i64, c: &Policy) -> Intent {
    let (ability, satisfaction) = intent_conditions(s, t, c);
    let lo = t.div_euclid(DAY) - c.intent_days;
    let (mut visit_days, mut calls, mut site_store, mut inquiries, mut full_price) =
        (0, 0, 0, 0, 0);
    for (_, b) in s.idays.iter().filter(|(day, _)| *day > lo) {
        if b[I_VISIT] != 0 || b[I_SITE_STORE] != 0 {
            visit_days += 1;
        }
        calls += b[I_CALL];
        site_store += b[I_SITE_STORE];
        inquiries += b[I_INQUIRY];
        full_price += b[I_FULL_PRICE];
    }
    let ind = [
        visit_days >= c.repeat_visit_days,
        calls >= c.min_calls,
        site_store >= c.min_site_store,
        inquiries >= c.min_purchase_inquiries,
        full_price >= 1,
    ];
    let n = ind.iter().filter(|&&x| x).count();
    Intent {
        grade: intent_grade(ability, satisfaction, n),
        ability,
        satisfaction,
        indicators: ind,
    }
}

/// The A-E matrix.
pub fn intent_grade(ability: bool, satisfaction: bool, indicators_a: usize) -> &'static str {
    match (ability, satisfaction) {
        (true, true) if indicators_a >= 5 => "A",
        (true, true) if indicators_a >= 3 => "B",
        (true, true) => "C",
        (true, false) | (false, true) if indicators_a >= 5 => "C",
        (true, false) | (false, true) => "D",
        (false, false) => "E",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_intent_matrix() {
        let g: Vec<_> = (0..6).map(|n| intent_grade(true, true, n)).collect();
        assert_eq!(g, ["C", "C", "C", "B", "B", "A"]);
        assert_eq!(intent_grade(true, false, 4), "D");
        assert_eq!(intent_grade(false, true, 5), "C");
        assert_eq!(intent_grade(false, false, 5), "E");
    }
}
