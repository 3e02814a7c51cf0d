"""What a job kind is: its typed spec, its audit events, and how a worker runs it.

A kind is one module under ``registry.services.job_kinds`` holding a ``JobKind``
subclass, plus one line in ``JOB_KINDS``. ``create_job`` (``registry.services.jobs``)
records and enqueues a job of any kind; the runner (``registry.jobs.runner``) claims
it, calls the kind's ``execute`` with a ``JobContext`` and records the outcome.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from pydantic import BaseModel
from sqlalchemy import Engine
from sqlmodel import Session

from registry.config import Settings
from registry.services.job_queue import JobQueue
from registry.storage.base import BlobStore
from registry.tables import Job

__all__ = ["JobContext", "JobEvents", "JobKind", "JobOutcome", "StepReport", "canonical_key"]

StepReport = Callable[[str | None, int, int], None]
"""``(module or tensor, done, total)`` after each step; raises to stop the job (it was
cancelled, or the process is shutting down): let that exception propagate."""


@dataclass(frozen=True)
class JobContext:
    """What a running job may use: the database, the blob store, the settings, the
    progress callback that also stops it, and the queue that delivers the jobs it starts
    (``None``: they wait as queued rows for the next delivery of queued jobs)."""

    engine: Engine
    store: BlobStore
    settings: Settings
    report: StepReport
    queue: JobQueue | None = None


class JobOutcome(NamedTuple):
    """A succeeded job's result: the version it wrote to, that version's digest (hex)
    and a note for the job's log."""

    version: int
    digest: str
    note: str


@dataclass(frozen=True)
class JobEvents:
    """The audit actions of one kind's jobs."""

    submit: str
    succeed: str
    fail: str
    cancel: str

    def action(self, verb: str) -> str:
        value: str = getattr(self, verb)
        return value


def canonical_key(document: dict[str, Any]) -> str:
    """sha256 of a document as canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class JobKind(ABC):
    """One kind of job. Subclasses set ``name`` and ``events`` and implement the spec
    model, the idempotency key, the output kind and ``execute``."""

    name: ClassVar[str]
    """The value of ``jobs.kind`` (and of ``kind`` in the API)."""
    events: ClassVar[JobEvents]

    @abstractmethod
    def spec_model(self) -> type[BaseModel]:
        """The pydantic model of this kind's spec (``jobs.spec``)."""

    def dump_spec(self, spec: BaseModel) -> dict[str, Any]:
        """The spec as the JSON document stored in ``jobs.spec``."""
        model = self.spec_model()
        if not isinstance(spec, model):
            raise TypeError(f"a {self.name} job's spec is a {model.__name__}, not {spec!r}")
        document: dict[str, Any] = spec.model_dump(mode="json")
        return document

    def parse_spec(self, document: dict[str, Any]) -> BaseModel:
        """The stored spec, validated by the kind's model."""
        return self.spec_model().model_validate(document)

    @abstractmethod
    def idempotency_key(self, spec: dict[str, Any], target: str) -> str:
        """Equal keys, equal results: a submission with the key of an active job reuses it."""

    def queue_for(self, spec: BaseModel) -> str:
        """The queue a job of this spec goes to (``registry.services.job_queue.QUEUES``)."""
        return "any"

    @abstractmethod
    def output_kind(self, spec: dict[str, Any]) -> str:
        """What the job writes (``output_kind`` in the API): ``adapter``, ``model``, ``gguf``."""

    def describe(self, session: Session, job: Job) -> dict[str, Any]:
        """Fields of the job's ``JobOut`` particular to this kind (none by default)."""
        return {}

    def succeed_details(self, job: Job) -> dict[str, Any]:
        """Fields added to the ``after`` of the kind's succeed event (none by default)."""
        return {}

    def after_success(self, context: JobContext, job: Job, outcome: JobOutcome) -> list[str]:
        """Work that follows a success once it is recorded (a composition's evaluations);
        returns lines for the job's log (none by default)."""
        return []

    @abstractmethod
    def execute(self, context: JobContext, job: Job) -> JobOutcome:
        """Do the job's work (the runner has claimed it) and return its outcome; raise a
        ``LorryError`` or ``ComposerError`` to fail it with that error's code."""
