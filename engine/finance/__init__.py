"""Finance: Decimal money with explicit rounding, repayment schedules for the three repayment
methods, and APR as the IRR of a loan's cash flows."""

from engine.finance.apr import apr, effective_annual_rate, irr
from engine.finance.money import money, quantize, to_decimal
from engine.finance.schedule import METHODS, Schedule, annuity_payment, build_schedule, schedule_sha256

__all__ = [
    "METHODS",
    "Schedule",
    "annuity_payment",
    "apr",
    "build_schedule",
    "effective_annual_rate",
    "irr",
    "money",
    "quantize",
    "schedule_sha256",
    "to_decimal",
]
