"""The kinds of jobs: one module each, one line in ``JOB_KINDS``.

A kind holds its typed spec, its audit event names and its executor
(``registry.services.job_kinds.base.JobKind``). ``create_job`` records a job of any
kind; the runner (``registry.jobs``) dispatches on ``jobs.kind`` through this table.
"""

from __future__ import annotations

from registry.services.job_kinds.base import JobKind
from registry.services.job_kinds.compose import ComposeKind
from registry.services.job_kinds.eval import EvalKind
from registry.services.job_kinds.export import ExportKind

__all__ = ["JOB_KINDS", "JobKind", "job_kind"]

JOB_KINDS: dict[str, JobKind] = {
    "compose": ComposeKind(),
    "export": ExportKind(),
    "eval": EvalKind(),
}


def job_kind(name: str) -> JobKind:
    """The kind of a job row; a row of a kind this process does not know is a bug."""
    try:
        return JOB_KINDS[name]
    except KeyError:
        raise KeyError(f"unknown job kind {name!r}; known: {', '.join(JOB_KINDS)}") from None
