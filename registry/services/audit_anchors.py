"""Checkpoints of the audit chain's head, and checking the chain against them.

A checkpoint is the body of a signed note in the C2SP ``tlog-checkpoint``
layout (origin, size, base64 root hash), with two extension lines::

    registry.example.com/audit
    1234                              events up to and including the head event
    mTcVB3Nw3Jm3oC1Ar6dyzq+Zf3...=    the head event's hash (base64 of 32 bytes)
    event 1240                        the head event's id
    time 2026-12-02T17:30:00.000000Z  when it was signed

The head event's hash commits to every event before it (each event's hash
covers the hash of the one before), so one valid checkpoint vouches for the
whole history up to its event. ``AnchorCheck`` takes the events of a chain
walk, oldest first, and reports each checkpoint that the database contradicts.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class MalformedCheckpoint(ValueError):
    """The text of a signed note is not a Lorry audit checkpoint."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    head_hash: str
    """Hex sha256 of the head event."""
    event_id: int
    signed_at: datetime

    def body(self) -> str:
        root = base64.b64encode(bytes.fromhex(self.head_hash)).decode()
        when = self.signed_at.astimezone(UTC).strftime(TIME_FORMAT)
        return f"{self.origin}\n{self.size}\n{root}\nevent {self.event_id}\ntime {when}\n"


def parse_checkpoint(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) != 6 or lines[-1] != "":
        raise MalformedCheckpoint("a checkpoint has five lines: origin, size, hash, event, time")
    origin, size, root, event, when = lines[:5]
    try:
        digest = base64.b64decode(root, validate=True)
        event_id = int(event.removeprefix("event "))
        signed_at = datetime.strptime(when.removeprefix("time "), TIME_FORMAT).replace(tzinfo=UTC)
        count = int(size)
    except (binascii.Error, ValueError) as exc:
        raise MalformedCheckpoint(f"unreadable checkpoint line: {exc}") from None
    if len(digest) != 32 or not event.startswith("event ") or not when.startswith("time "):
        raise MalformedCheckpoint("the hash, event or time line is not in checkpoint form")
    return Checkpoint(origin, count, digest.hex(), event_id, signed_at)


@dataclass(frozen=True)
class Anchor:
    """A verified checkpoint and where it was read."""

    checkpoint: Checkpoint
    location: str


@dataclass(frozen=True)
class AnchorProblem:
    kind: str
    """``truncated`` (its event is past the end of the log, or gone) or ``rewritten``
    (its event now has another hash, or another number of events precedes it)."""
    anchor: Anchor
    message: str


class AnchorCheck:
    """Compares a streamed chain with checkpoints, holding only the checkpoints."""

    def __init__(self, anchors: Iterable[Anchor]) -> None:
        self._pending = sorted(anchors, key=lambda a: a.checkpoint.event_id, reverse=True)
        self.problems: list[AnchorProblem] = []
        self.confirmed: list[Anchor] = []

    def see(self, event_id: int, count: int, stored_hash: str | None) -> None:
        """The ``count``-th event of the log, ``event_id``, stores ``stored_hash``."""
        while self._pending and self._pending[-1].checkpoint.event_id <= event_id:
            anchor = self._pending.pop()
            if anchor.checkpoint.event_id < event_id:
                self._missing(anchor)
                continue
            self._compare(anchor, count, stored_hash)

    def finish(self, last_event_id: int | None) -> None:
        """The walk ended after ``last_event_id``: every checkpoint still pending is past it."""
        while self._pending:
            anchor = self._pending.pop()
            checkpoint = anchor.checkpoint
            end = f"event {last_event_id}" if last_event_id is not None else "no event at all"
            self.problems.append(
                AnchorProblem(
                    "truncated",
                    anchor,
                    f"the log was truncated: checkpoint {anchor.location} (signed "
                    f"{_when(checkpoint)}) covers {checkpoint.size} events up to event "
                    f"{checkpoint.event_id}, but the log ends at {end}",
                )
            )

    def _missing(self, anchor: Anchor) -> None:
        checkpoint = anchor.checkpoint
        self.problems.append(
            AnchorProblem(
                "truncated",
                anchor,
                f"event {checkpoint.event_id}, the head of checkpoint {anchor.location} (signed "
                f"{_when(checkpoint)}), is no longer in the log: events were removed",
            )
        )

    def _compare(self, anchor: Anchor, count: int, stored_hash: str | None) -> None:
        checkpoint = anchor.checkpoint
        if stored_hash == checkpoint.head_hash and count == checkpoint.size:
            self.confirmed.append(anchor)
            return
        self.problems.append(
            AnchorProblem(
                "rewritten",
                anchor,
                f"the log was rewritten at or before event {checkpoint.event_id}: checkpoint "
                f"{anchor.location} (signed {_when(checkpoint)}) has hash "
                f"{checkpoint.head_hash[:16]}... after {checkpoint.size} events, the database "
                f"has {(stored_hash or '-')[:16]}... after {count} events",
            )
        )


def _when(checkpoint: Checkpoint) -> str:
    return checkpoint.signed_at.strftime("%Y-%m-%d %H:%M:%S UTC")
