"""Churn risk: the parts, the score they give, bands, reasons, alerts and their cooldown."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.engine import advance, apply, new_state, snapshot
from streams.core.grading import grade
from streams.core.policy import Policy, load_policy, policy_from_dict
from streams.core.timefmt import parse_rfc3339
from tests.core.builders import DAY, T0, Event, at, complaint, interaction, order, run


def _codes(g: dict[str, object]) -> list[str]:
    churn = g["churn"]
    assert isinstance(churn, dict)
    return [r["code"] for r in churn["reasons"]]


def _alerts(out: list[Event]) -> list[tuple[str, str, str, str, str, str]]:
    return [
        (
            o["previous_band"],
            o["band_before"],
            o["band"],
            o["alert"],
            o["occurred_at"],
            o["cause"]["kind"],
        )
        for o in out
        if o["type"] == "churn_risk_changed"
    ]


def silence(days: int, orders: int = 1) -> float:
    """The default policy's silence part: 0.75 (d + 60) / (d + 60 + 120 n^0.2)."""
    scale: float = 120 * float(orders) ** 0.2
    return 0.75 * (days + 60) / (days + 60 + scale)


def noisy_or(*parts: float) -> float:
    keep = 1.0
    for p in parts:
        keep *= 1.0 - p
    return 1.0 - keep


def complaints(weight: float) -> float:
    """The default policy's complaints part: 0.8 w^4 / (w^4 + 5^4)."""
    return 0.8 * weight**4 / (weight**4 + 5.0**4)


# --- silence ------------------------------------------------------------------------------


def test_silence_rises_every_day_and_never_saturates(policy: Policy) -> None:
    s, _ = run([order("e1", T0, 100)], policy)
    days = [0, 1, 30, 60, 90, 180, 365, 730, 1500, 3000]
    scores = [grade(s, T0 + d * DAY, policy)["churn"]["score"] for d in days]
    assert scores == [round(silence(d), 4) for d in days]
    assert scores == sorted(set(scores))  # strictly rising: no plateau ties customers
    assert scores[3] == 0.375  # one half of the weight after 60 days for one order
    assert scores[-1] < 0.75  # silence alone never reaches critical
    g = grade(s, T0 + 200 * DAY, policy)
    assert g["churn"]["reasons"] == [
        {"code": "recency", "message": "Last order 200 days ago, 1 order in all"}
    ]


def test_at_the_same_silence_fewer_orders_rank_higher(policy: Policy) -> None:
    scores = []
    for n in (1, 2, 5, 20):
        s, _ = run([order(f"e{i}", T0 + i * DAY, 100) for i in range(n)], policy)
        last = T0 + (n - 1) * DAY
        scores.append(grade(s, last + 100 * DAY, policy)["churn"]["score"])
        assert scores[-1] == round(silence(100, n), 4)
    assert scores == sorted(scores, reverse=True)
    assert len(set(scores)) == 4


# --- complaints ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "weight"),
    [("low", 0.2 + 0.05), ("medium", 0.5 + 0.1), ("high", 1.0 + 0.2)],  # open + recent
)
def test_an_open_complaint_by_severity(policy: Policy, severity: str, weight: float) -> None:
    s, _ = run(
        [order("e1", T0, 100), complaint("k1", T0, "complaint_opened", "K", severity)], policy
    )
    g = snapshot(s, policy)
    assert g["churn"]["score"] == round(noisy_or(silence(0), complaints(weight)), 4)
    assert _codes(g) == ["recency", "open_complaints", "recent_complaints"]


def test_every_further_complaint_raises_the_score(policy: Policy) -> None:
    scores = []
    for n in range(1, 9):
        evs = [
            complaint(f"k{i}", T0 + i * 60, "complaint_opened", f"K{i}", "high") for i in range(n)
        ]
        s, _ = run(evs, policy)
        scores.append(snapshot(s, policy)["churn"]["score"])
        assert scores[-1] == round(complaints(1.2 * n), 4)
    assert scores == sorted(set(scores))
    assert scores[3] < 0.5 <= scores[4]  # five open high complaints alert by themselves


