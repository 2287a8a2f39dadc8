"""The Decision: what one call answers. Field names are shared by the gRPC contract, the CLI's
JSON and the audit record. Amounts and rates are `Decimal` here and decimal strings on the wire.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any, Literal, TypeVar, dataclass_transform

_T = TypeVar("_T")

# Metadata of fields added after records were first written: left out of to_dict() (and so of the
# audit record) while empty, so a record made before them replays to the very same body.
OMIT_EMPTY = {"omit_empty": True}


_EMPTY: tuple[Any, ...] = (None, "", (), {})
# a container's items of these exact types are plain as they are
_AS_IS = frozenset({str, int, bool, type(None)})


def _fields_plainer(kind: type) -> Callable[[Any, FloatRule], dict[str, Any]]:
    """plain() of an instance of dataclass `kind`: its fields (OMIT_EMPTY ones only when set), each
    plain, as straight-line code made once per class like value_object's __init__: a field read by
    name, a str, int, bool or None kept without a call. An audit record walks ~25 dataclasses and
    ~260 values."""
    made = fields_plainer(kind)
    _plainers[kind] = made
    return made


def fields_plainer(
    kind: type, leave_out: frozenset[str] = frozenset()
) -> Callable[[Any, FloatRule], dict[str, Any]]:
    """plain() of an instance of dataclass `kind` less its fields `leave_out`, as _fields_plainer
    writes it: what plain(replaced(value, ...)) gives without those keys, with no copy made. A new
    function on every call: the caller keeps it."""
    lines = ["def plain_fields(value, floats):\n    out = {}\n"]
    for name, f in kind.__dataclass_fields__.items():  # type: ignore[attr-defined]
        if name in leave_out:
            continue
        lines.append(f"    item = value.{name}\n")
        indent = "    "
        if f.metadata.get("omit_empty"):
            lines.append("    if item not in _EMPTY:\n")
            indent = "        "
        lines.append(
            f"{indent}out[{name!r}] = item if type(item) in _AS_IS"
            " else str(item) if type(item) is _Decimal and item.is_finite() else plain(item, floats)\n"
        )
    lines.append("    return out\n")
    names: dict[str, Any] = {"_EMPTY": _EMPTY, "_AS_IS": _AS_IS, "_Decimal": Decimal, "plain": plain}
    exec("".join(lines), names)  # names are the dataclass's own field identifiers
    made: Callable[[Any, FloatRule], dict[str, Any]] = names["plain_fields"]
    return made


_plainers: dict[type, Callable[[Any, FloatRule], dict[str, Any]]] = {}  # one per dataclass


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def value_object(cls: type[_T]) -> type[_T]:
    """`@dataclass(frozen=True, slots=True)` built cheaper: dataclasses' frozen __init__ calls
    object.__setattr__ once per field, and a Decision has 18 (every answer builds one, plus a
    TraceEntry per stage and an Instalment per schedule row). Here `__new__` takes the same
    arguments and defaults, fills a mutable twin of the class (the same slots, no __setattr__ of
    its own, so each field is one plain slot store) and hands it over as an instance of the frozen
    class: about 2.5 times as fast as setting each slot through its descriptor, and a slotted
    instance is a third the size of one with a __dict__. Equality, hashing, immutability,
    dataclasses.replace and pickling are the frozen dataclass's."""
    frozen: Any = dataclass(frozen=True, slots=True)(cls)
    if hasattr(frozen, "__post_init__"):
        raise TypeError(f"{cls.__name__}: value_object has no __post_init__ hook")
    if frozen.__bases__ != (object,):
        raise TypeError(f"{cls.__name__}: a value_object derives from no other class")
    # Its instances are made as a twin and switched to the frozen class (same layout: CPython
    # allows assigning __class__ between them); the twin is never seen outside this module.
    # A twin is made by calling it (`_twin()`: no __init__ of its own, so object's, with no arguments):
    # object.__new__(_twin) called as a function goes through its argument-checking wrapper, ~30 ns
    # more per value object made.
    twin = type(f"_{cls.__name__}Fill", (), {"__slots__": frozen.__slots__})
    params, body = [], []
    names: dict[str, Any] = {"_NO_VALUE": _NO_VALUE, "_twin": twin, "_cls": frozen}
    for f in fields(frozen):
        if f.default is not MISSING:
            names[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not MISSING:
            names[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_NO_VALUE")
            body.append(f"    if {f.name} is _NO_VALUE:\n        {f.name} = _factory_{f.name}()\n")
        else:
            params.append(f.name)
        body.append(f"    self.{f.name} = {f.name}\n")
    filled = "".join(body)
    exec(  # field names only: this module's own classes
        f"def __new__(cls, {', '.join(params)}):\n    self = _twin()\n{filled}    self.__class__ = cls\n"
        "    return self\n\n\n"
        f"def made({', '.join(params)}):\n    self = _twin()\n{filled}    self.__class__ = _cls\n"
        "    return self\n",
        names,
    )
    new = names["__new__"]
    new.__qualname__ = f"{cls.__qualname__}.__new__"
    frozen.__new__ = new
    del frozen.__init__  # object's: it lets __new__ take the arguments
    # pickled and copied as a call of the class with its fields (object's way calls __new__ bare)
    frozen.__reduce__ = _reduce
    _TWINS[frozen] = twin
    _MAKERS[frozen] = names["made"]
    return frozen


def _reduce(value: Any) -> tuple[type, tuple[Any, ...]]:
    return type(value), tuple([getattr(value, name) for name in value.__dataclass_fields__])


_NO_VALUE: Any = object()
_TWINS: dict[type, type] = {}  # value object class -> the mutable twin its instances are filled as
# (value object class, the fields a replaced() call changes, in its order) -> its copier
_COPIES: dict[tuple[Any, ...], Callable[[Any, dict[str, Any]], Any]] = {}
_MAKERS: dict[type, Callable[..., Any]] = {}  # value object class -> its maker()


def maker(cls: Callable[..., _T]) -> Callable[..., _T]:
    """The constructor of value object class `cls` as a plain function, same arguments: without
    the class call's own steps (type.__call__, __new__'s lookup), for code that builds one per
    stage or per answer (the generated stage table and build)."""
    made: Callable[..., _T] = _MAKERS[cls]  # type: ignore[index]
    return made


def replaced(value: _T, **changes: Any) -> _T:
    """dataclasses.replace for a value object (its fields were checked when it was built): a copy
    with `changes`, without running __init__ and its defaults again. Straight-line code made once
    per class and set of changed fields: a changed field's slot filled from `changes`, every
    other's from `value` (booking copies every offer it answers)."""
    copier = _COPIES.get((type(value), *changes))
    if copier is None:
        copier = _copier(type(value), tuple(changes))
    copy: _T = copier(value, changes)
    return copy


def _copier(kind: type, changed: tuple[str, ...]) -> Callable[[Any, dict[str, Any]], Any]:
    known = kind.__dataclass_fields__.keys()  # type: ignore[attr-defined]
    if not known >= set(changed):
        raise TypeError(f"{kind.__name__} has no field {sorted(set(changed) - known)[0]!r}")
    lines = "".join(
        f"    copy.{name} = changes[{name!r}]\n" if name in changed else f"    copy.{name} = value.{name}\n"
        for name in known
    )
    names: dict[str, Any] = {"_twin": _TWINS[kind], "_cls": kind}  # field names only
    exec(
        f"def replaced(value, changes):\n    copy = _twin()\n{lines}"
        "    copy.__class__ = _cls\n    return copy\n",
        names,
    )
    made: Callable[[Any, dict[str, Any]], Any] = names["replaced"]
    _COPIES[(kind, *changed)] = made
    return made


class Outcome(StrEnum):
    APPROVE = "APPROVE"
    DECLINE = "DECLINE"
    REFER = "REFER"


@value_object
class Reason:
    code: str
    text: str
    stage: str
    rule_id: str = ""


@value_object
class Score:
    pd: Decimal
    points: int
    grade: str


@value_object
class Instalment:
    """One row of a repayment schedule."""

    period: int
    payment: Decimal
    principal: Decimal
    interest: Decimal
    balance: Decimal
    due_date: str = field(default="", metadata=OMIT_EMPTY)  # ISO date, when the policy dates schedules


@value_object
class Fee:
    kind: str  # upfront (once, at drawdown) | monthly (with every instalment)
    amount: Decimal


@value_object
class RevolvingTerms:
    """A credit line's repayment terms, in place of a term and a schedule."""

    minimum_payment_fixed: Decimal  # the minimum payment is max(fixed, rate x balance)
    minimum_payment_rate: Decimal
    interest_free_days: int
    horizon_months: int  # over which expected profit, loss and total_interest are worked


@value_object
class Offer:
    product: str
    amount: Decimal
    term_months: int
    repayment_method: str
    annual_rate: Decimal
    apr: Decimal
    instalment: Decimal
    total_interest: Decimal
    expected_profit: Decimal
    schedule: tuple[Instalment, ...] = ()
    # Set under the lifetime objectives (policy offers.lifetime): what a core system books.
    expected_loss: Decimal | None = field(default=None, metadata=OMIT_EMPTY)  # lifetime, discounted
    offer_id: str = field(default="", metadata=OMIT_EMPTY)
    valid_until: str = field(default="", metadata=OMIT_EMPTY)  # ISO date
    product_name: str = field(default="", metadata=OMIT_EMPTY)  # in the request's language
    fees: tuple[Fee, ...] = field(default=(), metadata=OMIT_EMPTY)
    revolving: RevolvingTerms | None = field(default=None, metadata=OMIT_EMPTY)  # a credit line


@value_object
class PolicyRef:
    name: str
    version: str
    sha256: str


@value_object
class ModelRef:
    name: str
    version: str
    sha256: str


class FrozenMap(dict[str, Any]):
    """A dict nobody can change: the trace values (and outputs) that are the same for every
    decision of a policy (a validate stage's field count, an outcome with no model reasons, a stage
    with nothing to do, no outputs) are one such map shared by all of them, instead of a dict made
    and kept per answer (~0.4 KB less per remembered answer). Equal to, and read as, a plain dict;
    it pickles and copies as itself."""

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> Any:
        raise TypeError("a FrozenMap is shared by many decisions and cannot be changed")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple[type[FrozenMap], tuple[dict[str, Any]]]:
        return (FrozenMap, (dict(self),))

    def __copy__(self) -> FrozenMap:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenMap:
        return self


EMPTY_MAP = FrozenMap()


@value_object
class TraceEntry:
    stage: str
    fired: tuple[str, ...]
    millis: float
    values: dict[str, Any] = field(default_factory=dict)


@value_object
class Decision:
    decision_id: str
    request_id: str
    outcome: Outcome
    reasons: tuple[Reason, ...]
    score: Score | None
    segments: tuple[str, ...]
    limit: Decimal | None
    annual_rate: Decimal | None
    offers: tuple[Offer, ...]
    policy: PolicyRef
    models: tuple[ModelRef, ...]
    trace: tuple[TraceEntry, ...]
    decided_at: str
    currency: str = "CNY"
    objective: str = field(default="", metadata=OMIT_EMPTY)  # what ranked the offers (lifetime policies)
    # The policy's own `outputs:` by name (Decimal, int, bool, str, date, tuples and dicts of them)
    outputs: Mapping[str, Any] = field(default_factory=dict, metadata=OMIT_EMPTY)
    # The hash of the audit record that holds this decision; set once the record is committed. It
    # cannot be part of the record it hashes, so to_dict() (the record body, the CLI JSON) omits it.
    record_hash: str = field(default="", compare=False)
    # The experiment arm that decided ("champion", a challenger's NAME@VERSION, "shadow:NAME@VERSION");
    # "" outside experiments, and then left out of to_dict() so such records keep their bytes.
    arm: str = field(default="", metadata=OMIT_EMPTY)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (`plain`: Decimals as strings, enums as names, trace millis as numbers),
        in the contract's field names."""
        body: dict[str, Any] = plain(self, floats="number")
        del body["record_hash"]
        return body


FloatRule = Literal["refuse", "text", "number"]


class NotPlain(ValueError):
    """A value `plain` cannot turn into JSON under its contract (a refused float, NaN, a naive
    datetime, a non-string key, a lone surrogate's neighbour types: bytes, sets, objects)."""


def plain(value: Any, floats: FloatRule = "refuse") -> Any:
    """`value` as JSON-native types: dict with str keys, list, str, int, bool, None (and float under
    floats="number"). The one value-to-JSON function: the CLI's JSON, the gRPC Structs, trace values
    and the audit log's canonical JSON (engine.audit.canonical) are all this contract.

    - Decimal -> str(d), exponent kept ("1.50" stays "1.50"); NaN and infinities are refused.
    - datetime -> isoformat() (a naive one is refused: nobody must guess its zone); date -> YYYY-MM-DD.
    - Enum -> its value (plain'ed); dataclass -> {field: plain(value)}; Mapping -> dict; list and
      tuple -> list; bool and int (and subclasses, numpy integers) -> bool and int.
    - floats: "refuse" raises (binary floats have no one decimal spelling a regulator can re-read);
      "text" writes repr() (shortest round-trip text, for the audit log); "number" keeps a finite
      float (numpy's too) as a JSON number.
    - Anything else (bytes, sets, objects) and non-str keys raise NotPlain.
    """
    kind = type(value)
    # exact-type fast paths first: this runs on every answer and every audit record
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is Decimal:
        if not value.is_finite():
            raise NotPlain(f"Decimal {value} is not finite")
        return str(value)
    if kind is dict or kind is FrozenMap:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise NotPlain(f"object key {key!r} is not a string")
            out[key] = item if type(item) in _AS_IS else plain(item, floats)
        return out
    if kind is list or kind is tuple:
        return [item if type(item) in _AS_IS else plain(item, floats) for item in value]
    if kind is float:  # a trace's timings, a raw model output: past the abstract-class checks below
        return _float(value, floats)
    if hasattr(kind, "__dataclass_fields__") and not isinstance(value, type):
        return (_plainers.get(kind) or _fields_plainer(kind))(value, floats)
    if isinstance(value, Enum):  # before str and int: a StrEnum member becomes its plain value
        return plain(value.value, floats)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, Decimal):
        return plain(Decimal(value), floats)
    if isinstance(value, numbers.Real):
        return _float(float(value), floats)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise NotPlain(f"datetime {value.isoformat()} has no time zone")
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return plain(dict(value), floats)
    if isinstance(value, (list, tuple)):
        return [plain(item, floats) for item in value]
    raise NotPlain(f"{kind.__name__} has no JSON form")


def _float(number: float, floats: FloatRule) -> float | str:
    if floats == "text":
        return repr(number)
    if floats == "refuse":
        raise NotPlain(f"float {number!r} is not allowed here; use Decimal or a string")
    if not math.isfinite(number):
        raise NotPlain(f"float {number!r} has no JSON form")
    return number
