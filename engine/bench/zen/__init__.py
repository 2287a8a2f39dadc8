"""The peer engine's side of `credo bench`: consumer_loan's eligibility, grading, post-score, limit and
price logic as a GoRules ZEN decision graph (JDM), built by build.py into consumer_loan.json."""

from __future__ import annotations

from pathlib import Path

__all__ = ["CONSUMER_LOAN_JDM"]

CONSUMER_LOAN_JDM = Path(__file__).with_name("consumer_loan.json")
