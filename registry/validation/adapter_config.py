"""``adapter_config.json``: reading, checking, and PEFT's module-pattern rules.

``rank_pattern`` / ``alpha_pattern`` keys and a string ``target_modules`` are
regular expressions matched against module names exactly as PEFT matches them:
a pattern key selects a module when ``re.match(rf"(.*\\.)?({key})$", name)``
(the first matching key wins, in the config's order); a string
``target_modules`` must ``re.fullmatch`` the name; a list entry matches the
name itself or its last dotted components; ``all-linear`` selects any module.

The patterns come from the uploader, so they are matched with the ``regex``
module (the engine transformers uses; same syntax as ``re`` for these patterns)
under a time limit: a pattern with catastrophic backtracking is refused
instead of holding a worker. They must also compile under ``re``, as PEFT
compiles them. All the pattern work of one adapter (compiling every key,
matching every module) shares one ``PatternBudget``: many patterns times many
modules cannot add up to more than ``PATTERN_BUDGET_S`` of CPU either. A list
``target_modules`` is matched by set lookups of the module name's dotted
suffixes, not by a scan of the list.

``target_modules`` is returned sorted when it is a list (PEFT keeps it as a set,
so the order in adapter_config.json carries no meaning).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Collection, Mapping
from typing import Any

import regex

from registry.config import Settings
from registry.errors import InvalidAdapter, TooLarge, UnsupportedAdapterType
from registry.validation.manifest import BlobReader, ManifestEntry
from registry.validation.safetensors_header import read_exact

__all__ = [
    "ADAPTER_CONFIG",
    "ALL_LINEAR",
    "PATTERN_BUDGET_S",
    "PATTERN_TIMEOUT_S",
    "PatternBudget",
    "SAVE_HINT",
    "SUPPORTED_PEFT_TYPES",
    "is_targeted",
    "load_adapter_config",
    "module_rank",
]

ADAPTER_CONFIG = "adapter_config.json"
SUPPORTED_PEFT_TYPES = ("LORA",)
ALL_LINEAR = "all-linear"
PATTERN_TIMEOUT_S = 0.5
"""Time limit of one pattern match against one module name."""
PATTERN_BUDGET_S = 2.0
"""Time all the pattern work of one adapter may take; real adapters need milliseconds."""
SAVE_HINT = "save the adapter with PEFT's `model.save_pretrained(dir)`"


class PatternBudget:
    """The time left for one adapter's pattern work; ``InvalidAdapter`` once it is spent."""

    def __init__(self, seconds: float = PATTERN_BUDGET_S) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def remaining(self, field: str) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise InvalidAdapter(
                f"{ADAPTER_CONFIG}: checking its {field} patterns against the adapter's modules "
                f"takes more than {self.seconds:g} s; use fewer or simpler patterns (PEFT matches "
                "every pattern against every module name, so it would be slow to load too)",
                field=field,
            )
        return left


def _matches(
    pattern: str, name: str, field: str, *, full: bool, budget: PatternBudget | None = None
) -> bool:
    """``re.fullmatch`` (or ``re.match``) under a time limit (``InvalidAdapter`` past it)."""
    match = regex.fullmatch if full else regex.match
    timeout = (
        PATTERN_TIMEOUT_S if budget is None else min(PATTERN_TIMEOUT_S, budget.remaining(field))
    )
    try:
        return match(pattern, name, timeout=timeout) is not None
    except TimeoutError:
        raise InvalidAdapter(
            f"{ADAPTER_CONFIG}: the {field} pattern {pattern[:200]!r} takes too long to match "
            f"the module name {name[:200]!r}; simplify it (list module names, or avoid nested "
            f"repeats)",
            field=field,
        ) from None
    except regex.error as exc:
        raise InvalidAdapter(
            f"{ADAPTER_CONFIG}: the {field} pattern {pattern[:200]!r} is not a valid regular "
            f"expression ({exc})",
            field=field,
        ) from None


def module_rank(
    module: str, r: int, rank_pattern: Mapping[str, int], budget: PatternBudget | None = None
) -> tuple[int, str | None]:
    """The rank PEFT gives ``module`` and the ``rank_pattern`` key it came from (or None)."""
    for key in rank_pattern:
        if _matches(rf"(.*\.)?({key})$", module, "rank_pattern", full=False, budget=budget):
            return rank_pattern[key], key
    return r, None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _load_config(entry: ManifestEntry, read: BlobReader, settings: Settings) -> dict[str, Any]:
    if entry.size > settings.max_config_bytes:
        raise TooLarge(
            f"{ADAPTER_CONFIG} is {entry.size} bytes, over the limit of "
            f"{settings.max_config_bytes} (LORRY_MAX_CONFIG_BYTES)",
            path=ADAPTER_CONFIG,
        )
    raw = read_exact(read, entry.sha256, 0, entry.size, what=ADAPTER_CONFIG)
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidAdapter(
            f"{ADAPTER_CONFIG} is not valid UTF-8 JSON ({exc}); {SAVE_HINT}",
            path=ADAPTER_CONFIG,
        ) from None
    if not isinstance(config, dict):
        raise InvalidAdapter(f"{ADAPTER_CONFIG} must hold a JSON object; {SAVE_HINT}")
    return config


