"""Who is calling and what they may do: scopes limited to namespace patterns.

Scopes: ``read`` (list, show, pull), ``write`` (push, compose, upload blobs,
edit repository settings, move unprotected aliases), ``promote`` (move any
alias, including protected ones) and ``admin`` (tokens, alias rules, gc; it
implies every other scope). ``write`` and ``promote`` imply ``read``.

Namespace patterns are shell-style: ``acme/*`` or ``acme`` (the namespace
``acme``), ``*`` (every namespace); ``registry.services.visibility`` matches them,
for authorization and for every read alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from registry.services.visibility import namespace_matches

READ = "read"
WRITE = "write"
PROMOTE = "promote"
ADMIN = "admin"
SCOPES = (READ, WRITE, PROMOTE, ADMIN)
_IMPLIED: dict[str, frozenset[str]] = {
    READ: frozenset({READ}),
    WRITE: frozenset({READ, WRITE}),
    PROMOTE: frozenset({READ, PROMOTE}),
    ADMIN: frozenset(SCOPES),
}

LOCAL_ACTOR = "local"
ANONYMOUS_ACTOR = "anonymous"


def expand_scopes(scopes: tuple[str, ...] | list[str] | frozenset[str]) -> frozenset[str]:
    """The scopes and every scope they imply."""
    granted: set[str] = set()
    for scope in scopes:
        granted |= _IMPLIED.get(scope, frozenset())
    return frozenset(granted)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller (a token's principal), ``local`` or ``anonymous``."""

    name: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    """Granted scopes, implied ones included."""
    namespaces: tuple[str, ...] = ("*",)
    token_id: str | None = None

    def covers(self, namespace: str | None) -> bool:
        """Whether the principal's namespaces include ``namespace`` (``None``: all of them)."""
        if namespace is None:
            return "*" in self.namespaces
        return any(namespace_matches(pattern, namespace) for pattern in self.namespaces)

    def allows(self, scope: str, namespace: str | None = None) -> bool:
        """``scope`` on ``namespace``; ``None`` asks for it on every namespace."""
        return scope in self.scopes and self.covers(namespace)

    def allows_somewhere(self, scope: str) -> bool:
        """``scope`` on at least one namespace (e.g. blob uploads, which name none)."""
        return scope in self.scopes and bool(self.namespaces)


LOCAL = Principal(name=LOCAL_ACTOR, scopes=frozenset(SCOPES), namespaces=("*",))
"""Everything allowed: the caller of a registry that has no tokens yet."""
ANONYMOUS_READER = Principal(name=ANONYMOUS_ACTOR, scopes=frozenset({READ}), namespaces=("*",))
ANONYMOUS = Principal(name=ANONYMOUS_ACTOR, scopes=frozenset(), namespaces=())
