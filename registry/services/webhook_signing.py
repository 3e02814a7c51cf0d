"""Signatures of webhook deliveries (the scheme of MLflow 3's webhooks, with Lorry's headers).

    signed  = f"{delivery_id}.{timestamp}.".encode() + body       (body: the raw bytes sent)
    header  = "v1," + base64(HMAC-SHA256(key=secret.encode(), msg=signed))

sent as ``X-Lorry-Signature``, with ``X-Lorry-Delivery-Id`` (``delivery_id``),
``X-Lorry-Timestamp`` (``timestamp``, Unix seconds of the attempt) and ``X-Lorry-Event``.
A receiver recomputes the HMAC over the raw body, compares in constant time and
refuses timestamps older than a few minutes (replays).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_S = 300


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signed_headers(secret: str, delivery_id: str, event: str, body: bytes) -> dict[str, str]:
    """The headers of one signed JSON delivery attempt (signed now)."""
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "X-Lorry-Delivery-Id": delivery_id,
        "X-Lorry-Timestamp": str(timestamp),
        "X-Lorry-Event": event,
        "X-Lorry-Signature": sign(secret, delivery_id, timestamp, body),
    }


def verify(
    secret: str,
    delivery_id: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Whether ``signature`` is this delivery's, signed less than ``tolerance_s`` ago."""
    if not timestamp.isdigit():
        return False
    if abs((now if now is not None else time.time()) - int(timestamp)) > tolerance_s:
        return False
    expected = sign(secret, delivery_id, int(timestamp), body)
    return hmac.compare_digest(expected.encode(), signature.encode())
