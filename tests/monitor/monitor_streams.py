"""Random loan event streams for the differential tests: a few loans per stream, events mostly in
time order with some refused ones mixed in (unknown type, bad field, unknown loan, out of order)."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

START = dt.date(2026, 1, 1).toordinal()


def random_stream(rng: random.Random, loans: int = 3, length: int = 40) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    today = {f"L{i}": START + rng.randrange(0, 20) for i in range(loans)}
    opened: set[str] = set()
    closed: set[str] = set()
    number = dict.fromkeys(today, 0)
    for _ in range(length):
        loan = rng.choice(sorted(today))
        day = today[loan] + rng.choice((0, 0, 1, 3, 7, 15, 31, 45))
        today[loan] = day
        date = dt.date.fromordinal(day).isoformat()
        if loan not in opened and rng.random() < 0.8:
            opened.add(loan)
            events.append(
                {
                    "type": "loan.disbursed",
                    "loan_id": loan,
                    "date": date,
                    "amount": "5000",
                    "term": 12,
                    "bureau_score": rng.randrange(600, 800),
                }
            )
            continue
        roll = rng.random()
        if roll < 0.22:
            number[loan] += 1
            event = {
                "type": "instalment.due",
                "number": number[loan],
                "amount": rng.choice(("400", "450.50", "500")),
            }
        elif roll < 0.40:
            event = {
                "type": "payment.received",
                "amount": rng.choice(("100", "400", "450.50", "900", "1500")),
            }
        elif roll < 0.62:
            event = {
                "type": "bureau.refresh",
                "score": rng.randrange(540, 800),
                "utilisation": rng.choice(("0.2", "0.85", "0.9", "0.91", "0.97", "1.2")),
                "inquiries": rng.randrange(0, 4),
            }
        elif roll < 0.70:
            event = {"type": "contact.change", "kind": rng.choice(("phone", "address", "employer"))}
        elif roll < 0.76:
            event = {"type": "income.update", "monthly_income": rng.choice(("3000", "8000.25", "12000"))}
        elif roll < 0.86:
            event = {"type": "clock.tick"}
            if rng.random() < 0.5:
                event["loan_id"] = None  # portfolio-wide
        elif roll < 0.88 and loan not in closed:
            closed.add(loan)
            event = {"type": "loan.closed"}
        elif roll < 0.91:
            event = {"type": rng.choice(("salary.paid", "payment.missed", ""))}
        elif roll < 0.94:
            event = {
                "type": "bureau.refresh",
                "score": rng.choice(("x", 1.5, True, None)),
                "utilisation": "0.2",
                "inquiries": 0,
            }
        elif roll < 0.97:
            event = {"type": "payment.received", "amount": "100"}
            date = dt.date.fromordinal(day - rng.randrange(1, 40)).isoformat()  # out of order for this loan
        else:
            event = {"type": "payment.received", "amount": "100"}
            loan = "NOBODY"
        events.append({"loan_id": loan, "date": date, **event})
        if events[-1].get("loan_id") is None:
            del events[-1]["loan_id"]
    return events
