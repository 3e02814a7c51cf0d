"""The job queue contract: Lorry's ``jobs`` table holds the state, a queue moves ids.

Services submit through this protocol; ``registry.jobs`` implements it (threads on
SQLite, procrastinate on PostgreSQL) and is never imported by services.
"""

from __future__ import annotations

from typing import Protocol

QUEUES = ("gpu", "cpu", "any")
"""``gpu``: the job asks for CUDA; ``cpu``: it asks for the CPU; ``any``: either will do."""


def queues_for_worker(*, gpu: bool, cpu: bool) -> list[str]:
    """The queues a worker takes: ``--gpu`` adds ``gpu``, ``--cpu`` adds ``cpu``, both all."""
    if gpu and not cpu:
        return ["gpu", "any"]
    if cpu and not gpu:
        return ["cpu", "any"]
    return list(QUEUES)


class JobQueue(Protocol):
    """Delivers job ids to the processes that run them.

    Contract: ``enqueue`` is called after the job's row is committed as ``queued``;
    a delivery may repeat (the runner claims the row, so a job runs once), and a
    lost delivery is repaired by ``start`` (queued rows are delivered again) and by
    the stale-job sweep. ``start`` and ``stop`` bracket the process's lifetime.
    """

    def enqueue(self, job_id: str, queue: str) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...
