"""Retention: the customers most at risk of churning, from the Redis view.

    python docs/examples/at_risk_report.py --redis-url redis://localhost:6379/0 --limit 20

gradestream keeps a sorted set `{prefix}:at-risk` of customer ids scored by churn risk
(customers in the lowest band are not in it) and a hash `{prefix}:customer:{id}` with the
current grade. This reads the top of the set and each customer's band, tier, segment and
the reasons behind the score, one JSON line per customer, riskiest first.
"""

from __future__ import annotations

import argparse
import json

import redis


def at_risk(client: redis.Redis, prefix: str, limit: int, min_score: float) -> list[dict]:
    top = client.zrevrangebyscore(
        f"{prefix}:at-risk", "+inf", min_score, start=0, num=limit, withscores=True
    )
    pipe = client.pipeline(transaction=False)
    for customer_id, _ in top:
        pipe.hget(f"{prefix}:customer:{customer_id.decode()}", "grade")
    grades = pipe.execute()
    rows = []
    for (customer_id, score), raw in zip(top, grades, strict=True):
        if raw is None:  # removed between the two reads
            continue
        grade = json.loads(raw)
        rows.append(
            {
                "customer_id": customer_id.decode(),
                "churn_score": score,
                "band": grade["churn"]["band"],
                "tier": grade["tier"],
                "segment": grade["segment"],
                "reasons": [reason["code"] for reason in grade["churn"]["reasons"]],
                "as_of": grade["as_of"],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://localhost:6379/0")
    parser.add_argument("--prefix", default="gradestream", help="GRADESTREAM_REDIS_KEY_PREFIX")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--min-score", type=float, default=0.5)
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis_url)
    for row in at_risk(client, args.prefix, args.limit, args.min_score):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
