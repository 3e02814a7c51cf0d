"""The evidence a protected-alias rule may require, as text and as stored data.

- a threshold: ``TASK/METRIC[,FILTER] OP NUMBER`` with OP one of ``>=``, ``>``, ``<=``, ``<``
  (``sql_eval/exact_match >= 0.80``, ``gsm8k/exact_match,strict-match > 0.3``);
- no regression: ``TASK/METRIC[,FILTER]``.

The task is everything before the last ``/`` (a dataset id such as ``cais/hle`` may hold
one). Without a filter, a result of any filter matches (the newest one counts).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from typing import Any

from registry.errors import InvalidInput

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
_THRESHOLD = re.compile(r"^\s*(?P<name>[^<>=\s]+)\s*(?P<op>>=|<=|>|<)\s*(?P<value>\S+)\s*$")
_EXAMPLE = "e.g. 'sql_eval/exact_match >= 0.80'"


def _metric(text: str, field: str) -> dict[str, Any]:
    name, comma, filter_name = text.strip().partition(",")
    task, slash, metric = name.rpartition("/")
    if not slash or not task or not metric or (comma and not filter_name):
        raise InvalidInput(
            f"{field}: {text!r} does not name a metric; write TASK/METRIC[,FILTER] ({_EXAMPLE})",
            field=field,
        )
    return {"task": task, "metric": metric, "filter": filter_name or None}


def parse_requirement(text: str, field: str = "requirements") -> dict[str, Any]:
    found = _THRESHOLD.match(text)
    if found is None:
        raise InvalidInput(
            f"{field}: {text!r} is not a requirement; write TASK/METRIC OP NUMBER with OP one of "
            f">=, >, <=, < ({_EXAMPLE})",
            field=field,
        )
    try:
        threshold = float(found["value"])
    except ValueError:
        threshold = math.nan
    if not math.isfinite(threshold):
        raise InvalidInput(
            f"{field}: the threshold of {text!r} must be a finite number ({_EXAMPLE})",
            field=field,
        )
    return {**_metric(found["name"], field), "op": found["op"], "threshold": threshold}


def parse_no_regression(text: str, field: str = "no_regression") -> dict[str, Any]:
    return _metric(text, field)


def metric_name(spec: dict[str, Any]) -> str:
    name = f"{spec['task']}/{spec['metric']}"
    return f"{name},{spec['filter']}" if spec.get("filter") else name


def describe_requirement(spec: dict[str, Any]) -> str:
    return f"{metric_name(spec)} {spec['op']} {spec['threshold']:g}"
