//! When can a customer's grade next change without a new event? A port of
//! `streams/core/due.py` for policies without a churn model (`Policy::has_model` false:
//! the PyO3 layer refuses the others, and the model's crossings are not ported).
//!
//! Each part lists the instants after `s.as_of` at which one measure may change by the
//! passing of time alone; `next_due_c` is the earliest of them all. The float operations
//! are due.py's, in its order, so the instants are the same to the second.

use crate::churn::{band_of, churn_core, recency_component, score_of, ChurnCore};
use crate::measures::intent_conditions;
use crate::policy::Policy;
use crate::state::{
    Num, State, DAY, I_CALL, I_FULL_PRICE, I_INQUIRY, I_KINDS, I_SITE_STORE, I_TOTAL, I_VISIT,
};
use crate::stepping::engagement_sensitive;

/// `_first_after`: the earliest of `cands` after `t0`.
fn first_after(t0: i64, cands: impl IntoIterator<Item = i64>) -> Option<i64> {
    cands.into_iter().filter(|&x| x > t0).min()
}

/// Recency bin edges and lifecycle thresholds, from the first/last order times.
pub fn order_times_due(s: &State, c: &Policy) -> Option<i64> {
    let last = s.last_order?;
    let t0 = s.as_of;
    // recency_days = (t - last) // DAY passes an edge e when it reaches e + 1.
    let edge = c
        .r_max_days
        .iter()
        .map(|e| last + (e + 1) * DAY)
        .find(|&x| x > t0);
    let cands = [
        edge,
        Some(last + c.silent_s + 1),
        Some(last + c.churned_s + 1),
        s.first_order.map(|first| first + c.new_s + 1),
        s.reactivated_at.map(|react| react + c.reactivated_s + 1),
    ];
    first_after(t0, cands.into_iter().flatten())
}

/// When a day's orders leave the RFM window.
pub fn order_day_due(day: i64, c: &Policy) -> i64 {
    (day + c.window_days) * DAY
}

/// Order times' thresholds and the oldest order day leaving the window.
pub fn orders_due(s: &State, c: &Policy) -> Option<i64> {
    // `first_day` is the smallest day, whatever the map's order.
    let oldest = s.days.keys().min().map(|&day| order_day_due(day, c));
    min_due(order_times_due(s, c), oldest.filter(|&x| x > s.as_of))
}

/// For each intent indicator now at A, the instant it falls back (one per indicator):
/// when the day of its k-th most recent unit (k = what it needs) leaves the window.
fn indicator_falls(s: &State, c: &Policy) -> Vec<i64> {
    let lo = s.as_of.div_euclid(DAY) - c.intent_days;
    let width = c.intent_days;
    let (mut visits, mut calls, mut sites) = (c.repeat_visit_days, c.min_calls, c.min_site_store);
    let (mut asks, mut full) = (c.min_purchase_inquiries, 1);
    let mut falls = Vec::with_capacity(5);
    // Newest day first (`idays` is in ascending day order).
    for (d, b) in s.idays.iter().rev() {
        if *d <= lo {
            break;
        }
        let x = (d + width) * DAY;
        let site = b[I_SITE_STORE];
        if visits > 0 && (b[I_VISIT] != 0 || site != 0) {
            visits -= 1;
            if visits == 0 {
                falls.push(x);
            }
        }
        if sites > 0 && site != 0 {
            sites -= site;
            if sites <= 0 {
                falls.push(x);
            }
        }
        if calls > 0 && b[I_CALL] != 0 {
            calls -= b[I_CALL];
            if calls <= 0 {
                falls.push(x);
            }
        }
        if asks > 0 && b[I_INQUIRY] != 0 {
            asks -= b[I_INQUIRY];
            if asks <= 0 {
                falls.push(x);
            }
        }
        if full > 0 && b[I_FULL_PRICE] != 0 {
            full = 0;
            falls.push(x);
        }
    }
    falls
}

