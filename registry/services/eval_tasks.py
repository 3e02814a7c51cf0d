"""Task definitions of evaluation jobs: lm-evaluation-harness YAML over local data files.

A job's tasks come from files uploaded with it (``lorry eval run --tasks-from DIR``) or
from the ``eval_tasks/`` folder of a registry version (``--tasks-from NS/NAME@REF``).
Either way they are checked here before a job exists: relative paths only, at least
one YAML file, the named tasks defined by one of them, the whole under
``LORRY_EVAL_TASKS_MAX_BYTES``. Reading the YAML needs no lm-eval: the names are the
``task``, ``group`` and ``tag`` keys, and lm-eval's own tags (``!function``) are read
as plain values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import Any

import yaml

from registry.errors import InvalidEvalTasks

TASKS_FOLDER = "eval_tasks/"
"""Where a registry version keeps task definitions (``--tasks-from NS/NAME@REF``)."""
_YAML_SUFFIXES = (".yaml", ".yml")
_NAME_KEYS = ("task", "group", "tag")


class _TaskLoader(yaml.SafeLoader):
    """A safe loader that reads any tag (``!function utils.process``) as its plain value."""


def _plain(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_TaskLoader.add_multi_constructor("!", _plain)


def check_task_path(path: str) -> str:
    """A task file's path as given, refused when absolute or leaving its folder."""
    pure = PurePosixPath(path)
    if not path or path.startswith("/") or "\\" in path or ".." in pure.parts:
        raise InvalidEvalTasks(
            f"task file path {path!r} is not a relative path inside the task folder; "
            "name files as the folder holds them (e.g. sql_eval.yaml, data/test.json)",
            field="task_files",
        )
    return pure.as_posix()


def _names_in(path: str, text: str) -> set[str]:
    try:
        document = yaml.load(text, Loader=_TaskLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise InvalidEvalTasks(
            f"{path} is not valid YAML ({exc}); fix the task definition", field="task_files"
        ) from None
    if not isinstance(document, dict):
        return set()
    names: set[str] = set()
    for key in _NAME_KEYS:
        value = document.get(key)
        values = value if isinstance(value, list) else [value]
        names.update(item for item in values if isinstance(item, str))
    return names


def defined_tasks(files: Mapping[str, str]) -> set[str]:
    """The task, group and tag names the YAML files among ``files`` (path -> text) define."""
    names: set[str] = set()
    for path, text in files.items():
        if path.lower().endswith(_YAML_SUFFIXES):
            names |= _names_in(path, text)
    return names


def check_tasks(tasks: Iterable[str], files: Mapping[str, str], where: str) -> list[str]:
    """``tasks`` (deduplicated, in order), each defined by a YAML file of ``files``."""
    wanted = list(dict.fromkeys(task.strip() for task in tasks if task.strip()))
    if not wanted:
        raise InvalidEvalTasks(
            "no task named; give the lm-eval task names to run (`--tasks sql_eval,arith`)",
            field="tasks",
        )
    if not any(path.lower().endswith(_YAML_SUFFIXES) for path in files):
        raise InvalidEvalTasks(
            f"{where} holds no task definition (*.yaml); lm-eval tasks are YAML files over "
            "local data (see the task format in docs/evaluations.md)",
            field="tasks_from",
        )
    defined = defined_tasks(files)
    unknown = [task for task in wanted if task not in defined]
    if unknown:
        raise InvalidEvalTasks(
            f"task(s) {', '.join(unknown)} not defined in {where}; it defines: "
            f"{', '.join(sorted(defined)) or 'no task'}",
            field="tasks",
        )
    return wanted


def check_size(total: int, limit: int) -> None:
    if total > limit:
        raise InvalidEvalTasks(
            f"the task files are {total:,} bytes, over this registry's limit of {limit:,} "
            "(LORRY_EVAL_TASKS_MAX_BYTES); push large suites into a registry version's "
            f"{TASKS_FOLDER} folder and use --tasks-from NAMESPACE/NAME@REF",
            field="task_files",
        )
