"""Decide synthetic consumer_loan applicants into an audit store over several days, the last ones
drawn from a shifted population (lower incomes and bureau scores), so `credo monitor drift` and
the console have a history to show:

    .venv/bin/python scripts/drift_demo.py --store sqlite:///var/drift-demo.db --days 3 --per-day 500
    .venv/bin/credo monitor drift --store sqlite:///var/drift-demo.db --since 2026-03-01 --by day
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.audit.log import DecisionLog  # noqa: E402
from engine.batch.inputs import nest  # noqa: E402
from engine.models.synthetic import as_applications, generate, shifted  # noqa: E402
from engine.service import DecisionService  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="audit store URL")
    parser.add_argument("--days", type=int, default=3, help="days of history (default 3)")
    parser.add_argument("--shifted-days", type=int, default=1, help="of which the last N shifted (default 1)")
    parser.add_argument("--per-day", type=int, default=500, help="applicants a day (default 500)")
    parser.add_argument("--start", default="2026-03-01", help="first day (default 2026-03-01)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    start = dt.datetime.fromisoformat(args.start).replace(hour=9, tzinfo=dt.UTC)
    for day in range(args.days):
        frame = as_applications(generate(args.per_day, args.seed + day)).drop(columns=["default_12m"])
        moved = day >= args.days - args.shifted_days
        if moved:
            frame = shifted(frame)
        when = start + dt.timedelta(days=day)
        ticks = iter(range(10**9))
        service = DecisionService(
            ROOT / "policies",
            ROOT / "models",
            store=DecisionLog(args.store),
            clock=lambda when=when, ticks=ticks: when + dt.timedelta(seconds=next(ticks)),
        )
        try:
            for i, row in enumerate(frame.to_dict("records")):
                service.decide("consumer_loan", nest(row), f"demo-{when:%Y%m%d}-{i}")
        finally:
            assert service.log is not None
            service.log.close()
        print(f"{when:%Y-%m-%d}: {args.per_day} applicants decided{' (shifted population)' if moved else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