/// Did the interaction just folded into `slot` on `day` bring an intent indicator to A?
///
/// Only then can `intent_grade_due` come earlier: one more unit never makes an indicator
/// already at A fall sooner, so the old due still covers the others. An indicator
/// reaches A with this unit exactly when its count in the window now equals its minimum.
/// False for a day without a bucket or a slot out of range (Python raises there).
pub fn indicator_reached(s: &State, slot: usize, day: i64, c: &Policy) -> bool {
    let idays = &s.idays;
    let Some((_, b)) = idays.iter().find(|(d, _)| *d == day) else {
        return false;
    };
    if slot >= I_KINDS {
        return false;
    }
    let lo = s.as_of.div_euclid(DAY) - c.intent_days;
    let need = if slot == I_VISIT || slot == I_SITE_STORE {
        let need = c.repeat_visit_days;
        if need > 0 && b[I_VISIT] + b[I_SITE_STORE] == 1 {
            // The day's first visit: count visit days, stopping once past the minimum.
            let mut n = 0;
            for (d, x) in idays {
                if *d > lo && (x[I_VISIT] != 0 || x[I_SITE_STORE] != 0) {
                    n += 1;
                    if n > need {
                        break;
                    }
                }
            }
            if n == need {
                return true;
            }
        }
        if slot == I_VISIT {
            return false;
        }
        c.min_site_store
    } else if slot == I_CALL {
        c.min_calls
    } else {
        c.min_purchase_inquiries
    };
    if need <= 0 || b[slot] > need {
        return false;
    }
    let mut n = 0;
    for (d, x) in idays {
        if *d > lo {
            n += x[slot];
            if n > need {
                return false;
            }
        }
    }
    n == need
}

/// Is the price-tolerance indicator at A (the indicator most often missing)?
fn full_price_in_window(s: &State, c: &Policy) -> bool {
    let lo = s.as_of.div_euclid(DAY) - c.intent_days;
    s.idays.iter().any(|(d, b)| b[I_FULL_PRICE] != 0 && *d > lo)
}

/// Recent complaint days leaving the window; the survey answer growing too old.
pub fn complaints_due(s: &State, c: &Policy) -> Option<i64> {
    let days = s.cdays.keys().map(|day| (day + c.complaint_days) * DAY);
    let survey = s.survey.as_ref().and_then(|sv| sv.first()).map(|at| {
        // [0] is the int answer time (a float only in a hand-made state: int() truncates).
        let at = match *at {
            Num::Int(x) => x,
            Num::Float(x) => x as i64,
        };
        at + c.survey_age_s + 1
    });
    first_after(s.as_of, days.chain(survey))
}

/// End of a tier's downgrade grace; end of an alert cooldown holding back a change.
pub fn holds_due(s: &State, c: &Policy) -> Option<i64> {
    let grace = s.below_since.map(|since| since + c.grace_s);
    let cooldown = s.last_alert.filter(|_| {
        // `band_rank.get(s.band, 0)`: a band of another policy ranks as the lowest.
        let rank = c.band_names.iter().position(|n| *n == s.band).unwrap_or(0);
        (rank >= c.alert_band) != s.alerted
    });
    let cooldown = cooldown.map(|last| last + c.cooldown_s);
    first_after(s.as_of, grace.into_iter().chain(cooldown))
}

/// The score that starts the band above `band`, if recency alone can reach it with the
/// other components held at `others`; None when there is no higher band or it is out of
/// reach.
fn recency_target(band: usize, others: f64, c: &Policy) -> Option<f64> {
    let target = *c.band_mins.get(band + 1)?;
    if score_of(1.0, others, c) < target {
        None
    } else {
        Some(target)
    }
}

/// The day (since the last order) at which recency should reach `target`, by inverting
/// the linear overdue ramp; float rounding may put it a day off either way.
fn recency_guess(cad: f64, target: f64, others: f64, now_days: i64, c: &Policy) -> i64 {
    let need = (target - others) / c.w_recency;
    let guess = cad * (c.overdue_start + need * (c.overdue_full - c.overdue_start));
    // `math.ceil` gives the integral float's exact int; `as` is exact for it too (the
    // guess is a few thousand days at most: the target is reachable, the cadence finite).
    (now_days + 1).max(guess.ceil() as i64)
}

