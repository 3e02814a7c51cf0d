"""The one answer to "may this caller see this row": namespace patterns matched alike in
Python (authorization, filtering loaded rows) and in SQL (listings).

A token's namespace patterns are shell-style and case-sensitive: ``acme/*`` and ``acme``
cover the namespace ``acme`` only (not ``ACME``, ``acme-x`` or ``acm``), ``ac*`` covers
``acme`` and ``acme-x``, ``*`` covers everything. ``namespace_matches`` is the rule
(``fnmatchcase``); ``pattern_condition`` is the same rule as a SQL condition, exact on
SQLite and PostgreSQL alike. SQLite's ``LIKE`` ignores case, so it is not used: a
literal pattern compares with ``=`` (case-sensitive on both), a pattern with wildcards
with a regular expression (PostgreSQL ``~``; on SQLite, SQLAlchemy registers ``REGEXP``
as Python's ``re.search``), which both read the same for the little regex written here.

Routes get a ``Visibility`` (``registry.api.access.VisibilityDep``) and hand it to the
service, which filters with ``where`` (SQL) or ``namespace``/``repository`` (Python).
A row of an invisible namespace reads as absent (404), never as forbidden (403), so
that its existence does not leak either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, false, func, or_, true

from registry.errors import InvalidInput

if TYPE_CHECKING:
    from registry.services.principals import Principal

_PATTERN_BASE = re.compile(r"[A-Za-z0-9._*?-]{1,96}")
"""What a namespace pattern holds before an optional ``/*``: the characters of a namespace
and the wildcards ``*`` and ``?`` (no ``[...]`` classes, which SQL could not mirror)."""
_WILDCARDS = frozenset("*?")


def _base(pattern: str) -> str | None:
    """The namespace part of a pattern (``acme`` of ``acme/*``); ``None`` when it is not one
    that this module can match exactly (such a pattern covers nothing)."""
    base = pattern[:-2] if pattern.endswith("/*") else pattern
    return base if _PATTERN_BASE.fullmatch(base) else None


def check_pattern(pattern: str) -> None:
    """Refuse a namespace pattern that tokens may not hold."""
    if pattern == "*" or _base(pattern) is not None:
        return
    raise InvalidInput(
        f"invalid namespace pattern {pattern!r}: use a namespace (acme), a namespace with /* "
        "(acme/*), or * for every namespace; a pattern may use the wildcards * and ?, e.g. "
        "team-*/*"
    )


def namespace_matches(pattern: str, namespace: str) -> bool:
    """Whether a token's namespace pattern (``acme/*``, ``acme``, ``*``) covers ``namespace``."""
    if pattern == "*":
        return True
    base = _base(pattern)
    return base is not None and fnmatchcase(namespace, base)


def _regex(base: str) -> str:
    """The pattern as a regular expression that Python's ``re`` and PostgreSQL read alike;
    wildcards stop at ``/`` (a namespace has none; a repository id has one, after it)."""
    parts = []
    for char in base:
        if char == "*":
            parts.append("[^/]*")
        elif char == "?":
            parts.append("[^/]")
        elif char == ".":
            parts.append("\\.")
        else:
            parts.append(char)
    return "".join(parts)


def pattern_condition(column: Any, pattern: str, *, repository: bool) -> ColumnElement[bool]:
    """SQL: ``column`` (a namespace; with ``repository``, a ``namespace/name`` id) is covered
    by ``pattern``, exactly as ``namespace_matches`` decides."""
    if pattern == "*":
        return column.is_not(None)  # type: ignore[no-any-return]
    base = _base(pattern)
    if base is None:
        return false()
    if not _WILDCARDS.intersection(base):
        if repository:
            return func.substr(column, 1, len(base) + 1) == f"{base}/"
        return column == base  # type: ignore[no-any-return]
    anchored = f"^{_regex(base)}/" if repository else f"^{_regex(base)}$"
    return column.regexp_match(anchored)  # type: ignore[no-any-return]


def _overlap(a: str, b: str) -> bool:
    """Whether two namespace patterns may both cover one namespace (for wildcards on both
    sides: assumed so)."""
    base_a, base_b = _base(a), _base(b)
    if a == "*" or b == "*":
        return True
    if base_a is None or base_b is None:
        return False
    if not _WILDCARDS.intersection(base_a):
        return fnmatchcase(base_a, base_b)
    if not _WILDCARDS.intersection(base_b):
        return fnmatchcase(base_b, base_a)
    return True


@dataclass(frozen=True)
class Visibility:
    """The namespaces a caller may read: ``patterns``, or everything when ``None``."""

    patterns: tuple[str, ...] | None = None

    @classmethod
    def of(cls, principal: Principal) -> Visibility:
        if "*" in principal.namespaces:
            return cls(None)
        return cls(tuple(principal.namespaces))

    @property
    def everything(self) -> bool:
        return self.patterns is None

    def namespace(self, namespace: str) -> bool:
        if self.patterns is None:
            return True
        return any(namespace_matches(pattern, namespace) for pattern in self.patterns)

    def repository(self, repository_id: str | None) -> bool:
        """Whether the ``namespace/name`` id is visible (``None``, no repository: only to
        a caller who sees everything)."""
        if self.patterns is None:
            return True
        if repository_id is None or "/" not in repository_id:
            return False
        return self.namespace(repository_id.split("/", 1)[0])

    def where(self, column: Any, *, repository: bool) -> ColumnElement[bool]:
        """SQL condition: the row's namespace (``repository``: its ``namespace/name``) is
        visible; rows without one (NULL) only to a caller who sees everything."""
        if self.patterns is None:
            return true()
        clauses = [pattern_condition(column, p, repository=repository) for p in self.patterns]
        return or_(*clauses) if clauses else false()

    def overlaps(self, pattern: str) -> bool:
        """Whether a namespace pattern (an alias rule's) may cover a visible namespace."""
        if self.patterns is None:
            return True
        return any(_overlap(mine, pattern) for mine in self.patterns)


EVERYTHING = Visibility(None)
"""What a caller with ``*`` (or a service acting on its own) sees."""