def test_resolved_complaint_still_counts_as_recent_for_90_days(policy: Policy) -> None:
    s, _ = run(
        [
            order("e1", T0, 100),
            complaint("k1", T0, "complaint_opened", "K", "high"),
            complaint("k2", T0 + DAY, "complaint_resolved", "K", "high"),
        ],
        policy,
    )
    assert _codes(snapshot(s, policy)) == ["recency", "recent_complaints"]
    assert _codes(grade(s, T0 + 90 * DAY, policy)) == ["recency"]


# --- surveys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "codes", "poor"),
    [
        ({"nps": 6}, ["nps_detractor"], (1 / 7) ** 2),
        ({"nps": 0}, ["nps_detractor"], 1.0),
        ({"nps": 7}, [], 0.0),
        ({"csat": 2}, ["low_csat"], 0.5**2),
        ({"csat": 3}, [], 0.0),
        ({"ces": 5}, ["high_effort"], (1 / 3) ** 2),
        ({"ces": 4}, [], 0.0),
        ({"nps": 0, "csat": 1, "ces": 7}, ["nps_detractor", "low_csat", "high_effort"], 1.0),
        ({"nps": 3, "csat": 2}, ["nps_detractor", "low_csat"], 1 - (1 - (4 / 7) ** 2) * 0.75),
    ],
)
def test_poor_survey_answers(
    policy: Policy, answers: dict[str, int], codes: list[str], poor: float
) -> None:
    s, _ = run([{**interaction("s1", T0, "survey_response"), **answers}], policy)
    g = snapshot(s, policy)
    assert _codes(g) == codes
    assert g["churn"]["score"] == round(0.05 * poor, 4)
    assert grade(s, T0 + 181 * DAY, policy)["churn"]["score"] == 0.0  # answers age out


def test_a_later_answer_of_the_same_metric_wins(policy: Policy) -> None:
    s, _ = run(
        [
            interaction("s1", T0, "survey_response", nps=2),
            interaction("s2", T0 + DAY, "survey_response", nps=9),
        ],
        policy,
    )
    assert _codes(snapshot(s, policy)) == []


# The issue's input: an NPS of 2, then an answer without scores, then an order.
ISSUE_SURVEY = [
    b'{"event_id":"a","customer_id":"x","occurred_at":"2025-06-11T00:00:00Z",'
    b'"type":"survey_response","nps":2}',
    b'{"event_id":"b","customer_id":"x","occurred_at":"2025-06-21T00:00:00Z",'
    b'"type":"survey_response"}',
    b'{"event_id":"c","customer_id":"x","occurred_at":"2025-06-26T00:00:00Z",'
    b'"type":"order_placed","order_id":"o","amount":100,"currency":"USD"}',
]


def _replay_at(lines: list[bytes], as_of: str, policy: Policy) -> dict[str, Any]:
    """The churn grade at `as_of` of the lines applied in order (replay --as-of)."""
    s = new_state("x")
    for line in lines:
        assert apply(s, orjson.loads(line), policy).rejection is None
    churn = grade(s, parse_rfc3339(as_of), policy)["churn"]
    assert isinstance(churn, dict)
    return churn


def test_an_answer_without_scores_erases_nothing(policy: Policy) -> None:
    with_blank = _replay_at(ISSUE_SURVEY, "2025-07-01T00:00:00Z", policy)
    without = _replay_at([ISSUE_SURVEY[0], ISSUE_SURVEY[2]], "2025-07-01T00:00:00Z", policy)
    assert with_blank == without
    assert [r["code"] for r in with_blank["reasons"]] == ["recency", "nps_detractor"]
    assert with_blank["reasons"][1]["message"] == "Latest NPS answer is 2 (a detractor)"
    assert with_blank["score"] == round(noisy_or(silence(5), 0.05 * (5 / 7) ** 2), 4)