/// First instant after `t_from` at which recency alone lifts the score above `band`, the
/// other components, weighted and summed, held at `others`. None: never.
fn recency_cross(
    last: i64,
    cad: f64,
    others: f64,
    band: usize,
    t_from: i64,
    c: &Policy,
) -> Option<i64> {
    let target = recency_target(band, others, c)?;
    let now_days = (t_from - last).div_euclid(DAY);
    let mut d = recency_guess(cad, target, others, now_days, c);
    // Float rounding may put the guess a day off either way: settle on the exact first day.
    while d - 1 > now_days && score_of(recency_component(d - 1, cad, c), others, c) >= target {
        d -= 1;
    }
    while score_of(recency_component(d, cad, c), others, c) < target {
        d += 1;
    }
    Some(last + d * DAY)
}

/// When the time since the last order alone lifts the churn score into the next band.
///
/// The other components are held at their current values, or with `worst_engagement`
/// the engagement term at its maximum (a lower bound of when engagement could matter).
/// `p`: parts already computed at `s.as_of`. With `before` (a due already known), None
/// as soon as the answer is sure to be no earlier than it.
pub fn churn_due(
    s: &State,
    c: &Policy,
    p: Option<&ChurnCore>,
    before: Option<i64>,
    worst_engagement: bool,
) -> Option<i64> {
    debug_assert!(!c.has_model, "the churn model's crossings are not ported");
    let last = s.last_order?;
    if c.w_recency <= 0.0 {
        return None;
    }
    let p = match p {
        Some(p) => *p,
        None => churn_core(s, s.as_of, c, true),
    };
    let band = band_of(score_of(p.recency, p.others, c), c);
    let others = if worst_engagement {
        p.base + c.w_engagement
    } else {
        p.others
    };
    let target = recency_target(band, others, c)?;
    if let Some(before) = before {
        // The 4-place rounding moves the crossing by well under a day for any sane
        // cadence; two days of margin keep the shortcut a true lower bound.
        let d = recency_guess(p.cadence_days, target, others, p.recency_days, c);
        if last + (d - 2) * DAY >= before {
            return None;
        }
    }
    recency_cross(last, p.cadence_days, others, band, s.as_of, c)
}

/// (day, change of recent, change of earlier) at each midnight, in time order, at which
/// an interaction day of the window (`days`, ascending) moves to the earlier half (days
/// after `mid`, `half` days on) or leaves the window (`width` days on). Lazy: the walk
/// mostly stops early.
struct Midnights<'a> {
    days: &'a [(i64, [i64; I_KINDS])],
    half: i64,
    width: i64,
    /// The next day to leave the window.
    i: usize,
    /// The next recent day to move to the earlier half.
    j: usize,
}

impl<'a> Midnights<'a> {
    fn new(days: &'a [(i64, [i64; I_KINDS])], mid: i64, half: i64, width: i64) -> Self {
        // The recent half is the suffix of days after `mid`.
        let j = days.len() - days.iter().rev().take_while(|(d, _)| *d > mid).count();
        Midnights {
            days,
            half,
            width,
            i: 0,
            j,
        }
    }
}

impl Iterator for Midnights<'_> {
    type Item = (i64, i64, i64);

    fn next(&mut self) -> Option<Self::Item> {
        let (days, half, width) = (self.days, self.half, self.width);
        let n_days = days.len();
        if self.i >= n_days {
            return None; // a day leaves after it moved: the leaving ends the walk
        }
        let mut day = days[self.i].0 + width;
        if self.j < n_days && days[self.j].0 + half < day {
            day = days[self.j].0 + half;
        }
        let (mut dr, mut de) = (0, 0);
        while self.j < n_days && days[self.j].0 + half == day {
            let n = days[self.j].1[I_TOTAL];
            dr -= n;
            de += n;
            self.j += 1;
        }
        while self.i < n_days && days[self.i].0 + width == day {
            de -= days[self.i].1[I_TOTAL];
            self.i += 1;
        }
        Some((day, dr, de))
    }
}

