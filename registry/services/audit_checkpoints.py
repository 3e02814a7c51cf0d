"""Signed checkpoints of the audit chain's head, written outside the database.

Whoever holds the database can delete the newest events and move the head
row back, or rewrite old events and recompute every hash: the chain alone
cannot tell. A checkpoint is the head (size, event id, hash) signed with an
Ed25519 key that is not in the database, written to places the database
holder cannot reach (``registry.storage.checkpoints``); ``audit verify``
checks the log against the newest ones.

Like a transparency log's signed tree heads, a new checkpoint is only signed
when the log still extends the previous one: its event has the hash it had,
and every event since links up to the head (``verify_extension`` walks only
those). So a rewrite cannot get a newer checkpoint that hides it, and the
newest checkpoints vouch for all the history before them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine, text
from sqlmodel import Session

from registry.config import Settings
from registry.errors import LorryError, StorageUnavailable
from registry.schemas.trust import CheckpointOut
from registry.services.audit_anchors import (
    Anchor,
    Checkpoint,
    MalformedCheckpoint,
    parse_checkpoint,
)
from registry.services.audit_chain import verify_chain, verify_extension
from registry.services.signed_note import (
    NoteError,
    NoteSigner,
    NoteVerifier,
    load_signer,
    load_verifiers,
    open_note,
)
from registry.storage.base import BlobStore
from registry.storage.checkpoints import CheckpointTarget, open_checkpoint_targets

logger = logging.getLogger(__name__)

_LOCK_KEY = 0x4C4F5252_41554454 & 0x7FFFFFFFFFFFFFFF
"""PostgreSQL advisory lock: one checkpoint writer at a time across processes."""


class AuditCheckpointsNotConfigured(LorryError):
    code = "audit_checkpoints_not_configured"
    status_code = 409


class AuditChainInconsistent(LorryError):
    """The log does not extend the previous checkpoint, or its chain is broken: not signed."""

    code = "audit_chain_inconsistent"
    status_code = 409


@dataclass(frozen=True)
class Rejected:
    """A checkpoint file that does not verify."""

    location: str
    kind: str
    """``malformed``, ``unknown_key`` or ``bad_signature``."""
    message: str


@dataclass
class CheckpointSetup:
    """The signer, the verifier keys and the targets of the settings."""

    origin: str
    signer: NoteSigner | None
    verifiers: list[NoteVerifier]
    targets: list[CheckpointTarget]
    newest: int
    batch: int
    _last: Checkpoint | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(
        cls, settings: Settings, store: BlobStore | None, *, sign: bool = True
    ) -> CheckpointSetup:
        """Without ``sign``, the private key is not loaded (verifiers need only public keys)."""
        signer = None
        if sign and settings.audit_signing_key is not None:
            signer = load_signer(settings.audit_signing_key, settings.audit_checkpoint_origin)
        verifiers = []
        if settings.audit_public_keys is not None:
            verifiers = load_verifiers(settings.audit_public_keys)
        if signer is not None and signer.verifier not in verifiers:
            verifiers.append(signer.verifier)
        return cls(
            origin=settings.audit_checkpoint_origin,
            signer=signer,
            verifiers=verifiers,
            targets=open_checkpoint_targets(settings, store),
            newest=settings.audit_verify_checkpoints,
            batch=settings.audit_verify_batch,
        )

    @property
    def writes(self) -> bool:
        return self.signer is not None and bool(self.targets)


def read_checkpoints(
    targets: list[CheckpointTarget], verifiers: list[NoteVerifier], newest: int
) -> tuple[list[Anchor], list[Rejected]]:
    """The newest ``newest`` checkpoints of each readable target: those signed by a known
    key for its own log (the origin is the key's name), and those rejected."""
    anchors: list[Anchor] = []
    rejected: list[Rejected] = []
    for target in targets:
        if not target.readable:
            continue
        for location, data in target.newest(newest):
            try:
                body, signer = open_note(data.decode("utf-8"), verifiers)
                checkpoint = parse_checkpoint(body)
            except UnicodeDecodeError:
                rejected.append(Rejected(location, "malformed", "not UTF-8 text"))
                continue
            except NoteError as exc:
                rejected.append(Rejected(location, exc.kind, exc.message))
                continue
            except MalformedCheckpoint as exc:
                rejected.append(Rejected(location, "malformed", str(exc)))
                continue
            if checkpoint.origin != signer.name:
                rejected.append(
                    Rejected(
                        location,
                        "unknown_key",
                        f"a checkpoint of log {checkpoint.origin!r} signed by the key of "
                        f"{signer.name!r}: keys sign only their own log",
                    )
                )
                continue
            anchors.append(Anchor(checkpoint, location))
    return anchors, rejected


def write_checkpoint(
    session: Session, setup: CheckpointSetup, *, only_if_moved: bool
) -> CheckpointOut | None:
    """Sign the chain's head and write it to every target.

    ``only_if_moved`` (the schedule): nothing when the newest checkpoint already
    names the head, or when another process is writing one. Raises
    ``AuditChainInconsistent`` (and signs nothing) when the log no longer extends
    the previous checkpoint or its chain is broken.
    """
    signer = setup.signer
    if signer is None or not setup.targets:
        raise AuditCheckpointsNotConfigured(
            "audit checkpoints need a signing key and a place to go: set "
            "LORRY_AUDIT_SIGNING_KEY (create one with `lorry audit keygen`) and "
            "LORRY_AUDIT_CHECKPOINT_TARGETS (file:///DIR, blobstore: or https://URL)"
        )
    with setup._lock, _exclusive(session.get_bind(), wait=not only_if_moved) as mine:
        if not mine:
            return None
        previous = _previous(setup)
        if previous is None:
            report = verify_chain(session, batch=setup.batch)
        else:
            report = verify_extension(session, previous, batch=setup.batch)
        if report.problem is not None:
            raise AuditChainInconsistent(
                f"not signing a checkpoint: {report.problem.message}. Run `lorry audit verify`"
            )
        if report.head_event_id is None:
            if only_if_moved:
                return None
            raise AuditChainInconsistent("the audit log is empty: there is no head to sign")
        if (
            only_if_moved
            and previous is not None
            and (previous.event_id, previous.head_hash) == (report.head_event_id, report.head_hash)
        ):
            return None
        checkpoint = Checkpoint(
            origin=signer.name,
            size=report.events,
            head_hash=report.head_hash,
            event_id=report.head_event_id,
            signed_at=datetime.now(UTC),
        )
        note = signer.sign(checkpoint.body())
        written = _write_everywhere(setup.targets, _name(checkpoint), note.encode())
        setup._last = checkpoint
    logger.info(
        "audit checkpoint: %d events, head event %d, written to %s",
        checkpoint.size,
        checkpoint.event_id,
        ", ".join(written),
    )
    return CheckpointOut(
        origin=checkpoint.origin,
        size=checkpoint.size,
        event_id=checkpoint.event_id,
        head_hash=checkpoint.head_hash,
        signed_at=checkpoint.signed_at,
        key=signer.verifier.vkey,
        note=note,
        written_to=written,
    )


def _previous(setup: CheckpointSetup) -> Checkpoint | None:
    """The newest valid checkpoint in the readable targets; else the last one this process
    wrote (webhook-only setups)."""
    anchors, _ = read_checkpoints(setup.targets, setup.verifiers, setup.newest)
    if anchors:
        return max(anchors, key=lambda a: a.checkpoint.signed_at).checkpoint
    return setup._last


def _name(checkpoint: Checkpoint) -> str:
    when = checkpoint.signed_at.astimezone(UTC)
    return f"{when:%Y-%m-%d}/{when:%H%M%S.%f}Z-e{checkpoint.event_id}.note"


def _write_everywhere(targets: list[CheckpointTarget], name: str, note: bytes) -> list[str]:
    written: list[str] = []
    failures: list[str] = []
    for target in targets:
        try:
            written.append(target.write(name, note))
        except StorageUnavailable as exc:
            failures.append(exc.message)
    if failures:
        done = f" (written to {', '.join(written)})" if written else ""
        raise StorageUnavailable(f"audit checkpoint {name}: {'; '.join(failures)}{done}")
    return written


@contextmanager
def _exclusive(bind: object, *, wait: bool) -> Iterator[bool]:
    """One checkpoint writer across processes (a PostgreSQL advisory lock on a connection
    of its own); SQLite databases have one server process, whose lock ``setup`` holds."""
    if not isinstance(bind, Engine) or bind.dialect.name != "postgresql":
        yield True
        return
    with bind.connect() as connection:
        if wait:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
            got = True
        else:
            got = bool(
                connection.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": _LOCK_KEY}
                ).scalar_one()
            )
        try:
            yield got
        finally:
            if got:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
            connection.commit()
