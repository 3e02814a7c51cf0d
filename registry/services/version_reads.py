"""The hot reads of a version (``version@ref``, Hub model info, file resolves): one query
for what may change, a per-process cache for what cannot.

What may change between two requests is read fresh every time, in one indexed query:
which version an alias or ``latest`` names, the repository's settings (``main`` alias,
tags), the aliases pointing at the version, whether it has evaluation results and its
download count. An alias moved through any replica is therefore visible to the next
request of every replica.

What cannot change is cached: a version's files are its manifest, and its digest is the
sha256 of that manifest, so the files of a digest are the same forever (a deleted version
is no longer found by the query, whatever the cache holds). ``FILES_CACHE_VERSIONS``
digests are kept, least recently used first out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import sqlalchemy
from sqlalchemy import Connection, Row, Select, bindparam, exists, func
from sqlmodel import Session, col, select

from registry.errors import LorryError
from registry.services.access_log import version_downloads
from registry.services.names import parse_ref
from registry.services.refs import find_version
from registry.tables import Alias, DownloadCount, EvalResult, Repository, Version, VersionFile

FILES_CACHE_VERSIONS = 2048
"""Versions whose file lists one process keeps (a few hundred bytes per file)."""


@dataclass(frozen=True)
class FileRow:
    """A file of a version's manifest."""

    path: str
    sha256: str
    size: int


@dataclass
class VersionFiles:
    """The files of one digest, by path; ``derived`` holds values computed from them once
    (e.g. the Hub's sibling entries), keyed by their user."""

    files: tuple[FileRow, ...]
    by_path: dict[str, FileRow]
    derived: dict[str, Any] = field(default_factory=dict)


