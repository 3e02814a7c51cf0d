"""Who is calling and what they may do: scopes limited to namespace patterns.

Scopes: ``read`` (list, show, pull), ``write`` (push, compose, upload blobs,
edit repository settings, move unprotected aliases), ``promote`` (move any
alias, including protected ones) and ``admin`` (tokens, alias rules, gc; it
implies every other scope). ``write`` and ``promote`` imply ``read``.

Namespace patterns are shell-style: ``acme/*`` or ``acme`` (the namespace
``acme``), ``*`` (every namespace).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import false, or_

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


def namespace_matches(pattern: str, namespace: str) -> bool:
    """Whether a token's namespace pattern (``acme/*``, ``acme``, ``*``) covers ``namespace``."""
    if pattern == "*":
        return True
    if pattern.endswith("/*"):
        return fnmatchcase(namespace, pattern[:-2])
    return fnmatchcase(namespace, pattern)


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


def visible_namespaces(principal: Principal) -> tuple[str, ...] | None:
    """The namespace patterns a listing is limited to; ``None`` when the principal sees all."""
    return None if principal.covers(None) else principal.namespaces


def namespace_condition(column: Any, patterns: tuple[str, ...], *, repository: bool) -> Any:
    """SQL: ``column`` (a namespace, or a ``namespace/name`` id with ``repository``) lies in
    one of ``patterns``; false for no pattern."""
    clauses = []
    for pattern in patterns:
        base = pattern[:-2] if pattern.endswith("/*") else pattern
        like = base.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = like.replace("*", "%").replace("?", "_")
        clauses.append(column.like(f"{like}/%" if repository else like, escape="\\"))
    return or_(*clauses) if clauses else false()


LOCAL = Principal(name=LOCAL_ACTOR, scopes=frozenset(SCOPES), namespaces=("*",))
"""Everything allowed: the caller of a registry that has no tokens yet."""
ANONYMOUS_READER = Principal(name=ANONYMOUS_ACTOR, scopes=frozenset({READ}), namespaces=("*",))
ANONYMOUS = Principal(name=ANONYMOUS_ACTOR, scopes=frozenset(), namespaces=())
