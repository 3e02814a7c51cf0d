"""Pulls: every file a client downloads is a record of the access log.

A pull is recorded when a GET hands out a file's bytes: streamed (200, or 206
for a range) or as a redirect to the object store's presigned URL. HEAD
requests and ``304 Not Modified`` answers move no bytes and are not pulls.
The record says who (actor), from which address, with which user agent, which
version, digest and file, through which API and under which revision. It is
queued in memory and written in a batch (``registry.services.access_log``):
a download takes no database lock. Pulls recorded before the access log
existed stay in the audit chain as ``version.pull`` events.

The address is the request's client as the server resolved it: uvicorn
replaces the peer with the ``X-Forwarded-For`` client only when the peer is a
trusted proxy (``--forwarded-allow-ips``). The raw header, which any client
can set, is kept apart as ``forwarded_for``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastapi import Request, Response

from registry.services.access_log import AccessLog, Pull
from registry.services.audit import Caller
from registry.services.versions import VersionFileRef
from registry.tables import utcnow

PULL_STATUSES = frozenset({200, 206, 302, 303, 307})

Via = Literal["hub", "api"]
_MAX_HEADER = 512
_MAX_REVISION = 255


@dataclass(frozen=True)
class PullClient:
    """Where a request came from."""

    address: str | None
    forwarded_for: str | None
    user_agent: str | None


def pull_client(request: Request) -> PullClient:
    forwarded = request.headers.get("x-forwarded-for")
    user_agent = request.headers.get("user-agent")
    return PullClient(
        address=request.client.host if request.client is not None else None,
        forwarded_for=forwarded[:_MAX_HEADER] if forwarded else None,
        user_agent=user_agent[:_MAX_HEADER] if user_agent else None,
    )


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


def record_served_file(
    access_log: AccessLog,
    caller: Caller,
    request: Request,
    file: VersionFileRef,
    response: Response,
    *,
    via: Via,
    revision: str,
) -> None:
    """Record the pull if ``response`` (to be sent for ``request``) hands out the file."""
    if request.method != "GET" or response.status_code not in PULL_STATUSES:
        return
    record_pull(
        access_log,
        caller,
        file,
        pull_client(request),
        via=via,
        revision=revision,
        redirect=300 <= response.status_code < 400,
        byte_range=response.headers.get("content-range"),
    )
