"""Churn risk: components, bands, reasons, alerts and their cooldown."""

from __future__ import annotations

import pytest

from streams.core.engine import advance, apply, snapshot
from streams.core.grading import grade
from streams.core.policy import Policy
from tests.core.builders import DAY, T0, Event, at, complaint, interaction, order, run


def _codes(g: dict[str, object]) -> list[str]:
    churn = g["churn"]
    assert isinstance(churn, dict)
    return [r["code"] for r in churn["reasons"]]


def _alerts(out: list[Event]) -> list[tuple[str, str, str, str, str]]:
    return [
        (o["previous_band"], o["band"], o["alert"], o["occurred_at"], o["cause"]["kind"])
        for o in out
        if o["type"] == "churn_risk_changed"
    ]


@pytest.mark.parametrize(
    ("days", "score", "band"),
    [
        (0, 0.0, "low"),
        (90, 0.0, "low"),  # one order: cadence 60 days; risk starts at 1.5x = 90 days
        (135, 0.225, "low"),
        (150, 0.3, "medium"),
        (180, 0.45, "medium"),  # full at 3x; recency alone tops out at its weight
        (300, 0.45, "medium"),
    ],
)
def test_overdue_against_default_cadence(
    policy: Policy, days: int, score: float, band: str
) -> None:
    s, _ = run([order("e1", T0, 100)], policy)
    g = grade(s, T0 + days * DAY, policy)
    assert (g["churn"]["score"], g["churn"]["band"]) == (score, band)
    assert _codes(g) == (["overdue"] if score else [])


def test_cadence_is_the_customers_own(policy: Policy) -> None:
    # Orders every 10 days: overdue starts at 15 days, full at 30.
    s, _ = run([order(f"e{i}", T0 + i * 10 * DAY, 100) for i in range(4)], policy)
    last = T0 + 30 * DAY
    assert grade(s, last + 15 * DAY, policy)["churn"]["score"] == 0.0
    g = grade(s, last + 30 * DAY, policy)
    assert g["churn"]["score"] == 0.45
    assert g["churn"]["reasons"][0]["message"] == (
        "No order for 30 days, 3.0x this customer's usual gap of 10 days"
    )


@pytest.mark.parametrize(
    ("severity", "score"),
    [("low", 0.0625), ("medium", 0.15), ("high", 0.25)],  # 0.25 * min(1, open + recent)
)
def test_open_complaint_by_severity(policy: Policy, severity: str, score: float) -> None:
    s, _ = run([complaint("k1", T0, "complaint_opened", "K", severity)], policy)
    g = snapshot(s, policy)
    assert g["churn"]["score"] == score
    assert _codes(g) == ["open_complaints", "recent_complaints"]


def test_resolved_complaint_still_counts_as_recent_for_90_days(policy: Policy) -> None:
    s, _ = run(
        [
            complaint("k1", T0, "complaint_opened", "K", "high"),
            complaint("k2", T0 + DAY, "complaint_resolved", "K", "high"),
        ],
        policy,
    )
    assert snapshot(s, policy)["churn"]["score"] == 0.05
    assert _codes(snapshot(s, policy)) == ["recent_complaints"]
    assert grade(s, T0 + 90 * DAY, policy)["churn"]["score"] == 0.0


@pytest.mark.parametrize(
    ("answers", "codes"),
    [
        ({"nps": 6}, ["nps_detractor"]),
        ({"nps": 7}, []),
        ({"csat": 2}, ["low_csat"]),
        ({"csat": 3}, []),
        ({"ces": 5}, ["high_effort"]),
        ({"ces": 4}, []),
        ({"nps": 0, "csat": 1, "ces": 7}, ["nps_detractor", "low_csat", "high_effort"]),
    ],
)
def test_poor_survey_answers(policy: Policy, answers: dict[str, int], codes: list[str]) -> None:
    s, _ = run([{**interaction("s1", T0, "survey_response"), **answers}], policy)
    g = snapshot(s, policy)
    assert _codes(g) == codes
    assert g["churn"]["score"] == (0.15 if codes else 0.0)
    assert grade(s, T0 + 181 * DAY, policy)["churn"]["score"] == 0.0  # answers age out


def test_latest_survey_wins(policy: Policy) -> None:
    s, _ = run(
        [
            interaction("s1", T0, "survey_response", nps=2),
            interaction("s2", T0 + DAY, "survey_response", nps=9),
        ],
        policy,
    )
    assert _codes(snapshot(s, policy)) == []


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
    assert g["churn"]["score"] == 0.1125  # 0.15 * (1 - 2/8)
    assert _codes(g) == ["falling_engagement"]
    assert g["churn"]["reasons"][0]["message"] == (
        "2 interactions in the last 45 days against 8 in the 45 days before"
    )