def test_a_later_csat_only_answer_keeps_the_earlier_nps(policy: Policy) -> None:
    csat_only = (
        b'{"event_id":"b","customer_id":"x","occurred_at":"2025-06-21T00:00:00Z",'
        b'"type":"survey_response","csat":5}'
    )
    churn = _replay_at(
        [ISSUE_SURVEY[0], csat_only, ISSUE_SURVEY[2]], "2025-07-01T00:00:00Z", policy
    )
    assert [r["code"] for r in churn["reasons"]] == ["recency", "nps_detractor"]
    # ...and each metric ages out on its own: the NPS 180 days after it was given.
    late = _replay_at([ISSUE_SURVEY[0], csat_only, ISSUE_SURVEY[2]], "2025-12-09T00:00:00Z", policy)
    assert [r["code"] for r in late["reasons"]] == ["recency"]


# --- engagement ---------------------------------------------------------------------------


def test_falling_engagement(policy: Policy) -> None:
    busy = [interaction(f"i{i}", T0 + i * DAY, "page_view") for i in range(8)]
    s, _ = run(busy, policy)
    assert snapshot(s, policy)["churn"]["score"] == 0.0
    # On day 56, those 8 (days 0-7) sit in the earlier half and the recent half has 2.
    s2, _ = run(
        [
            *busy,
            interaction("r1", T0 + 55 * DAY, "page_view"),
            interaction("r2", T0 + 56 * DAY, "email_open"),
        ],
        policy,
    )
    g = snapshot(s2, policy)
    assert g["churn"]["score"] == round(0.05 * (1 - 2 / 8) ** 2, 4)
    assert _codes(g) == ["falling_engagement"]
    assert g["churn"]["reasons"][0]["message"] == (
        "2 interactions in the last 45 days against 8 in the 45 days before"
    )


def test_engagement_needs_a_baseline(policy: Policy) -> None:
    s, _ = run([interaction(f"i{i}", T0 + i * DAY, "page_view") for i in range(3)], policy)
    assert grade(s, T0 + 60 * DAY, policy)["churn"]["score"] == 0.0


# --- the score ----------------------------------------------------------------------------


def test_parts_combine_as_a_noisy_or_ranked_by_weight(policy: Policy) -> None:
    s, _ = run(
        [
            order("e1", T0, 100),
            interaction("s1", T0 + 200 * DAY, "survey_response", nps=1),
            complaint("k1", T0 + 200 * DAY, "complaint_opened", "K", "high"),
        ],
        policy,
    )
    g = snapshot(s, policy)
    assert _codes(g) == ["recency", "nps_detractor", "open_complaints", "recent_complaints"]
    expected = noisy_or(silence(200), 0.05 * (6 / 7) ** 2, complaints(1.2))
    assert (g["churn"]["score"], g["churn"]["band"]) == (round(expected, 4), "high")


# Complaints and poor answers raise alerts by themselves (the customer ordered yesterday,
# so silence adds little): the policy's weights and steepness decide how severe is enough.
@pytest.mark.parametrize(
    ("open_high", "answers", "band"),
    [
        (5, {"nps": 0}, "high"),  # the issue's customer
        (5, {}, "high"),
        (4, {}, "high"),
        (8, {"nps": 0, "csat": 1}, "critical"),
        (3, {"nps": 0}, "medium"),
        (2, {"nps": 0, "csat": 1}, "medium"),
        (1, {"nps": 0}, "low"),
        (0, {"nps": 0, "csat": 1, "ces": 7}, "low"),
    ],
)
def test_complaints_and_poor_answers_alert_by_themselves(
    policy: Policy, open_high: int, answers: dict[str, int], band: str
) -> None:
    day = T0 + 400 * DAY
    events: list[Event] = [order("e0", day - DAY, 100)]
    events += [
        complaint(f"k{i}", day + i * 60, "complaint_opened", f"K{i}", "high")
        for i in range(open_high)
    ]
    if answers:
        events.append({**interaction("s1", day + 3600, "survey_response"), **answers})
    s, out = run(events, policy)
    g = snapshot(s, policy)
    assert g["churn"]["band"] == band
    alerts = _alerts(out)
    if band in ("high", "critical"):
        # One alert, when the band first reached high (climbing further raises none).
        assert [(a[0], a[2], a[3]) for a in alerts] == [("low", "high", "raised")]
        assert _codes(g)[0] == "open_complaints"
    else:
        assert alerts == []


