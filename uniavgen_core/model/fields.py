"""Configuration fields checked against their types and declared ranges, in one place.

A dataclass field declares its limits with `ranged(default, ...)` (kept in the field's metadata); its
type is its annotation: int, float, bool, str, tuple or dict. `check_fields` checks a mapping of
values against both and returns them normalised (an integer is a valid float and becomes one, a list
becomes a tuple); `settle` does it for a dataclass instance from its __post_init__. A wrong value
raises FieldError naming the field, the value and what it must be, e.g.

    [optim] batch_size = "16": must be an integer from 1 to 65536

so a hand-edited config or a corrupt embedded configuration gets one line instead of an error deep
inside torch. Fields of other types (nested configuration sections) are left to their own class.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

RULE = "uniavgen_rule"       # the metadata key of a field's Rule


class FieldError(ValueError):
    """A configuration value of the wrong type or out of its range; `field` is the field's name."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Rule:
    """The limits of one field. low/high bound numbers (for a tuple or a dict: its items); `above` and
    `below` make them exclusive. choices: the allowed strings (for a dict: the allowed keys). pattern: a
    regular expression a string matches whole, described by `what`. length/most: a tuple's exact or
    largest length. item: the type of a tuple's or dict's items, "int" or "float"."""
    low: float | None = None
    high: float | None = None
    above: bool = False
    below: bool = False
    choices: tuple = ()
    pattern: str | None = None
    what: str = ""
    length: int | None = None
    most: int | None = None
    item: str = "int"


def ranged(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, **limits) -> Any:
    """A dataclass field with a default (or a default factory) and the limits of a Rule."""
    return dataclasses.field(default=default, default_factory=factory, metadata={RULE: Rule(**limits)})


def _number(x) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _span(rule: Rule, integer: bool) -> str:
    low, high = rule.low, rule.high
    if low is not None and high is not None:
        if integer or not (rule.above or rule.below):
            return f" from {_number(low)} to {_number(high)}"
        return f" in {'(' if rule.above else '['}{_number(low)}, {_number(high)}{')' if rule.below else ']'}"
    if low is not None:
        return f" {'above' if rule.above else 'of at least'} {_number(low)}"
    if high is not None:
        return f" {'below' if rule.below else 'of at most'} {_number(high)}"
    return ""


def describe(kind: str, rule: Rule) -> str:
    """What a value of `kind` under `rule` must be: 'an integer from 1 to 8', 'one of "fp16", "fp32"'."""
    items = "integers" if rule.item == "int" else "finite numbers"
    if kind == "int":
        return "an integer" + _span(rule, True)
    if kind == "float":
        return "a finite number" + _span(rule, False)
    if kind == "bool":
        return "true or false"
    if kind == "str":
        if rule.choices:
            return "one of " + ", ".join(json.dumps(c) for c in rule.choices)
        return rule.what or "text"
    if kind == "tuple":
        count = f"{rule.length} " if rule.length is not None else f"at most {rule.most} " if rule.most else ""
        return f"a list of {count}{items}{_span(rule, rule.item == 'int')}"
    keys = f" of {', '.join(rule.choices)}" if rule.choices else ""
    return f"a table{keys} to {items}{_span(rule, rule.item == 'int')}"


def shown(value: Any) -> str:
    """A value as a config file writes it, cut to a readable length."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _within(x, rule: Rule) -> bool:
    if rule.low is not None and (x <= rule.low if rule.above else x < rule.low):
        return False
    return rule.high is None or not (x >= rule.high if rule.below else x > rule.high)


def _as_int(value, rule: Rule):
    if isinstance(value, int) and not isinstance(value, bool) and _within(value, rule):
        return value
    raise TypeError


def _as_float(value, rule: Rule):
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
            and _within(value, rule):
        return float(value)
    raise TypeError


def _as_bool(value, rule: Rule):
    if isinstance(value, bool):
        return value
    raise TypeError


def _as_str(value, rule: Rule):
    if not isinstance(value, str) or (rule.choices and value not in rule.choices) or (
            rule.pattern is not None and not re.fullmatch(rule.pattern, value)):
        raise TypeError
    return value


def _as_tuple(value, rule: Rule):
    if not isinstance(value, (list, tuple)) or (rule.length is not None and len(value) != rule.length) or (
            rule.most is not None and len(value) > rule.most):
        raise TypeError
    return tuple(_CHECKS[rule.item](v, rule) for v in value)


def _as_dict(value, rule: Rule):
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value) or (
            rule.choices and not set(value) <= set(rule.choices)):
        raise TypeError
    return {k: _CHECKS[rule.item](v, rule) for k, v in value.items()}


_CHECKS = {"int": _as_int, "float": _as_float, "bool": _as_bool, "str": _as_str, "tuple": _as_tuple,
           "dict": _as_dict}


def _kind(f: dataclasses.Field) -> str:
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")


def check_fields(cls, values: Mapping, label: str = "") -> dict:
    """The fields of dataclass `cls` present in `values`, checked and normalised; the first wrong one
    raises FieldError ("{label}{name} = {value}: must be ...")."""
    out = {}
    for f in dataclasses.fields(cls):
        kind = _kind(f)
        if f.name not in values or kind not in _CHECKS:
            out.update({f.name: values[f.name]} if f.name in values else {})
            continue
        rule = f.metadata.get(RULE, Rule())
        try:
            out[f.name] = _CHECKS[kind](values[f.name], rule)
        except (TypeError, ValueError):
            raise FieldError(f"{label}{f.name} = {shown(values[f.name])}: must be {describe(kind, rule)}",
                             f.name) from None
    return out


def settle(instance, label: str = "") -> None:
    """Check a (frozen) dataclass instance's fields and store their normalised values."""
    values = {f.name: getattr(instance, f.name) for f in dataclasses.fields(instance)}
    for name, value in check_fields(type(instance), values, label).items():
        object.__setattr__(instance, name, value)
