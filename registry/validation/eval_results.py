"""Evaluation documents: read lm-evaluation-harness output, plain documents, ``model-index``
and ``.eval_results`` files into flat results; write results back as ``model-index``.

Pure functions. Every refusal is an ``InvalidEvalResults`` whose ``field`` names the part
of the document at fault (``results.sql_eval["exact_match,none"]``), so a 422 says where.

- **lm-evaluation-harness** (``results_*.json`` as ``lm_eval --output_path`` writes it):
  ``results`` (and ``groups``) map a task to ``"<metric>,<filter>"`` values and
  ``"<metric>_stderr,<filter>"`` errors (``"N/A"`` when it computed none); ``n-shot``,
  ``higher_is_better``, ``configs`` (dataset path, split, revision) fill in the rest.
- **plain**: ``{"<task>": {"<metric>": value}}``, a metric as a number or
  ``{"value", "stderr", "higher_is_better"}``, ``"<metric>_stderr"`` beside it, and
  ``dataset``, ``split``, ``revision``, ``notes``, ``n_shot`` per task or for all.
- **model-index** (a card's front matter, the Hub's format):
  ``model-index[].results[].{task, dataset, metrics[].{type, value, args}}``; the task is
  the dataset's ``type`` (its id). Values that are not numbers (``"20.0 ± 1.2"``, which the
  Hub allows) are skipped with a note, not refused.
- **.eval_results** (Hub-style files ``.eval_results/*.yaml``): a list of
  ``{dataset: {id, task_id}, value, notes}``; the task is the dataset id, the metric its
  ``task_id`` (``default`` when absent).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from registry.errors import InvalidEvalResults

LM_EVAL = "lm-eval"
PLAIN = "plain"
MODEL_INDEX = "model-index"
EVAL_RESULTS = "eval-results"
SOURCES = (LM_EVAL, PLAIN, MODEL_INDEX, EVAL_RESULTS)
DEFAULT_FILTER = "none"
MAX_RESULTS = 10_000
"""Results one document may hold (lm-eval's largest suites hold a few thousand)."""
MAX_NAME = 200
_PLAIN_TEXT_KEYS = ("dataset", "split", "revision", "notes")
_LM_EVAL_MARKERS = ("versions", "configs", "config", "n-shot", "higher_is_better")


@dataclass(frozen=True)
class ParsedResult:
    task: str
    metric: str
    value: float
    filter: str = DEFAULT_FILTER
    stderr: float | None = None
    n_shot: int | None = None
    higher_is_better: bool | None = None
    dataset: str | None = None
    split: str | None = None
    revision: str | None = None
    notes: str | None = None


@dataclass
class ParsedDocument:
    source: str
    results: list[ParsedResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """What was left out and why (card values that are not numbers)."""


def _refuse(where: str, problem: str) -> InvalidEvalResults:
    return InvalidEvalResults(f"{where}: {problem}", field=where)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _refuse(where, f"must be a number, found {type(value).__name__} {value!r:.60}")
    number = float(value)
    if not math.isfinite(number):
        raise _refuse(where, f"must be a finite number, found {value}")
    return number


def _stderr(value: Any, where: str) -> float | None:
    """A standard error: ``None`` for ``"N/A"`` (lm-eval without bootstrap) or null."""
    if value is None or (isinstance(value, str) and value.strip().upper() in ("N/A", "NA")):
        return None
    number = _number(value, where)
    if number < 0:
        raise _refuse(where, f"a standard error cannot be negative, found {number}")
    return number


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _refuse(where, f"must be a non-empty name, found {value!r:.60}")
    if len(value) > MAX_NAME or any(ord(c) < 32 for c in value):
        raise _refuse(where, f"must be at most {MAX_NAME} printable characters")
    return value.strip()


def _text(value: Any, where: str, limit: int = 512) -> str | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _refuse(where, f"must be text, found {type(value).__name__}")
    if len(value) > limit:
        raise _refuse(where, f"must be at most {limit} characters")
    return value


def _n_shot(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _refuse(where, f"must be a whole number of shots, found {value!r:.60}")
    return value


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _refuse(where, f"must be an object, found {type(value).__name__}")
    return value


def _checked(parsed: ParsedDocument, where: str) -> ParsedDocument:
    if not parsed.results:
        raise _refuse(where, "holds no numeric result; nothing to record")
    if len(parsed.results) > MAX_RESULTS:
        raise _refuse(where, f"holds {len(parsed.results)} results, more than {MAX_RESULTS}")
    return parsed


def parse_document(document: Any) -> ParsedDocument:
    """The results of a document sent to ``POST .../evals``, its format recognised by shape."""
    if isinstance(document, list):
        return parse_eval_results(document, "document")
    body = _mapping(document, "document")
    if isinstance(body.get("results"), Mapping) and any(k in body for k in _LM_EVAL_MARKERS):
        return parse_lm_eval(body)
    if "model-index" in body:
        return _checked(parse_model_index(body, strict_values=True), "model-index")
    return parse_plain(body)


def parse_as(document: Any, source: str) -> ParsedDocument:
    """``document`` read as ``source`` says (an evaluation job knows what it wrote)."""
    if source == LM_EVAL:
        return parse_lm_eval(_mapping(document, "document"))
    if source == PLAIN:
        return parse_plain(_mapping(document, "document"))
    if source == MODEL_INDEX:
        body = _mapping(document, "document")
        return _checked(parse_model_index(body, strict_values=True), "model-index")
    if source == EVAL_RESULTS:
        return parse_eval_results(document, "document")
    raise ValueError(f"unknown evaluation source {source!r}; one of {', '.join(SOURCES)}")


# -- lm-evaluation-harness ---------------------------------------------------------------------


def _lm_eval_task(
    task: str, values: Mapping[str, Any], body: Mapping[str, Any], section: str
) -> Iterable[ParsedResult]:
    where = f"{section}.{task}"
    shots = body.get("n-shot")
    n_shot = shots.get(task) if isinstance(shots, Mapping) else None
    n_shot = n_shot if isinstance(n_shot, int) and not isinstance(n_shot, bool) else None
    better = body.get("higher_is_better")
    better_of = better.get(task) if isinstance(better, Mapping) else None
    configs = body.get("configs")
    config = configs.get(task) if isinstance(configs, Mapping) else None
    config = config if isinstance(config, Mapping) else {}
    dataset = config.get("dataset_path")
    split = config.get("test_split") or config.get("validation_split")
    revision = (
        (config.get("dataset_kwargs") or {}).get("revision")
        if isinstance(config.get("dataset_kwargs"), Mapping)
        else None
    )
    for key, value in values.items():
        metric, comma, filter_name = str(key).partition(",")
        if not comma or metric.endswith("_stderr"):
            continue  # alias, sample_len, samples: not metrics; stderrs go with theirs
        if isinstance(value, str) and value.strip().upper() == "N/A":
            continue
        here = f'{where}["{key}"]'
        higher = better_of.get(metric) if isinstance(better_of, Mapping) else None
        yield ParsedResult(
            task=_name(task, where),
            metric=_name(metric, here),
            filter=_name(filter_name or DEFAULT_FILTER, here),
            value=_number(value, here),
            stderr=_stderr(
                values.get(f"{metric}_stderr,{filter_name}"),
                f'{where}["{metric}_stderr,{filter_name}"]',
            ),
            n_shot=n_shot,
            higher_is_better=higher if isinstance(higher, bool) else None,
            dataset=_text(dataset, f"configs.{task}.dataset_path"),
            split=_text(split, f"configs.{task}.test_split", MAX_NAME),
            revision=_text(revision, f"configs.{task}.dataset_kwargs.revision", MAX_NAME),
        )


def parse_lm_eval(body: Mapping[str, Any]) -> ParsedDocument:
    """lm-evaluation-harness's results JSON: every task of ``results``, then the groups
    of ``groups`` that ``results`` does not already list."""
    parsed = ParsedDocument(source=LM_EVAL)
    results = _mapping(body.get("results"), "results")
    groups = body.get("groups")
    sections: list[tuple[str, Mapping[str, Any]]] = [("results", results)]
    if isinstance(groups, Mapping):
        sections.append(("groups", {k: v for k, v in groups.items() if k not in results}))
    for section, tasks in sections:
        for task, values in tasks.items():
            metrics = _mapping(values, f"{section}.{task}")
            parsed.results.extend(_lm_eval_task(str(task), metrics, body, section))
    return _checked(parsed, "results")


# -- plain documents ---------------------------------------------------------------------------


def _plain_metric(
    task: str, metric: str, value: Any, stderr: Any, shared: dict[str, Any]
) -> ParsedResult:
    where = f"{task}.{metric}"
    higher: Any = None
    if isinstance(value, Mapping):
        unknown = set(value) - {"value", "stderr", "higher_is_better", "filter"}
        if unknown:
            raise _refuse(where, f"unknown keys {sorted(unknown)}; use value, stderr, filter")
        stderr = value.get("stderr", stderr)
        higher = value.get("higher_is_better")
        if higher is not None and not isinstance(higher, bool):
            raise _refuse(f"{where}.higher_is_better", "must be true or false")
        filter_name = _name(value.get("filter", DEFAULT_FILTER), f"{where}.filter")
        value = value.get("value")
        where = f"{where}.value"
    else:
        filter_name = DEFAULT_FILTER
    return ParsedResult(
        task=_name(task, task),
        metric=_name(metric, where),
        filter=filter_name,
        value=_number(value, where),
        stderr=_stderr(stderr, f"{task}.{metric}_stderr"),
        higher_is_better=higher,
        **shared,
    )


def _plain_shared(
    values: Mapping[str, Any], where: str, inherited: dict[str, Any]
) -> dict[str, Any]:
    shared = dict(inherited)
    for key in _PLAIN_TEXT_KEYS:
        if key in values:
            limit = 10_000 if key == "notes" else (512 if key == "dataset" else MAX_NAME)
            shared[key] = _text(values[key], f"{where}{key}", limit)
    if "n_shot" in values:
        shared["n_shot"] = _n_shot(values["n_shot"], f"{where}n_shot")
    return shared


def parse_plain(body: Mapping[str, Any]) -> ParsedDocument:
    parsed = ParsedDocument(source=PLAIN)
    shared = _plain_shared(body, "", {})
    for task, values in body.items():
        if task in _PLAIN_TEXT_KEYS or task == "n_shot":
            continue
        if not isinstance(values, Mapping):
            raise _refuse(
                str(task),
                f'expected {{"<metric>": value}} for task {task!r}, found '
                f'{type(values).__name__}; a plain document is {{"task": {{"metric": value}}}}',
            )
        task_shared = _plain_shared(values, f"{task}.", shared)
        for metric, value in values.items():
            if metric in _PLAIN_TEXT_KEYS or metric == "n_shot":
                continue
            if metric.endswith("_stderr"):
                if metric.removesuffix("_stderr") not in values:
                    raise _refuse(f"{task}.{metric}", "a standard error without its metric")
                continue
            stderr = values.get(f"{metric}_stderr")
            parsed.results.append(_plain_metric(str(task), metric, value, stderr, task_shared))
    return _checked(parsed, "document")


# -- model-index and .eval_results ------------------------------------------------------------


def _sequence(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise _refuse(where, f"must be a list, found {type(value).__name__}")
    return value


def _optional_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _index_metric(
    metric: Any, where: str, task: str, dataset: Mapping[str, Any], strict: bool
) -> ParsedResult | str:
    entry = _mapping(metric, where)
    value = entry.get("value")
    args = _optional_mapping(entry.get("args"))
    dataset_args = _optional_mapping(dataset.get("args"))
    metric_type = _name(entry.get("type"), f"{where}.type")
    if not strict and (isinstance(value, bool) or not isinstance(value, int | float)):
        return f"{where}.value: {value!r:.40} is not a number; skipped"
    name = dataset.get("name")
    higher = args.get("higher_is_better")
    return ParsedResult(
        task=task,
        metric=metric_type,
        filter=_name(args.get("filter", DEFAULT_FILTER), f"{where}.args.filter"),
        value=_number(value, f"{where}.value"),
        stderr=_stderr(args.get("stderr"), f"{where}.args.stderr"),
        n_shot=_n_shot(dataset_args.get("num_few_shot"), f"{where}.dataset.args.num_few_shot"),
        higher_is_better=higher if isinstance(higher, bool) else None,
        dataset=_text(name if name != task else None, f"{where}.dataset.name"),
        split=_text(dataset.get("split"), f"{where}.dataset.split", MAX_NAME),
        revision=_text(dataset.get("revision"), f"{where}.dataset.revision", MAX_NAME),
    )


def parse_model_index(card: Mapping[str, Any], *, strict_values: bool = False) -> ParsedDocument:
    """The results of a card's ``model-index`` (empty when it has none)."""
    parsed = ParsedDocument(source=MODEL_INDEX)
    if card.get("model-index") is None:
        return parsed
    for i, model in enumerate(_sequence(card["model-index"], "model-index")):
        where = f"model-index[{i}]"
        results = _mapping(model, where).get("results") or []
        for j, result in enumerate(_sequence(results, f"{where}.results")):
            here = f"{where}.results[{j}]"
            entry = _mapping(result, here)
            dataset = _mapping(entry.get("dataset") or {}, f"{here}.dataset")
            task_info = _optional_mapping(entry.get("task"))
            task = _name(
                dataset.get("type") or dataset.get("name") or task_info.get("type"),
                f"{here}.dataset.type",
            )
            for k, metric in enumerate(_sequence(entry.get("metrics"), f"{here}.metrics")):
                found = _index_metric(metric, f"{here}.metrics[{k}]", task, dataset, strict_values)
                if isinstance(found, str):
                    parsed.skipped.append(found)
                else:
                    parsed.results.append(found)
    return parsed


def parse_eval_results(entries: Any, path: str) -> ParsedDocument:
    """A Hub-style ``.eval_results/*.yaml`` file (a list of entries, or one entry)."""
    parsed = ParsedDocument(source=EVAL_RESULTS)
    items = [entries] if isinstance(entries, Mapping) else _sequence(entries, path)
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        entry = _mapping(item, where)
        dataset = _mapping(entry.get("dataset"), f"{where}.dataset")
        parsed.results.append(
            ParsedResult(
                task=_name(dataset.get("id"), f"{where}.dataset.id"),
                metric=_name(dataset.get("task_id") or "default", f"{where}.dataset.task_id"),
                value=_number(entry.get("value"), f"{where}.value"),
                stderr=_stderr(entry.get("stderr"), f"{where}.stderr"),
                dataset=_text(dataset.get("id"), f"{where}.dataset.id"),
                revision=_text(dataset.get("revision"), f"{where}.dataset.revision", MAX_NAME),
                notes=_text(entry.get("notes"), f"{where}.notes", 10_000),
            )
        )
    return _checked(parsed, path)


def model_index(name: str, results: Iterable[ParsedResult]) -> list[dict[str, Any]]:
    """``model-index`` front matter for ``results`` (one entry per task and dataset), in the
    shape ``huggingface_hub.ModelCardData`` reads as ``eval_results``; ``parse_model_index``
    reads it back to the same results."""
    groups: dict[tuple[Any, ...], list[ParsedResult]] = {}
    for result in results:
        key = (result.task, result.dataset, result.split, result.revision, result.n_shot)
        groups.setdefault(key, []).append(result)
    entries: list[dict[str, Any]] = []
    for (task, dataset, split, revision, n_shot), members in groups.items():
        described: dict[str, Any] = {"name": dataset or task, "type": task}
        if split:
            described["split"] = split
        if revision:
            described["revision"] = revision
        if n_shot is not None:
            described["args"] = {"num_few_shot": n_shot}
        metrics = []
        for member in members:
            metric: dict[str, Any] = {"type": member.metric, "value": member.value}
            args: dict[str, Any] = {}
            if member.filter != DEFAULT_FILTER:
                args["filter"] = member.filter
                metric["name"] = f"{member.metric} ({member.filter})"
            if member.stderr is not None:
                args["stderr"] = member.stderr
            if member.higher_is_better is not None:
                args["higher_is_better"] = member.higher_is_better
            if args:
                metric["args"] = args
            metrics.append(metric)
        entries.append(
            {"task": {"type": "text-generation"}, "dataset": described, "metrics": metrics}
        )
    return [{"name": name, "results": entries}] if entries else []
