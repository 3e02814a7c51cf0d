"""Pulls as HTTP sees them: which answers hand out a file, and who asked.

A pull is recorded when a GET hands out a file's bytes: streamed (200, or 206
for a range) or as a redirect to the object store's presigned URL. HEAD
requests and ``304 Not Modified`` answers move no bytes and are not pulls.
The record itself is written by ``registry.services.pulls``.

The address is the request's client as the server resolved it: uvicorn
replaces the peer with the ``X-Forwarded-For`` client only when the peer is a
trusted proxy (``--forwarded-allow-ips``). The raw header, which any client
can set, is kept apart as ``forwarded_for``.
"""

from __future__ import annotations

from fastapi import Request, Response

from registry.services.access_log import AccessLog
from registry.services.audit import Caller
from registry.services.pulls import PullClient, Via, record_pull
from registry.services.versions import VersionFileRef

PULL_STATUSES = frozenset({200, 206, 302, 303, 307})
_MAX_HEADER = 512


def pull_client(request: Request) -> PullClient:
    forwarded = request.headers.get("x-forwarded-for")
    user_agent = request.headers.get("user-agent")
    return PullClient(
        address=request.client.host if request.client is not None else None,
        forwarded_for=forwarded[:_MAX_HEADER] if forwarded else None,
        user_agent=user_agent[:_MAX_HEADER] if user_agent else None,
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
