"""PostgreSQL restarted while threads keep calling the service: what each call got, and when."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from tests.support.postgres import RestartablePostgresCluster

Call = Callable[[str, int], tuple[int, str]]
"""One request of a kind of load: ``(kind, round) -> (status, body)``."""


@dataclass
class Outage:
    """What the load threads saw: ``(when, kind, status)`` per call, the bodies of the 5xx
    answers, and when the server answered again after its restart (``resumed``)."""

    statuses: list[tuple[float, str, int]] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)
    resumed: float = 0.0

    def codes(self) -> set[int]:
        return {code for _, _, code in self.statuses}


def restart_under_load(
    cluster: RestartablePostgresCluster,
    kinds: Sequence[str],
    caller: Callable[[], AbstractContextManager[Call]],
    *,
    warm_up_s: float,
    down_s: float,
    recover_s: float,
    pause_s: float,
) -> Outage:
    """One thread per kind calls ``caller()``'s function in rounds (``pause_s`` apart) while
    PostgreSQL runs ``warm_up_s``, is down ``down_s``, and runs again ``recover_s``."""
    outage = Outage()
    lock = threading.Lock()
    stop = threading.Event()

    def load(kind: str) -> None:
        with caller() as call:
            round_ = 0
            while not stop.is_set():
                round_ += 1
                status, body = call(kind, round_)
                with lock:
                    outage.statuses.append((time.monotonic(), kind, status))
                    if status >= 500:
                        outage.bodies.append(body)
                time.sleep(pause_s)

    workers = [threading.Thread(target=load, args=(kind,)) for kind in kinds]
    for worker in workers:
        worker.start()
    try:
        time.sleep(warm_up_s)
        cluster.halt()
        time.sleep(down_s)
        cluster.resume()
        outage.resumed = time.monotonic()
        time.sleep(recover_s)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
    return outage
