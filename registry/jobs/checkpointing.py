"""Audit checkpoints on a schedule: a thread of ``lorry serve`` and ``lorry worker``.

Every ``LORRY_AUDIT_CHECKPOINT_INTERVAL_S`` it signs the chain's head when it
moved since the newest checkpoint (``write_checkpoint(only_if_moved=True)``);
a failure is logged and tried again at the next tick.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine
from sqlmodel import Session

from registry.errors import LorryError
from registry.services.audit_checkpoints import CheckpointSetup, write_checkpoint

logger = logging.getLogger(__name__)


class CheckpointScheduler:
    def __init__(self, engine: Engine, setup: CheckpointSetup, interval_s: float) -> None:
        self.engine = engine
        self.setup = setup
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start ticking, when checkpoints are configured and the interval is not 0."""
        if not self.setup.writes or self.interval_s <= 0:
            return
        self._thread = threading.Thread(
            target=self._run, name="lorry-audit-checkpoints", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def tick(self) -> bool:
        """One scheduled checkpoint; whether one was written."""
        try:
            with Session(self.engine) as session:
                return write_checkpoint(session, self.setup, only_if_moved=True) is not None
        except LorryError as exc:
            logger.error("audit checkpoint not written: %s", exc.message)
        except Exception:
            logger.exception("audit checkpoint not written")
        return False

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.tick()
