"""Audit verification cost: the streamed walk against loading the whole log, and checkpoints.

    python bench/audit_verify.py              # 20,000 and 80,000 events (SQLite, temp dir)
    python bench/audit_verify.py --events 5000

For each log size it builds a chained log (bulk inserts, the real hash function),
then measures in this one process, side by side:

- ``verify_chain`` (batches of ``--batch`` events): wall time and Python heap peak
  (tracemalloc);
- the same walk over every event loaded at once (what a walk that keeps the log in
  memory costs);
- the first checkpoint (a full walk) and the next one after 1% more events (only the
  new events are walked).

Times are taken under tracemalloc, which slows Python code several-fold: compare them
with each other, not with a walk outside this script.

Targets: the streamed walk's heap peak does not grow with the log (ratio of the peaks
between sizes ~1); a later checkpoint costs a small fraction of the first.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from registry import db
from registry.config import Settings
from registry.db import create_engine_for
from registry.services.audit_chain import GENESIS_HASH, HASHED_FIELDS, event_hash, verify_chain
from registry.services.audit_checkpoints import CheckpointSetup, write_checkpoint
from registry.services.signed_note import generate_key
from registry.tables import AuditChainHead, AuditEvent, utcnow


def _append(engine: Any, start: int, count: int, previous: str) -> str:
    rows = []
    for i in range(start, start + count):
        fields = {
            "at": utcnow(),
            "actor": "bench",
            "action": "alias.set",
            "repository": "acme/sql-lora",
            "target": f"acme/sql-lora@a{i % 7}",
            "before": {"version": i},
            "after": {"version": i + 1},
            "request_id": f"req-{i}",
        }
        digest = event_hash(fields, previous)
        rows.append({**fields, "id": i + 1, "prev_hash": previous, "hash": digest})
        previous = digest
    with engine.begin() as connection:
        connection.execute(insert(AuditEvent), rows)
        connection.execute(
            AuditChainHead.__table__.delete()  # type: ignore[attr-defined]
        )
        connection.execute(
            insert(AuditChainHead),
            [{"id": 1, "last_event_id": start + count, "last_hash": previous}],
        )
    return previous


def _measure(run: Callable[[], object]) -> tuple[float, float]:
    tracemalloc.start()
    began = time.perf_counter()
    run()
    seconds = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak / 2**20


def _load_everything(session: Session) -> None:
    previous = GENESIS_HASH
    events = session.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()
    for event in events:
        fields = {name: getattr(event, name) for name in HASHED_FIELDS}
        assert event_hash(fields, event.prev_hash or "") == event.hash
        assert event.prev_hash == previous
        previous = event.hash or ""


def bench(events: int, batch: int, root: Path) -> dict[str, float]:
    settings = Settings(home=root / f"home-{events}", audit_verify_batch=batch)
    db.upgrade(settings)
    key = root / f"key-{events}.pem"
    generate_key(key, "bench.local/audit")
    settings = settings.model_copy(
        update={
            "audit_signing_key": key,
            "audit_checkpoint_origin": "bench.local/audit",
            "audit_checkpoint_targets": f"file://{root}/checkpoints-{events}",
        }
    )
    engine = create_engine_for(settings)
    previous = _append(engine, 0, events, GENESIS_HASH)
    setup = CheckpointSetup.from_settings(settings, None)
    result: dict[str, float] = {}
    with Session(engine) as session:
        result["stream_s"], result["stream_mib"] = _measure(
            lambda: verify_chain(session, batch=batch)
        )
        result["all_s"], result["all_mib"] = _measure(lambda: _load_everything(session))
        session.rollback()
        result["first_checkpoint_s"], _ = _measure(
            lambda: write_checkpoint(session, setup, only_if_moved=True)
        )
    _append(engine, events, events // 100, previous)
    with Session(engine) as session:
        result["next_checkpoint_s"], _ = _measure(
            lambda: write_checkpoint(session, setup, only_if_moved=True)
        )
    engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="the smaller log size")
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    sizes = (args.events, 4 * args.events)
    with tempfile.TemporaryDirectory() as directory:
        results = {size: bench(size, args.batch, Path(directory)) for size in sizes}
    print(
        f"{'events':>8} {'stream s':>9} {'stream MiB':>11} {'all-in s':>9} {'all-in MiB':>11}"
        f" {'1st ckpt s':>11} {'next ckpt s':>12}"
    )
    for size, r in results.items():
        print(
            f"{size:>8} {r['stream_s']:>9.2f} {r['stream_mib']:>11.1f} {r['all_s']:>9.2f} "
            f"{r['all_mib']:>11.1f} {r['first_checkpoint_s']:>11.2f} "
            f"{r['next_checkpoint_s']:>12.3f}"
        )
    small, large = (results[size] for size in sizes)
    factor = sizes[1] // sizes[0]
    streamed = large["stream_mib"] / small["stream_mib"]
    loaded = large["all_mib"] / small["all_mib"]
    print(
        f"heap peak at x{factor} events: streamed {streamed:.2f}x, all-in {loaded:.2f}x; "
        f"at {sizes[1]} events all-in / streamed = "
        f"{large['all_mib'] / large['stream_mib']:.1f}x the memory"
    )
    ratio = large["next_checkpoint_s"] / large["first_checkpoint_s"]
    print(f"next checkpoint (+1% events) / first checkpoint at {sizes[1]} events: {ratio:.3f}")


if __name__ == "__main__":
    main()
