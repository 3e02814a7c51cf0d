"""Pulls: every file a client downloads is a record of the access log.

Which answers are pulls is decided where the request is (``registry.api.pulls``).
The record says who (actor), from which address, with which user agent, which
version, digest and file, through which API and under which revision. It is
queued in memory and written in a batch (``registry.services.access_log``):
a download takes no database lock. Pulls recorded before the access log
existed stay in the audit chain as ``version.pull`` events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from registry.services.access_log import AccessLog, Pull
from registry.services.audit import Caller
from registry.services.versions import VersionFileRef
from registry.tables import utcnow

Via = Literal["hub", "api"]
_MAX_REVISION = 255


@dataclass(frozen=True)
class PullClient:
    """Where a request came from."""

    address: str | None
    forwarded_for: str | None
    user_agent: str | None


def record_pull(
    access_log: AccessLog,
    caller: Caller,
    file: VersionFileRef,
    client: PullClient,
    *,
    via: Via,
    revision: str,
    redirect: bool = False,
    byte_range: str | None = None,
) -> None:
    """Queue one pull for the access log (written within a second)."""
    access_log.record(
        Pull(
            at=utcnow(),
            actor=caller.actor,
            repository=file.repository,
            version=file.version,
            digest=file.digest,
            path=file.path,
            sha256=file.sha256,
            size=file.size,
            revision=revision[:_MAX_REVISION],
            via=via,
            redirect=redirect,
            byte_range=byte_range,
            address=client.address,
            forwarded_for=client.forwarded_for,
            user_agent=client.user_agent,
            request_id=caller.request_id,
        )
    )