def test_engagement_needs_a_baseline(policy: Policy) -> None:
    s, _ = run([interaction(f"i{i}", T0 + i * DAY, "page_view") for i in range(3)], policy)
    assert grade(s, T0 + 60 * DAY, policy)["churn"]["score"] == 0.0


def test_reasons_are_ordered_by_weight(policy: Policy) -> None:
    s, _ = run(
        [order("e1", T0, 100), interaction("s1", T0 + 200 * DAY, "survey_response", nps=1)],
        policy,
    )
    g = snapshot(s, policy)
    assert _codes(g) == ["overdue", "nps_detractor"]
    assert (g["churn"]["score"], g["churn"]["band"]) == (0.6, "high")


def test_alert_raised_and_cleared(policy: Policy) -> None:
    _s, out = run(
        [
            order("e1", T0, 100),
            complaint("k1", T0 + 200 * DAY, "complaint_opened", "K", "medium"),
            complaint("k2", T0 + 203 * DAY, "complaint_resolved", "K", "medium"),
        ],
        policy,
    )
    assert _alerts(out) == [
        ("low", "high", "raised", at(T0 + 200 * DAY), "event"),
        ("high", "medium", "cleared", at(T0 + 203 * DAY), "event"),
    ]
    raised = next(o for o in out if o["type"] == "churn_risk_changed")
    assert raised["score"] == 0.6
    assert [r["code"] for r in raised["reasons"]] == [
        "overdue",
        "open_complaints",
        "recent_complaints",
    ]


def test_band_rising_by_time_alone_raises_an_alert(policy: Policy) -> None:
    # A poor survey (0.15) plus growing overdue crosses 0.5 when overdue reaches 0.35/0.45.
    _s, out = run(
        [order("e1", T0, 100), interaction("s1", T0 + 10 * DAY, "survey_response", csat=1)],
        policy,
        until=T0 + 200 * DAY,
    )
    ((prev, band, alert, when, cause), cleared) = _alerts(out)
    assert (prev, band, alert, cause) == ("low", "high", "raised", "inactivity")
    # recency component (d/60 - 1.5)/1.5 >= 0.35/0.45 first at d = 160 days
    assert when == at(T0 + 160 * DAY)
    # ...and clears when the survey answer turns 180 days old.
    assert cleared == ("high", "medium", "cleared", at(T0 + 190 * DAY + 1), "inactivity")


def test_cooldown_holds_back_a_clear_until_it_ends(policy: Policy) -> None:
    s, out = run(
        [
            order("e1", T0, 100),
            complaint("k1", T0 + 200 * DAY, "complaint_opened", "K", "medium"),
            complaint("k2", T0 + 200 * DAY + 3600, "complaint_resolved", "K", "medium"),
        ],
        policy,
    )
    assert [a[2] for a in _alerts(out)] == ["raised"]
    out = advance(s, T0 + 202 * DAY, policy)
    assert _alerts(out) == [
        ("high", "medium", "cleared", at(T0 + 201 * DAY), "inactivity"),
    ]


def test_no_alert_storm_within_cooldown(policy: Policy) -> None:
    events: list[Event] = [order("e1", T0, 100)]
    t = T0 + 200 * DAY
    for i in range(5):  # open and resolve every hour: the band flips, alerts do not
        events.append(complaint(f"o{i}", t + 2 * i * 3600, "complaint_opened", f"K{i}", "medium"))
        events.append(
            complaint(f"r{i}", t + (2 * i + 1) * 3600, "complaint_resolved", f"K{i}", "medium")
        )
    s, out = run(events, policy)
    assert len(_alerts(out)) == 1
    # Later the recent (resolved) complaints still hold the band at high: nothing pending.
    assert snapshot(s, policy)["churn"]["band"] == "high"
    assert _alerts(advance(s, t + 2 * DAY, policy)) == []


def test_alert_only_at_the_alert_level(policy: Policy) -> None:
    s, out = run([order("e1", T0, 100)], policy, until=T0 + 400 * DAY)
    assert snapshot(s, policy)["churn"]["band"] == "medium"
    assert _alerts(out) == []


def test_duplicate_alert_ids_are_deterministic(policy: Policy) -> None:
    events = [order("e1", T0, 100), complaint("k1", T0 + 200 * DAY, "complaint_opened", "K")]
    _, a = run(events, policy)
    _, b = run(events, policy)
    assert [o["event_id"] for o in a] == [o["event_id"] for o in b]
    assert len({o["event_id"] for o in a}) == len(a)


def test_apply_result_flags(policy: Policy) -> None:
    s, _ = run([order("e1", T0, 100)], policy)
    r = apply(s, interaction("i1", T0 + 60, "page_view"), policy)
    assert (r.changed, r.duplicate, r.rejection, r.outputs) == (True, False, None, [])
