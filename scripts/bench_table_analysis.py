"""Time how long a policy with one large decision table takes to load (its static analysis: gaps,
overlaps, shadowed rows), for growing row counts. Prints one line per size: rows, seconds.

    .venv/bin/python scripts/bench_table_analysis.py [--grid] [ROWS ...]   (default: 400 800 1500 2000)

Default shape: income bands x applicant kind, hit unique. --grid: income bands x score bands (two
numeric columns, so every row cuts both ranges), hit first, with a catch-all last row.
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
  bureau.score: {type: integer, min: 300, max: 900}
decision_tables:
  BAND:
    hit: HIT
    inputs: INPUTS
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
GRID_INPUTS = "{income: applicant.income, points: bureau.score}"


def policy_text(rows: int, grid: bool = False) -> str:
    """`rows` rows: income bands of 100 each, one row per band and applicant kind (no gaps, no
    overlaps), so the analysis has to look at every row; or (grid) income x score bands."""
    if not grid:
        lines = [
            f'      - ["[{(i // 3) * 100}..{(i // 3 + 1) * 100})", {KINDS[i % 3]}, {i}]\n'
            for i in range(rows)
        ]
        header = HEADER.replace("HIT", "unique").replace(
            "INPUTS", "{income: applicant.income, kind: applicant.kind}"
        )
        return header + "".join(lines) + FOOTER
    per_band = 20  # score bands of 30 points across 300..900
    lines = [
        f'      - ["[{(i // per_band) * 100}..{(i // per_band + 1) * 100})", '
        f'"[{300 + (i % per_band) * 30}..{330 + (i % per_band) * 30})", {i}]\n'
        for i in range(rows - 1)
    ]
    lines.append(f'      - ["-", "-", {rows}]\n')
    return HEADER.replace("HIT", "first").replace("INPUTS", GRID_INPUTS) + "".join(lines) + FOOTER


def main(argv: list[str]) -> int:
    grid = "--grid" in argv
    sizes = [int(a) for a in argv if a != "--grid"] or [400, 800, 1500, 2000]
    print(f"rows  seconds  ({'income x score, hit first' if grid else 'income x kind, hit unique'})")
    for rows in sizes:
        text = policy_text(rows, grid)
        started = time.perf_counter()
        load_policy_text(text)
        print(f"{rows:>4}  {time.perf_counter() - started:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