class _FilesCache:
    """A bounded LRU of ``VersionFiles`` by digest, shared by the request threads."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, VersionFiles] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str) -> VersionFiles | None:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is not None:
                self._entries.move_to_end(digest)
            return entry

    def put(self, digest: str, entry: VersionFiles) -> None:
        with self._lock:
            self._entries[digest] = entry
            self._entries.move_to_end(digest)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_FILES_CACHE = _FilesCache(FILES_CACHE_VERSIONS)
_FILES = (
    select(col(VersionFile.path), col(VersionFile.sha256), col(VersionFile.size))
    .where(col(VersionFile.version_id) == bindparam("version_id"))
    .order_by(col(VersionFile.path))
)


def version_files(
    connection: Connection, version: Version | VersionRecord | VersionKey
) -> VersionFiles:
    """The files of ``version``, by path: from the cache, or one query."""
    entry = _FILES_CACHE.get(version.digest)
    if entry is not None:
        return entry
    rows = connection.execute(_FILES, {"version_id": version.id})
    files = tuple(FileRow(path=path, sha256=sha256, size=size) for path, sha256, size in rows)
    entry = VersionFiles(files=files, by_path={row.path: row for row in files})
    _FILES_CACHE.put(version.digest, entry)
    return entry


def clear_files_cache() -> None:
    _FILES_CACHE.clear()


@dataclass(frozen=True)
class RepositoryRecord:
    """What a hot read needs of a repository row, read without the ORM."""

    id: int
    namespace: str
    name: str
    kind: str
    tags: list[str]
    created_at: datetime
    main_alias: str | None


@dataclass(frozen=True)
class VersionRecord:
    """What a hot read needs of a version row, read without the ORM."""

    id: int
    number: int
    digest: str
    kind: str
    message: str | None
    size: int
    adapter_metadata: dict[str, Any]
    card: dict[str, Any]
    lineage: dict[str, Any] | None
    created_by: str
    created_at: datetime


_REPOSITORY_COLUMNS = [f.name for f in fields(RepositoryRecord)]
_VERSION_COLUMNS = [f.name for f in fields(VersionRecord)]


def repository_record(row: Repository) -> RepositoryRecord:
    return RepositoryRecord(**{name: getattr(row, name) for name in _REPOSITORY_COLUMNS})


def version_record(row: Version) -> VersionRecord:
    return VersionRecord(**{name: getattr(row, name) for name in _VERSION_COLUMNS})


@dataclass(frozen=True)
class VersionState:
    """A resolved version with what may change about it, as of this request."""

    repository: RepositoryRecord
    version: VersionRecord
    aliases: list[str]
    has_results: bool
    downloads: int


_ALIAS_SEPARATOR = "\n"
"""Alias names are refused with control characters (``names.check_alias_name``)."""
_ALIASES_OF_VERSION = (
    select(func.aggregate_strings(col(Alias.name), _ALIAS_SEPARATOR))
    .where(col(Alias.version_id) == col(Version.id))
    .correlate(Version)
    .scalar_subquery()
)
_HAS_RESULTS = exists().where(col(EvalResult.version_id) == col(Version.id)).correlate(Version)
_DOWNLOADS_OF_VERSION = (
    select(col(DownloadCount.downloads))
    .where(
        col(DownloadCount.repository) == col(Repository.namespace) + "/" + col(Repository.name),
        col(DownloadCount.version) == col(Version.number),
    )
    .correlate(Repository, Version)
    .scalar_subquery()
)
_OF_REPOSITORY = (
    col(Version.repository_id) == col(Repository.id),
    col(Repository.namespace) == bindparam("namespace"),
    col(Repository.name) == bindparam("name"),
)


def _by_ref(query: Select[*tuple[Any, ...]]) -> dict[str, Select[*tuple[Any, ...]]]:
    """``query`` (of a repository's versions) narrowed to the version a ref names, for each
    kind of ref that one statement resolves. Built once, with bound parameters (see
    ``registry.services.refs``)."""
    return {
        "number": query.where(col(Version.number) == bindparam("number")),
        "latest": query.order_by(col(Version.number).desc()).limit(1),
        "digest": query.where(col(Version.digest) == bindparam("value")),
        "alias": query.where(
            col(Version.id)
            == select(col(Alias.version_id))
            .where(
                col(Alias.repository_id) == col(Repository.id),
                col(Alias.name) == bindparam("value"),
            )
            .correlate(Repository)
            .scalar_subquery()
        ),
    }


# Columns rather than ORM entities: loading two entities cost more CPU than running the
# query (measured).
_STATE = _by_ref(
    sqlalchemy.select(
        *(getattr(Repository, name) for name in _REPOSITORY_COLUMNS),
        *(getattr(Version, name) for name in _VERSION_COLUMNS),
        _ALIASES_OF_VERSION,
        _HAS_RESULTS,
        _DOWNLOADS_OF_VERSION,
    ).where(*_OF_REPOSITORY)
)
_SPLIT = len(_REPOSITORY_COLUMNS), len(_REPOSITORY_COLUMNS) + len(_VERSION_COLUMNS)
_KEY = _by_ref(
    sqlalchemy.select(col(Version.id), col(Version.number), col(Version.digest)).where(
        *_OF_REPOSITORY
    )
)


def _lookup(
    connection: Connection,
    statements: dict[str, Select[*tuple[Any, ...]]],
    namespace: str,
    name: str,
    ref: str | int,
) -> Row[*tuple[Any, ...]] | None:
    """The row of the one statement that resolves ``ref``; ``None`` when it found nothing or
    ``ref`` needs the slower lookups (a commit id, or no valid ref at all)."""
    try:
        parsed = parse_ref(ref)
    except LorryError:
        return None
    if parsed.kind not in statements:
        return None
    params: dict[str, object] = {"namespace": namespace, "name": name, "value": parsed.value}
    if parsed.kind == "number":
        params["number"] = parsed.number
    return connection.execute(statements[parsed.kind], params).first()


def version_state(
    connection: Connection, namespace: str, name: str, ref: str | int
) -> VersionState:
    """The version ``ref`` names with its aliases, whether it has evaluation results and its
    download count: one statement for a number, ``latest``, a digest or an alias; the
    slower lookups (``refs.find_version``) for commit ids and to name what is missing."""
    found = _lookup(connection, _STATE, namespace, name, ref)
    if found is not None:
        aliases, has_results, downloads = found[_SPLIT[1] :]
        return VersionState(
            repository=RepositoryRecord(*found[: _SPLIT[0]]),
            version=VersionRecord(*found[_SPLIT[0] : _SPLIT[1]]),
            aliases=sorted(aliases.split(_ALIAS_SEPARATOR)) if aliases else [],
            has_results=bool(has_results),
            downloads=int(downloads or 0),
        )
    with Session(bind=connection) as session:
        repository, version = find_version(session, namespace, name, ref)
        return state_of(session, repository, version)


@dataclass(frozen=True)
class VersionKey:
    """Which version a ref names, and no more: what a file lookup needs."""

    id: int
    number: int
    digest: str


def version_key(connection: Connection, namespace: str, name: str, ref: str | int) -> VersionKey:
    """``version_state`` for file lookups: the version alone, in a lighter statement."""
    found = _lookup(connection, _KEY, namespace, name, ref)
    if found is not None:
        return VersionKey(id=found[0], number=found[1], digest=found[2])
    with Session(bind=connection) as session:
        _repository, version = find_version(session, namespace, name, ref)
        assert version.id is not None
        return VersionKey(id=version.id, number=version.number, digest=version.digest)


_ALIAS_NAMES = (
    select(col(Alias.name))
    .where(col(Alias.version_id) == bindparam("version_id"))
    .order_by(col(Alias.name))
)
_RESULT_EXISTS = (
    select(col(EvalResult.id)).where(col(EvalResult.version_id) == bindparam("version_id")).limit(1)
)


def state_of(
    session: Session, repository: Repository, version: Version, *, results: bool = True
) -> VersionState:
    """``VersionState`` of a version already found (three small queries; two without
    ``results``, whose ``has_results`` is then ``False``)."""
    connection = session.connection()
    aliases = list(connection.execute(_ALIAS_NAMES, {"version_id": version.id}).scalars())
    has_results = results and (
        connection.execute(_RESULT_EXISTS, {"version_id": version.id}).first() is not None
    )
    repo_id = f"{repository.namespace}/{repository.name}"
    return VersionState(
        repository=repository_record(repository),
        version=version_record(version),
        aliases=aliases,
        has_results=has_results,
        downloads=version_downloads(session, repo_id, version.number),
    )
