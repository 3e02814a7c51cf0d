"""A short-lived cache of authenticated tokens, so that a read costs no token lookup.

Every request carries its token; looking it up is a database round trip and a
session on the read path. ``PrincipalCache`` remembers, per process, the
principal of a token that authenticated, for ``ttl_s`` seconds (setting
``LORRY_PRINCIPAL_CACHE_S``, default 5; 0 turns the cache off). It is keyed by
the sha256 of the whole token, so only a token that authenticated against the
database can ever hit, and it honours the token's own expiry to the second.

Revocation: the process that revokes a token forgets it at once; another
replica (or another ``--workers`` process) keeps accepting it for at most
``ttl_s`` seconds. Whether any token exists (open mode) is not cached: the first
token closes the registry with the next request, wherever it was created.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from registry.services.principals import Principal
from registry.tables import utcnow

_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    fresh_until: float
    expires_at: datetime | None


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class PrincipalCache:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> Principal | None:
        if self.ttl_s <= 0:
            return None
        entry = self._entries.get(token_key(token))
        if entry is None or entry.fresh_until < time.monotonic():
            return None
        if entry.expires_at is not None and entry.expires_at <= utcnow():
            return None
        return entry.principal

    def put(self, token: str, principal: Principal, expires_at: datetime | None) -> None:
        if self.ttl_s <= 0:
            return
        entry = _Entry(principal, time.monotonic() + self.ttl_s, expires_at)
        with self._lock:
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
            self._entries[token_key(token)] = entry

    def forget(self, token_id: str) -> None:
        """Drop the cached principal of a token (this process revoked it)."""
        with self._lock:
            self._entries = {
                key: entry
                for key, entry in self._entries.items()
                if entry.principal.token_id != token_id
            }