def _bad_field(field: str, value: object, expected: str) -> InvalidAdapter:
    shown = "is missing" if value is None else f"is {value!r}"
    return InvalidAdapter(
        f"{ADAPTER_CONFIG}: {field} {shown}; it must be {expected} (as peft.LoraConfig writes it)",
        field=field,
    )


def _check_pattern(
    field: str, pattern: object, valid: Any, expected: str, budget: PatternBudget
) -> dict[str, Any]:
    if pattern is None:
        return {}
    if not isinstance(pattern, dict):
        raise _bad_field(field, pattern, "an object mapping module-name patterns to values")
    for key, value in pattern.items():
        budget.remaining(field)
        if not valid(value):
            raise _bad_field(f"{field}[{key!r}]", value, expected)
        try:
            re.compile(rf"(.*\.)?({key})$")
        except re.error as exc:
            raise InvalidAdapter(
                f"{ADAPTER_CONFIG}: {field} key {key!r} is not a valid regular expression "
                f"({exc}); PEFT matches these keys as regular expressions against module names",
                field=field,
            ) from None
    return dict(pattern)


def _check_config(config: dict[str, Any], budget: PatternBudget) -> dict[str, Any]:
    peft_type = config.get("peft_type")
    if peft_type is None:
        raise InvalidAdapter(
            f"{ADAPTER_CONFIG} has no peft_type, so it is not a PEFT adapter config; {SAVE_HINT}",
            field="peft_type",
        )
    if peft_type not in SUPPORTED_PEFT_TYPES:
        raise UnsupportedAdapterType(
            f"{ADAPTER_CONFIG}: peft_type {peft_type!r} is not supported; Lorry accepts LoRA "
            f"adapters only (peft_type {', '.join(SUPPORTED_PEFT_TYPES)}): train with "
            f"peft.LoraConfig",
            peft_type=peft_type,
        )
    r = config.get("r")
    if not _is_positive_int(r):
        raise _bad_field("r", r, "a positive integer (the LoRA rank)")
    alpha = config.get("lora_alpha")
    if not _is_number(alpha):
        raise _bad_field("lora_alpha", alpha, "a number")
    targets = config.get("target_modules")
    if not (
        (isinstance(targets, str) and targets)
        or (
            isinstance(targets, list) and targets and all(isinstance(t, str) and t for t in targets)
        )
    ):
        raise _bad_field("target_modules", targets, "a non-empty list of module names or a regex")
    if isinstance(targets, str):
        try:
            re.compile(targets)
        except re.error as exc:
            raise InvalidAdapter(
                f"{ADAPTER_CONFIG}: target_modules {targets!r} is not a valid regular "
                f"expression ({exc}); a string target_modules must match whole module names",
                field="target_modules",
            ) from None
    for flag in ("use_rslora", "use_dora"):
        if config.get(flag) is not None and not isinstance(config[flag], bool):
            raise _bad_field(flag, config[flag], "true or false")
    base = config.get("base_model_name_or_path")
    if base is not None and not isinstance(base, str):
        raise _bad_field("base_model_name_or_path", base, "a string")
    for optional in ("task_type", "bias"):
        if config.get(optional) is not None and not isinstance(config[optional], str):
            raise _bad_field(optional, config[optional], "a string")
    return {
        "peft_type": peft_type,
        "r": r,
        "lora_alpha": alpha,
        "use_rslora": bool(config.get("use_rslora", False)),
        "target_modules": sorted(targets) if isinstance(targets, list) else targets,
        "base_model_name_or_path": base,
        "rank_pattern": _check_pattern(
            "rank_pattern",
            config.get("rank_pattern"),
            _is_positive_int,
            "a positive integer",
            budget,
        ),
        "alpha_pattern": _check_pattern(
            "alpha_pattern", config.get("alpha_pattern"), _is_number, "a number", budget
        ),
        "task_type": config.get("task_type"),
        "use_dora": config.get("use_dora"),
        "bias": config.get("bias"),
    }


def is_targeted(
    module: str, targets: str | Collection[str], budget: PatternBudget | None = None
) -> bool:
    """Whether ``target_modules`` selects ``module`` (PEFT's rule).

    A list entry selects the module it names or whose name ends in ``.<entry>``: the
    module's dotted suffixes are looked up in a set (pass a set to do it in O(depth)).
    """
    if isinstance(targets, str):
        return targets == ALL_LINEAR or _matches(
            targets, module, "target_modules", full=True, budget=budget
        )
    names = targets if isinstance(targets, set | frozenset) else set(targets)
    if module in names:
        return True
    dot = module.find(".")
    while dot != -1:
        if module[dot + 1 :] in names:
            return True
        dot = module.find(".", dot + 1)
    return False


def load_adapter_config(
    entry: ManifestEntry,
    read: BlobReader,
    settings: Settings,
    budget: PatternBudget | None = None,
) -> dict[str, Any]:
    """Read and check adapter_config.json; the fields that ``AdapterMetadata`` records."""
    return _check_config(_load_config(entry, read, settings), budget or PatternBudget())