# --- alerts -------------------------------------------------------------------------------


def _complaints(t: int, n: int, kind: str = "complaint_opened", tag: str = "") -> list[Event]:
    return [complaint(f"{tag}{kind}{i}", t + i, kind, f"K{i}", "high") for i in range(n)]


def test_alert_raised_and_cleared(policy: Policy) -> None:
    t = T0 + 30 * DAY
    _s, out = run(
        [
            order("e1", T0, 100),
            *_complaints(t, 4),
            *_complaints(t + 3 * DAY, 4, "complaint_resolved"),
        ],
        policy,
    )
    raised_at = at(t + 3)  # the fourth open high complaint, on top of 30 days' silence
    assert _alerts(out) == [
        ("low", "medium", "high", "raised", raised_at, "event"),
        ("high", "high", "medium", "cleared", at(t + 3 * DAY), "event"),
    ]
    raised = next(o for o in out if o["type"] == "churn_risk_changed")
    assert raised["score"] == round(noisy_or(silence(30), complaints(4 * 1.2)), 4)
    assert [r["code"] for r in raised["reasons"]] == [
        "open_complaints",
        "recent_complaints",
        "recency",
    ]


def test_previous_band_is_the_last_alerts_band_before_the_band_just_before(
    policy: Policy,
) -> None:
    # A policy where one complaint weighs a lot: raised at high by a medium complaint;
    # critical when it is escalated to high (no alert); cleared when it is resolved: the
    # clear names the alert's band (high) and the band it fell from (critical).
    doc = policy.model_dump()
    doc["churn"]["complaints"]["half_weight"] = 0.5
    strict = policy_from_dict(doc)
    t = T0 + 30 * DAY
    _s, out = run(
        [
            order("e1", T0, 100),
            complaint("k1", t, "complaint_opened", "K", "medium"),
            complaint("k2", t + DAY, "complaint_escalated", "K", "high"),
            complaint("k3", t + 2 * DAY, "complaint_resolved", "K", "high"),
        ],
        strict,
    )
    assert [(a[0], a[1], a[2], a[3]) for a in _alerts(out)] == [
        ("low", "medium", "high", "raised"),
        ("high", "critical", "medium", "cleared"),
    ]


def test_band_rising_by_time_alone_raises_an_alert(policy: Policy) -> None:
    # Three open high complaints (0.17) and a growing silence cross 0.5 by time alone.
    _s, out = run([order("e1", T0, 100), *_complaints(T0 + DAY, 3)], policy, until=T0 + 100 * DAY)
    ((prev, before, band, alert, when, cause), cleared) = _alerts(out)
    assert (prev, before, band, alert, cause) == ("low", "medium", "high", "raised", "inactivity")
    day = (parse_rfc3339(when) - T0) // DAY
    assert round(noisy_or(silence(day - 1), complaints(3.6)), 4) < 0.5
    assert round(noisy_or(silence(day), complaints(3.6)), 4) >= 0.5
    assert when == at(T0 + day * DAY)
    # ...and clears when the complaints are no longer recent (opened 90 days before).
    assert cleared == ("high", "high", "medium", "cleared", at(T0 + 91 * DAY), "inactivity")


def test_cooldown_holds_back_a_clear_until_it_ends(policy: Policy) -> None:
    t = T0 + 30 * DAY
    s, out = run(
        [order("e1", T0, 100), *_complaints(t, 4), *_complaints(t + 3600, 4, "complaint_resolved")],
        policy,
    )
    assert [a[3] for a in _alerts(out)] == ["raised"]
    out = advance(s, T0 + 32 * DAY, policy)
    assert _alerts(out) == [
        ("high", "medium", "medium", "cleared", at(t + 3 + DAY), "inactivity"),
    ]


