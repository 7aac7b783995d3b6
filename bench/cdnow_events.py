"""The CDNOW order history (Fader & Hardie's CD retailer: 23,570 customers who first bought
in Q1 1997, every order to June 1998) as order_placed events in the input format, for
bench/holdout.py. The data ships inside the `lifetimes` wheel (MIT licence); it is not
kept in this repository:

    pip download --no-deps lifetimes==0.11.3 -d /tmp/lt && unzip -q /tmp/lt/*.whl -d /tmp/lt
    .venv/bin/python bench/cdnow_events.py \\
        /tmp/lt/lifetimes/datasets/CDNOW_master.txt /tmp/cdnow.jsonl
    .venv/bin/python bench/holdout.py --seeds --history /tmp/cdnow.jsonl \\
        --cut 1997-10-01T00:00:00Z

Each line of CDNOW_master.txt is `customer date(YYYYMMDD) cds dollars` (the sample file
has one more id column first); each becomes an order at midnight UTC, in USD.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson


def convert(source: Path, target: Path) -> int:
    """Write `source`'s orders to `target`; returns how many."""
    n = 0
    with source.open(encoding="ascii") as lines, target.open("wb") as out:
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or not fields[-1][0].isdigit():
                continue  # the header
            customer, day, amount = fields[0], fields[-3], fields[-1]
            event = {
                "event_id": f"cdnow-{n}",
                "customer_id": f"cdnow-{customer}",
                "occurred_at": f"{day[:4]}-{day[4:6]}-{day[6:]}T00:00:00Z",
                "type": "order_placed",
                "order_id": f"cdnow-{n}",
                "amount": float(amount),
                "currency": "USD",
            }
            out.write(orjson.dumps(event) + b"\n")
            n += 1
    return n


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: cdnow_events.py CDNOW_master.txt OUT.jsonl")
    print(convert(Path(sys.argv[1]), Path(sys.argv[2])), "orders")