/// The first instant after `s.as_of` at which the churn band changes by time alone, from
/// recency and engagement together (complaint and survey expiries are due times of their
/// own, so the other components are held).
///
/// `p`: the exact parts at `s.as_of` (engagement included). Engagement is constant
/// between the midnights at which a day's interactions change half or leave the window;
/// between them only recency moves, and only upwards. So: walk those midnights in order,
/// checking the recency crossing inside each stretch and the band at each midnight. With
/// `before`, gives up (None) once the answer cannot be earlier.
pub fn band_due(s: &State, c: &Policy, p: &ChurnCore, before: Option<i64>) -> Option<i64> {
    debug_assert!(!c.has_model, "the churn model's walk is not ported");
    let t0 = s.as_of;
    let band = band_of(score_of(p.recency, p.others, c), c);
    // The last order, when recency counts at all.
    let last = s.last_order.filter(|_| c.w_recency > 0.0);
    let today = t0.div_euclid(DAY);
    let (half, width) = (c.intent_half_days, c.intent_days);
    let (mid, lo) = (today - half, today - width);
    // The window's days: a suffix, `idays` being kept in ascending day order.
    let window = &s.idays[s.idays.partition_point(|(d, _)| *d <= lo)..];
    let (mut recent, mut earlier) = (0, 0);
    for (d, b) in window {
        if *d > mid {
            recent += b[I_TOTAL];
        } else {
            earlier += b[I_TOTAL];
        }
    }
    let (base, w_e, need_base) = (p.base, c.w_engagement, c.engagement_min_baseline);
    let mut others = p.others;
    let mins = &c.band_mins;
    let target = mins.get(band + 1).copied().unwrap_or(2.0);
    let mut t_from = t0;
    let cad = p.cadence_days;
    // The band holds while floor <= score < target: band_of's test, without the ladder walk.
    let floor = mins[band];
    for (day, dr, de) in Midnights::new(window, mid, half, width) {
        let m = day * DAY;
        if let Some(last) = last {
            // Recency only rises inside the stretch: a crossing before m shows at its end.
            let end = recency_component((m - 1 - last).div_euclid(DAY), cad, c);
            if score_of(end, others, c) >= target {
                return recency_cross(last, cad, others, band, t_from, c);
            }
        }
        if before.is_some_and(|before| m >= before) {
            return None;
        }
        recent += dr;
        earlier += de;
        let eng = if earlier >= need_base && recent < earlier {
            1.0 - recent as f64 / earlier as f64
        } else {
            0.0
        };
        others = if eng > 0.0 { base + w_e * eng } else { base };
        let rec = match last {
            Some(last) => recency_component((m - last).div_euclid(DAY), cad, c),
            None => 0.0,
        };
        let score = score_of(rec, others, c);
        if !(floor <= score && score < target) {
            return Some(m);
        }
        t_from = m;
    }
    recency_cross(last?, cad, others, band, t_from, c)
}

/// When the intent grade falls by time alone: enough indicators now at A falling back to
/// cross the matrix's next threshold (5 and 3 with both conditions at A, 5 with one).
/// The conditions change by time only at order-day and survey expiries, due times of
/// their own.
pub fn intent_grade_due(s: &State, c: &Policy) -> Option<i64> {
    let (ability, satisfaction) = intent_conditions(s, s.as_of, c);
    if !(ability || satisfaction) {
        return None;
    }
    if !(ability && satisfaction || full_price_in_window(s, c)) {
        return None; // only C -> D could be left, and C needs all five indicators
    }
    let mut falls = indicator_falls(s, c);
    let n = falls.len();
    let drop = match (ability && satisfaction, n) {
        (_, 5..) => 1,        // A -> B, or C -> D, at the first fall
        (true, 3..) => n - 2, // B -> C when fewer than 3 remain
        _ => return None,
    };
    falls.sort_unstable();
    Some(falls[drop - 1])
}

/// The earliest instant after `s.as_of` at which the grade may change by time alone.
///
/// `k`: the churn parts at `s.as_of`, if already known (`settle` gives them); they may
/// leave engagement out only when `engagement_sensitive(k)` is false.
pub fn next_due_c(s: &State, c: &Policy, k: Option<&ChurnCore>) -> Option<i64> {
    let k = match k {
        Some(k) => *k,
        None => churn_core(s, s.as_of, c, true),
    };
    let mut best = orders_due(s, c);
    for x in [
        intent_grade_due(s, c),
        complaints_due(s, c),
        holds_due(s, c),
    ] {
        best = min_due(best, x);
    }
    let x = if engagement_sensitive(&k, c) {
        band_due(s, c, &k, best)
    } else {
        churn_due(s, c, Some(&k), best, true)
    };
    min_due(best, x)
}

pub fn min_due(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (None, b) => b,
        (a, None) => a,
        (Some(a), Some(b)) => Some(a.min(b)),
    }
}