def test_no_alert_storm_within_cooldown(policy: Policy) -> None:
    events: list[Event] = [order("e1", T0, 100)]
    t = T0 + 30 * DAY
    for i in range(5):  # open and resolve every hour: the band flips, alerts do not
        events += _complaints(t + 2 * i * 3600, 4, tag=f"o{i}")
        events += _complaints(t + (2 * i + 1) * 3600, 4, "complaint_resolved", tag=f"r{i}")
    s, out = run(events, policy)
    assert len(_alerts(out)) == 1
    assert _alerts(advance(s, t + 2 * DAY, policy))[0][3] == "cleared"


def test_a_long_silence_alerts_by_itself(policy: Policy) -> None:
    # One order: high once (d + 60) / (d + 180) >= 2/3, after 180 days; never critical.
    s, out = run([order("e1", T0, 100)], policy, until=T0 + 4000 * DAY)
    assert snapshot(s, policy)["churn"]["band"] == "high"
    assert _alerts(out) == [("low", "medium", "high", "raised", at(T0 + 180 * DAY), "inactivity")]
    # More orders give a longer silence before the alert.
    s, out = run(
        [order(f"e{i}", T0 + i * DAY, 100) for i in range(5)], policy, until=T0 + 4000 * DAY
    )
    ((*_, when, _),) = _alerts(out)
    assert parse_rfc3339(when) - (T0 + 4 * DAY) > 250 * DAY


def test_duplicate_alert_ids_are_deterministic(policy: Policy) -> None:
    events = [order("e1", T0, 100), *_complaints(T0 + 30 * DAY, 4)]
    _, a = run(events, policy)
    _, b = run(events, policy)
    assert [o["event_id"] for o in a] == [o["event_id"] for o in b]
    assert len({o["event_id"] for o in a}) == len(a)


def test_apply_result_flags(policy: Policy) -> None:
    s, _ = run([order("e1", T0, 100)], policy)
    r = apply(s, interaction("i1", T0 + 60, "page_view"), policy)
    assert (r.changed, r.duplicate, r.rejection, r.outputs) == (True, False, None, [])


# --- monotone in what should raise risk ---------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 6),  # open high complaints
    st.sampled_from([None, 0, 3, 6]),  # NPS
    st.sampled_from([None, 1, 2]),  # CSAT
    st.integers(0, 800),  # days of silence
    st.integers(1, 12),  # orders
    st.sampled_from(["complaint", "nps", "csat", "silence", "order_before"]),
)
def test_more_evidence_of_risk_never_lowers_the_score(
    complaints_n: int,
    nps: int | None,
    csat: int | None,
    days: int,
    orders: int,
    more: str,
) -> None:
    policy = load_policy()

    def score(c: int, n: int | None, cs: int | None, d: int, k: int) -> float:
        last = T0 + 1000 * DAY
        evs: list[Event] = [order(f"o{i}", last - (k - 1 - i) * DAY, 100) for i in range(k)]
        t = last + d * DAY
        evs += [complaint(f"k{i}", t - i, "complaint_opened", f"K{i}", "high") for i in range(c)]
        answers = {key: v for key, v in (("nps", n), ("csat", cs)) if v is not None}
        if answers:
            evs.append({**interaction("s1", t - 100, "survey_response"), **answers})
        s, _ = run(evs, policy)
        return float(grade(s, t, policy)["churn"]["score"])

    base = score(complaints_n, nps, csat, days, orders)
    if more == "complaint":
        worse = score(complaints_n + 1, nps, csat, days, orders)
    elif more == "nps":
        worse = score(complaints_n, 0 if nps is None else max(0, nps - 3), csat, days, orders)
    elif more == "csat":
        worse = score(complaints_n, nps, 1, days, orders)
    elif more == "silence":
        worse = score(complaints_n, nps, csat, days + 30, orders)
    else:  # one order fewer at the same silence
        worse = score(complaints_n, nps, csat, days, max(1, orders - 1))
    assert worse >= base
