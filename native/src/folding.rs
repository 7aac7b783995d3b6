//! Folding events into the rolling aggregates, and pruning what leaves the windows: a
//! port of `streams/core/folding.py`, operation for operation (its docstrings say why;
//! here a comment marks where the port must differ from a literal reading).
//!
//! The Python core mutates an order or complaint record in place while it sits in its
//! dict; here a record is copied out, changed, and written back where the Python record
//! would be visible to a later read (`sync`), so the two read the same values.

use crate::policy::Policy;
use crate::state::{
    Num, State, C_BILLING, C_ESCALATED, C_OPENED, C_OPEN_SEV, C_RESOLVED, C_SEEN, C_SEVERITY, DAY,
    I_FULL_PRICE, I_KINDS, I_TOTAL, NO_TS, O_ADJ_DAY, O_CANCEL, O_CANCELLED, O_PLACED, O_REFUNDED,
    O_TS,
};

pub const PLACED: i64 = 0;
pub const REFUNDED: i64 = 1;
pub const CANCELLED: i64 = 2;
pub const OPENED: i64 = 0;
pub const ESCALATED: i64 = 1;
pub const RESOLVED: i64 = 2;

/// Python's `//` on ints: floor division.
fn day_of(ts: i64) -> i64 {
    ts.div_euclid(DAY)
}

// --- orders ------------------------------------------------------------------------------

fn contribution(e: &[i64; 6]) -> Option<(i64, i64, i64)> {
    if e[O_TS] != NO_TS {
        if e[O_CANCELLED] != 0 {
            return None;
        }
        return Some((day_of(e[O_TS]), 1, 0.max(e[O_PLACED] - e[O_REFUNDED])));
    }
    let take = e[O_REFUNDED].max(e[O_CANCEL]);
    (take != 0).then_some((e[O_ADJ_DAY], 0, -take))
}

fn bucket_add(s: &mut State, (day, n, cents): (i64, i64, i64), sign: i64, lo: i64) {
    if day <= lo {
        return;
    }
    let b = s.days.entry(day).or_insert([0, 0]);
    b[0] += sign * n;
    b[1] += sign * cents;
    let empty = b[0] == 0 && b[1] == 0;
    s.win_count += sign * n;
    s.win_cents += sign * cents;
    if empty {
        s.days.shift_remove(&day);
    }
}

fn recompute_bounds(s: &mut State) {
    if s.live_orders <= 0 {
        s.live_orders = 0;
        s.first_order = None;
        s.last_order = None;
        s.untracked_first = None;
        s.untracked_last = None;
        s.reactivated_at = None;
        return;
    }
    let tracked = s
        .orders
        .values()
        .filter(|e| e[O_TS] != NO_TS && e[O_CANCELLED] == 0)
        .map(|e| e[O_TS]);
    let times = tracked.chain(s.untracked_first).chain(s.untracked_last);
    let (mut first, mut last) = (None::<i64>, None::<i64>);
    for t in times {
        first = Some(first.map_or(t, |f| f.min(t)));
        last = Some(last.map_or(t, |l| l.max(t)));
    }
    if first.is_some() {
        s.first_order = first;
        s.last_order = last;
    }
}

fn evict_order(s: &mut State) {
    let age = |e: &[i64; 6]| {
        if e[O_TS] != NO_TS {
            e[O_TS]
        } else {
            e[O_ADJ_DAY] * DAY
        }
    };
    // min by (age, id): ids compare as Python's str (code points: UTF-8 byte order).
    let oldest = s
        .orders
        .iter()
        .min_by(|a, b| (age(a.1), a.0).cmp(&(age(b.1), b.0)))
        .map(|(k, _)| k.clone());
    if let Some(oid) = oldest {
        if let Some(e) = s.orders.shift_remove(&oid) {
            untrack(s, &e);
        }
    }
}

fn untrack(s: &mut State, e: &[i64; 6]) {
    let ts = e[O_TS];
    if ts != NO_TS && e[O_CANCELLED] == 0 {
        if s.untracked_first.is_none_or(|f| ts < f) {
            s.untracked_first = Some(ts);
        }
        if s.untracked_last.is_none_or(|l| ts > l) {
            s.untracked_last = Some(ts);
        }
    }
}

