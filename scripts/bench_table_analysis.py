"""Time how long a policy with one large decision table takes to load (its static analysis: gaps,
overlaps, shadowed rows), for growing row counts. Prints one line per size: rows, seconds.

    .venv/bin/python scripts/bench_table_analysis.py [ROWS ...]   (default: 400 800 1500 2000)
"""

from __future__ import annotations

import sys
import time

from engine.policy import load_policy_text

HEADER = """\
policy: big_table
version: "1"
currency: CNY
languages: [en]
inputs:
  applicant.income: {type: decimal, min: 0}
  applicant.kind: {type: enum, values: [salaried, self_employed, retired]}
decision_tables:
  BAND:
    hit: unique
    inputs: {income: applicant.income, kind: applicant.kind}
    outputs: [band]
    rows:
"""
FOOTER = """\
stages:
  - name: eligibility
    rules:
      - {id: r, when: "band == 0", refer: {code: R, text: {en: r}}}
"""
KINDS = ("salaried", "self_employed", "retired")


def policy_text(rows: int) -> str:
    """`rows` rows: income bands of 100 each, one row per band and applicant kind (no gaps, no
    overlaps), so the analysis has to look at every row."""
    lines = [
        f'      - ["[{(i // 3) * 100}..{(i // 3 + 1) * 100})", {KINDS[i % 3]}, {i}]\n' for i in range(rows)
    ]
    return HEADER + "".join(lines) + FOOTER


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [400, 800, 1500, 2000]
    print("rows  seconds")
    for rows in sizes:
        text = policy_text(rows)
        started = time.perf_counter()
        load_policy_text(text)
        print(f"{rows:>4}  {time.perf_counter() - started:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
