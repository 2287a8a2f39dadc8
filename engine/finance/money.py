"""Decimal money: conversion to Decimal and rounding with an explicit, policy-named rounding mode.
Amounts are CNY (or the policy's currency) in cents; rates are Decimal fractions per year.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Final

__all__ = ["CENT", "ROUNDINGS", "ZERO", "money", "quantize", "rounding_mode", "to_decimal"]

ZERO: Final = Decimal(0)
CENT: Final = Decimal("0.01")

# Policy spelling -> decimal module constant. half_even (banker's rounding) is the default.
ROUNDINGS: Final[dict[str, str]] = {
    "half_even": decimal.ROUND_HALF_EVEN,
    "half_up": decimal.ROUND_HALF_UP,
    "half_down": decimal.ROUND_HALF_DOWN,
    "down": decimal.ROUND_DOWN,
    "up": decimal.ROUND_UP,
    "floor": decimal.ROUND_FLOOR,
    "ceiling": decimal.ROUND_CEILING,
}


_EXPONENTS: Final = {places: Decimal(1).scaleb(-places) for places in range(0, 16)}
_WIDE: Final = decimal.Context(prec=60)  # room for any amount: quantize must never run out of digits


def rounding_mode(name: str) -> str:
    """The decimal-module rounding constant for a policy's rounding name; ValueError if unknown."""
    try:
        return ROUNDINGS[name]
    except KeyError:
        known = ", ".join(sorted(ROUNDINGS))
        raise ValueError(f"unknown rounding {name!r}; expected one of {known}") from None


def to_decimal(value: Decimal | int | str | float) -> Decimal:
    """A Decimal from an int, a decimal string or a Decimal: the one conversion (input validation
    turns its errors into field violations). A float goes through its shortest repr (`0.1` ->
    Decimal("0.1")), never through its binary value. Refused: a bool or another type (TypeError);
    an empty string, one with "_" digit separators or not a decimal, and non-finite values
    (ValueError)."""
    if isinstance(value, bool):
        raise TypeError("a bool is not an amount")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        if "_" in value:  # Decimal("1_000") parses; an amount on the wire must not
            raise ValueError(f"not a decimal number: {value!r}")
        try:
            result = Decimal(value.strip())
        except decimal.InvalidOperation:
            raise ValueError(f"not a decimal number: {value!r}") from None
    else:
        raise TypeError(f"cannot use {type(value).__name__} as a decimal")
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return result


def quantize(x: Decimal | int | str, places: int = 2, rounding: str = "half_even") -> Decimal:
    """`x` rounded to `places` decimal places with the named rounding (half_even, half_up, down, ...)."""
    value = x if type(x) is Decimal else to_decimal(x)
    exponent = _EXPONENTS.get(places) or Decimal(1).scaleb(-places)
    # the context as an argument, not a localcontext(): the same precision and traps for a third
    # of the cost (the flags it sets on _WIDE are never read)
    return value.quantize(exponent, rounding_mode(rounding), _WIDE)  # positional: keywords cost 2x


def money(x: Decimal | int | str, rounding: str = "half_even") -> Decimal:
    """An amount rounded to the cent."""
    mode = ROUNDINGS.get(rounding)
    if type(x) is Decimal and mode is not None:  # quantize's own path, without its two calls
        return x.quantize(CENT, mode, _WIDE)
    return quantize(x, 2, rounding)