/// Write a tracked record back before something reads `s.orders` (the Python record is
/// the dict's own, changed in place).
fn sync(s: &mut State, tracked: bool, order_id: &str, e: &[i64; 6]) {
    if tracked {
        if let Some(r) = s.orders.get_mut(order_id) {
            *r = *e;
        }
    }
}

/// order_placed / order_refunded / order_cancelled (amount already in base cents).
#[allow(clippy::too_many_arguments)]
pub fn fold_order(
    s: &mut State,
    kind: i64,
    order_id: &str,
    ts: i64,
    cents: i64,
    full_price: bool,
    c: &Policy,
) {
    let today = day_of(s.as_of);
    let lo = today - c.window_days;
    let day = day_of(ts);
    let found = s.orders.get(order_id).copied();
    if found.is_none() && kind == PLACED {
        place_new(s, order_id, ts, day, cents, full_price, today, lo, c);
        return;
    }
    let tracked = found.is_some();
    let mut e = found.unwrap_or([NO_TS, 0, 0, 0, day, 0]);
    if tracked {
        if let Some(old) = contribution(&e) {
            bucket_add(s, old, -1, lo);
        }
    }
    if kind == PLACED {
        let old_ts = e[O_TS];
        if old_ts != NO_TS && (ts, cents) > (old_ts, e[O_PLACED]) {
            if full_price && day > today - c.intent_days {
                count_full_price(s, day);
            }
            e[O_TS] = ts;
            e[O_PLACED] = cents;
            if e[O_CANCELLED] == 0 {
                s.live_orders -= 1;
                if s.reactivated_at == Some(old_ts) {
                    s.reactivated_at = None;
                }
                add_live(s, ts, c);
                if Some(old_ts) == s.first_order || Some(old_ts) == s.last_order {
                    sync(s, tracked, order_id, &e);
                    recompute_bounds(s);
                }
            }
        } else if old_ts != NO_TS {
            if full_price && day > today - c.intent_days {
                count_full_price(s, day);
            }
        } else {
            e[O_TS] = ts;
            e[O_PLACED] = cents;
            if full_price && day > today - c.intent_days {
                count_full_price(s, day);
            }
            if e[O_CANCELLED] == 0 {
                add_live(s, ts, c);
            }
        }
    } else if kind == REFUNDED {
        e[O_REFUNDED] += cents;
        e[O_ADJ_DAY] = e[O_ADJ_DAY].min(day);
    } else if e[O_CANCELLED] != 0 {
        e[O_CANCEL] = e[O_CANCEL].max(cents);
        e[O_ADJ_DAY] = e[O_ADJ_DAY].min(day);
    } else {
        e[O_CANCELLED] = 1;
        e[O_CANCEL] = e[O_CANCEL].max(cents);
        e[O_ADJ_DAY] = e[O_ADJ_DAY].min(day);
        if e[O_TS] != NO_TS {
            s.live_orders -= 1;
            if s.reactivated_at == Some(e[O_TS]) {
                s.reactivated_at = None;
            }
            let bound = Some(e[O_TS]) == s.first_order || Some(e[O_TS]) == s.last_order;
            if bound || s.live_orders <= 0 {
                sync(s, tracked, order_id, &e);
                recompute_bounds(s);
            }
        }
    }
    if let Some(new) = contribution(&e) {
        bucket_add(s, new, 1, lo);
    }
    if e[O_TS] != NO_TS && day_of(e[O_TS]) <= lo {
        if tracked {
            s.orders.shift_remove(order_id);
        }
        if e[O_CANCELLED] == 0 && kind == PLACED {
            untrack(s, &e);
        }
        return;
    }
    if tracked {
        sync(s, tracked, order_id, &e);
    } else {
        s.orders.insert(order_id.to_owned(), e);
        if s.orders.len() > c.max_orders {
            evict_order(s);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn place_new(
    s: &mut State,
    order_id: &str,
    ts: i64,
    day: i64,
    cents: i64,
    full_price: bool,
    today: i64,
    lo: i64,
    c: &Policy,
) {
    let e = [ts, cents, 0, 0, day, 0];
    if full_price && day > today - c.intent_days {
        count_full_price(s, day);
    }
    add_live(s, ts, c);
    if day <= lo {
        untrack(s, &e);
        return;
    }
    bucket_add(s, (day, 1, cents), 1, lo);
    s.orders.insert(order_id.to_owned(), e);
    if s.orders.len() > c.max_orders {
        evict_order(s);
    }
}

fn count_full_price(s: &mut State, day: i64) {
    count(&mut s.idays, day, I_FULL_PRICE, 0);
}

fn add_live(s: &mut State, ts: i64, c: &Policy) {
    s.live_orders += 1;
    let Some(last) = s.last_order else {
        s.first_order = Some(ts);
        s.last_order = Some(ts);
        return;
    };
    if ts > last {
        if ts - last > c.silent_s && s.reactivated_at.is_none_or(|r| ts > r) {
            s.reactivated_at = Some(ts);
        }
        s.last_order = Some(ts);
    }
    if s.first_order.is_none_or(|f| ts < f) {
        s.first_order = Some(ts);
    }
}

// --- interactions --------------------------------------------------------------------------

/// Count one interaction; its day if inside the intent window, else None.
pub fn fold_interaction(s: &mut State, slot: usize, ts: i64, c: &Policy) -> Option<i64> {
    let day = day_of(ts);
    let lo = day_of(s.as_of) - c.intent_days;
    if day <= lo {
        return None;
    }
    if count(&mut s.idays, day, slot, 1) {
        drop_days_through(&mut s.idays, lo);
    }
    Some(day)
}

/// One more unit in `slot` of `day`'s bucket (and `total` more interactions); true if the
/// bucket is new. The buckets stay in ascending day order (the Python core appends a new
/// day and sorts again after a late one: the same order).
fn count(idays: &mut Vec<(i64, [i64; I_KINDS])>, day: i64, slot: usize, total: i64) -> bool {
    let (at, new) = match idays.binary_search_by_key(&day, |b| b.0) {
        Ok(at) => (at, false),
        Err(at) => {
            idays.insert(at, (day, [0; I_KINDS]));
            (at, true)
        }
    };
    let b = &mut idays[at].1;
    b[slot] += 1;
    b[I_TOTAL] += total;
    new
}

/// Forget the interaction days at or before `lo`.
pub fn drop_days_through(idays: &mut Vec<(i64, [i64; I_KINDS])>, lo: i64) {
    let stale = idays.partition_point(|b| b.0 <= lo);
    if stale > 0 {
        idays.drain(..stale);
    }
}

/// Python's comparison of two numbers (an int and a float compare by value; the answers
/// are small, exact in an f64).
fn num_cmp(a: Num, b: Num) -> std::cmp::Ordering {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        _ => {
            let f = |n: Num| match n {
                Num::Int(x) => x as f64,
                Num::Float(x) => x,
            };
            f(a).partial_cmp(&f(b)).unwrap_or(std::cmp::Ordering::Equal)
        }
    }
}

/// Keep the latest answer (ties broken by value); -1 = absent.
pub fn fold_survey(s: &mut State, ts: i64, nps: Num, csat: Num, ces: Num) {
    let new = vec![Num::Int(ts), nps, csat, ces];
    let later = match &s.survey {
        None => true,
        // Python's list comparison: the first unequal item decides, else the longer.
        Some(old) => new
            .iter()
            .zip(old)
            .map(|(a, b)| num_cmp(*a, *b))
            .find(|o| o.is_ne())
            .unwrap_or(new.len().cmp(&old.len()))
            .is_gt(),
    };
    if later {
        s.survey = Some(new);
    }
}

pub fn move_to(s: &mut State, t: i64) {
    s.as_of = t;
}

// --- complaints ----------------------------------------------------------------------------

pub fn fold_complaint(
    s: &mut State,
    kind: i64,
    complaint_id: &str,
    ts: i64,
    severity: i64,
    billing: bool,
    c: &Policy,
) {
    let billing = i64::from(billing);
    let mut r = *s
        .complaints
        .entry(complaint_id.to_owned())
        .or_insert([NO_TS, severity, billing, 0, 0, ts, -1]);
    r[C_SEVERITY] = r[C_SEVERITY].max(severity);
    r[C_BILLING] = r[C_BILLING].max(billing);
    r[C_SEEN] = r[C_SEEN].max(ts);
    if kind == OPENED {
        let (old_ts, old_sev) = (r[C_OPENED], r[C_OPEN_SEV]);
        if old_ts == NO_TS || ts < old_ts || severity > old_sev {
            let lo = day_of(s.as_of) - c.complaint_days;
            if old_ts != NO_TS {
                let old_day = day_of(old_ts);
                if let Some(b) = s.cdays.get_mut(&old_day) {
                    // old_sev is a severity index here (the bucket counted it).
                    let i = old_sev as usize;
                    if b[i] > 0 {
                        b[i] -= 1;
                        if b.iter().all(|&n| n == 0) {
                            s.cdays.shift_remove(&old_day);
                        }
                    }
                }
            }
            r[C_OPENED] = if old_ts == NO_TS { ts } else { ts.min(old_ts) };
            r[C_OPEN_SEV] = severity.max(old_sev);
            let day = day_of(r[C_OPENED]);
            if day > lo {
                s.cdays.entry(day).or_insert([0, 0, 0])[r[C_OPEN_SEV] as usize] += 1;
            }
        }
    } else if kind == ESCALATED {
        r[C_ESCALATED] = 1;
    } else {
        r[C_RESOLVED] = 1;
    }
    s.complaints.insert(complaint_id.to_owned(), r);
    if s.complaints.len() > c.max_complaints {
        // Resolved first (Python's `not resolved`: False sorts first), then the oldest seen.
        let key = |(k, r): (&String, &[i64; 7])| (r[C_RESOLVED] == 0, r[C_SEEN], k.clone());
        let gone = s
            .complaints
            .iter()
            .min_by_key(|item| key(*item))
            .map(|(k, _)| k.clone());
        if let Some(cid) = gone {
            s.complaints.shift_remove(&cid);
        }
    }
}

/// Open: neither resolved nor only ever seen as a resolution (opened, or escalated).
pub fn is_open(r: &[i64; 7]) -> bool {
    r[C_RESOLVED] == 0 && (r[C_OPENED] != NO_TS || r[C_ESCALATED] != 0)
}

// --- pruning -------------------------------------------------------------------------------

/// Drop what left the windows as of `s.as_of` and refresh the cached sums.
pub fn prune(s: &mut State, c: &Policy) {
    let today = day_of(s.as_of);
    let lo = today - c.window_days;
    if !s.days.is_empty() {
        let stale: Vec<i64> = s.days.keys().copied().filter(|&d| d <= lo).collect();
        for day in stale {
            if let Some(b) = s.days.shift_remove(&day) {
                s.win_count -= b[0];
                s.win_cents -= b[1];
            }
        }
    }
    if !s.orders.is_empty() {
        let day = |e: &[i64; 6]| {
            if e[O_TS] != NO_TS {
                day_of(e[O_TS])
            } else {
                e[O_ADJ_DAY]
            }
        };
        let stale: Vec<String> = s
            .orders
            .iter()
            .filter(|(_, e)| day(e) <= lo)
            .map(|(k, _)| k.clone())
            .collect();
        for oid in stale {
            if let Some(e) = s.orders.shift_remove(&oid) {
                untrack(s, &e);
            }
        }
    }
    drop_days_through(&mut s.idays, today - c.intent_days);
    let clo = today - c.complaint_days;
    s.cdays.retain(|&d, _| d > clo);
    let floor = s.as_of - c.lateness_s;
    s.complaints
        .retain(|_, r| !(r[C_RESOLVED] != 0 && r[C_SEEN] < floor));
    s.seen.retain(|_, t| *t >= floor);
}

// --- de-duplication ----------------------------------------------------------------------

/// Remember an event id (`engine._remember`); at the cap, forget the oldest half and raise
/// the floor past them, so that a forgotten id can never be applied twice.
pub fn remember(s: &mut State, event_id: &str, ts: i64, c: &Policy) {
    s.seen.insert(event_id.to_owned(), ts);
    let floor = s.as_of - c.lateness_s;
    // Insertion order is roughly time order: when the first id is stale, sweep them all.
    let stale = s.seen.len() > c.dedup_max || s.seen.values().next().is_some_and(|&t| t < floor);
    if stale {
        s.seen.retain(|_, t| *t >= floor);
    }
    if s.seen.len() <= c.dedup_max {
        return;
    }
    let mut items: Vec<(i64, String)> = s.seen.iter().map(|(k, t)| (*t, k.clone())).collect();
    items.sort_unstable();
    let cut = items[items.len() / 2 - 1].0;
    for (t, k) in &items {
        if *t > cut {
            break;
        }
        s.seen.shift_remove(k);
    }
    if s.dedup_floor.is_none_or(|f| cut + 1 > f) {
        s.dedup_floor = Some(cut + 1);
    }
}
