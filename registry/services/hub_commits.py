"""Hub commits: ``POST /api/models/{repo}/commit/{revision}`` as a new version.

A commit is NDJSON, as ``huggingface_hub`` sends it: a ``header`` line (``summary``,
``description``, optional ``parentCommit``), then one line per operation: ``file``
(base64 content; also what a copy of a small file becomes), ``lfsFile`` (``oid`` =
sha256 of a blob already in the store, with ``size``; copies send no size),
``deletedFile`` and ``deletedFolder``.

Version N+1 = the files of the version the revision points at, plus additions, minus
deletions, published by ``publish_version``: the same validation and the one
transaction of ``lorry push``. The revision is ``main`` (the repository's main alias,
else the latest version) or an alias (a Hub branch), which then moves to the new
version under the protected-alias rules. A result equal to that version is the Hub's
empty commit: no new version, the head's commit id. A ``parentCommit`` that is not the
head is refused (412) before anything is stored; without one, a commit that raced
another is rebuilt on the new head.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlmodel import Session, col, select

from registry.config import Settings
from registry.errors import (
    AliasNotFound,
    BlobNotFound,
    BlobNotUploaded,
    Conflict,
    FileNotFound,
    InvalidInput,
    MissingBlob,
    PreconditionFailed,
    TooLarge,
)
from registry.schemas.repos import FileEntry, PublishRequest
from registry.services.audit import Caller
from registry.services.blob_claims import held, sees_everything
from registry.services.hub import MAIN, find_hub_repository
from registry.services.hub_ndjson import Content, Line
from registry.services.names import parse_ref, repository_id
from registry.services.publish import manifest_digest, publish_version
from registry.storage.base import BlobStore
from registry.tables import Alias, Repository, Version, VersionFile
from registry.validation import ADAPTER_CONFIG, check_path

_ATTEMPTS = 10
"""Builds of a commit without ``parentCommit``: each lost race means another commit landed,
so N concurrent committers need at most N."""
_MAX_MESSAGE = 10_000
_LINE_OVERHEAD = 64 * 1024


@dataclass(frozen=True)
class _Operation:
    kind: Literal["put", "delete_file", "delete_folder"]
    path: str
    sha256: str = ""
    size: int = 0
    uploaded: bool = False
    """The commit carried the file's bytes (inline content), so the namespace holds it."""


@dataclass
class _Commit:
    message: str | None = None
    parent_commit: str | None = None
    operations: list[_Operation] = field(default_factory=list)


@dataclass(frozen=True)
class CommitTarget:
    """Where a commit lands: the alias that moves (``None``: the latest) and its version."""

    alias: str | None
    base: Version | None


@dataclass(frozen=True)
class CommitResult:
    commit: str
    version: int
    created: bool


class _HeadMoved(Exception):
    """The branch moved between reading it and publishing on it (no ``parentCommit``)."""


def max_line_bytes(settings: Settings) -> int:
    """The longest NDJSON line: one file of the largest size, base64-encoded."""
    return settings.max_file_bytes * 4 // 3 + _LINE_OVERHEAD


def commit_target(session: Session, repository: Repository, revision: str) -> CommitTarget:
    repo_id = repository_id(repository.namespace, repository.name)
    if revision == MAIN:
        alias = repository.main_alias
    elif parse_ref(revision).kind == "alias":
        alias = revision
    else:
        raise InvalidInput(
            f"revision {revision!r} names one immutable version of {repo_id}; commit to "
            "`main` or to a branch (an alias: `create_branch` makes one)"
        )
    if alias is None:
        base = session.exec(
            select(Version)
            .where(Version.repository_id == repository.id)
            .order_by(col(Version.number).desc())
            .limit(1)
        ).first()
        return CommitTarget(alias=None, base=base)
    row = session.get(Alias, (repository.id, alias))
    if row is None:
        raise _missing_branch(repo_id, alias)
    return CommitTarget(alias=alias, base=session.get(Version, row.version_id))


def _missing_branch(repo_id: str, alias: str) -> AliasNotFound:
    return AliasNotFound(
        f"{repo_id} has no branch (alias) {alias!r}; create it with "
        f"`HfApi().create_branch({repo_id!r}, branch={alias!r})` or "
        f"`lorry alias set {repo_id} {alias} VERSION`"
    )


def _check_parent(repo_id: str, target: CommitTarget, parent_commit: str | None) -> None:
    if parent_commit is None:
        return
    head = target.base.digest[:40] if target.base is not None else None
    if head != parent_commit.lower():
        raise PreconditionFailed(
            f"parentCommit {parent_commit} is not the head of {repo_id} "
            f"{'branch ' + repr(target.alias) if target.alias else 'main'} (now "
            f"{head or 'no version'}): someone committed since; fetch the head and commit again"
        )


def _field(value: dict[str, Any], name: str, kind: type, line: int) -> Any:
    item = value.get(name)
    if not isinstance(item, kind):
        raise InvalidInput(
            f"commit line {line}: `value.{name}` must be a {kind.__name__}; send the commit "
            "as huggingface_hub's create_commit does"
        )
    return item


def _stored_blob(store: BlobStore, path: str, oid: str, size: int | None) -> _Operation:
    try:
        stored = store.size(oid)
    except BlobNotFound:
        raise MissingBlob(
            f"lfsFile {path!r}: blob sha256:{oid} is not in Lorry's store; upload it first "
            "(the LFS batch API, or PUT /api/v1/blobs/sha256/<hex>), then commit"
        ) from None
    if size is not None and stored != size:
        raise InvalidInput(
            f"lfsFile {path!r}: blob sha256:{oid} holds {stored} bytes, not {size} as the "
            "commit says; upload the file again"
        )
    return _Operation("put", path, oid, stored)


def _operation(
    key: str,
    value: dict[str, Any],
    line: int,
    content: Content | None,
    store: BlobStore,
    settings: Settings,
    holds: Callable[[str], bool],
) -> _Operation:
    path = _field(value, "path", str, line)
    if key in ("deletedFile", "deletedFolder"):
        path = path.rstrip("/") if key == "deletedFolder" else path
        check_path(path)
        return _Operation("delete_folder" if key == "deletedFolder" else "delete_file", path)
    check_path(path)
    if key == "file":
        if value.get("encoding", "base64") != "base64":
            raise InvalidInput(f"commit line {line}: file {path!r} must be base64-encoded")
        if content is None:
            _field(value, "content", str, line)  # raises: not a string
            raise AssertionError("unreachable")
        if content.size > settings.max_file_bytes:
            raise TooLarge(
                f"file {path!r} is {content.size} bytes, over the limit of "
                f"{settings.max_file_bytes} bytes per file (LORRY_MAX_FILE_BYTES)"
            )
        content.store(store)
        return _Operation("put", path, content.sha256, content.size, uploaded=True)
    if key == "lfsFile":
        oid = _field(value, "oid", str, line).lower()
        if value.get("algo", "sha256") != "sha256" or len(oid) != 64:
            raise InvalidInput(f"commit line {line}: lfsFile {path!r} needs a sha256 oid")
        size = value.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
            raise InvalidInput(f"commit line {line}: lfsFile {path!r} has a non-integer size")
        if not holds(oid):
            # Before the store is asked: the answer must not tell whether the blob is stored.
            raise BlobNotUploaded(
                f"lfsFile {path!r}: blob sha256:{oid} was not uploaded to this namespace; "
                "upload the file's bytes first (the LFS batch API or Xet storage, as "
                "huggingface_hub does), then commit",
                path=path,
            )
        return _stored_blob(store, path, oid, size)
    raise InvalidInput(
        f"commit line {line}: unknown operation {key!r}; Lorry takes header, file, lfsFile, "
        "deletedFile and deletedFolder"
    )


def _header(value: dict[str, Any]) -> _Commit:
    summary = str(value.get("summary") or "").strip()
    description = str(value.get("description") or "").strip()
    message = f"{summary}\n\n{description}" if description else summary
    if len(message) > _MAX_MESSAGE:
        raise InvalidInput(f"the commit message is longer than {_MAX_MESSAGE} characters")
    parent = value.get("parentCommit")
    if parent is not None and not isinstance(parent, str):
        raise InvalidInput("header `parentCommit` must be a commit id (40 hex)")
    return _Commit(message=message or None, parent_commit=parent)


def _apply(base: dict[str, FileEntry], operations: list[_Operation]) -> list[FileEntry]:
    files = dict(base)
    for op in operations:
        if op.kind == "put":
            files[op.path] = FileEntry(path=op.path, sha256=op.sha256, size=op.size)
        elif op.kind == "delete_file":
            if files.pop(op.path, None) is None:
                raise FileNotFound(
                    f"cannot delete {op.path!r}: A file with this name doesn't exist at the "
                    "head of the revision"
                )
        else:
            inside = [path for path in files if path.startswith(f"{op.path}/")]
            if not inside:
                raise FileNotFound(f"cannot delete folder {op.path!r}: it holds no file")
            for path in inside:
                del files[path]
    return sorted(files.values(), key=lambda entry: entry.path)


def _base_files(session: Session, version: Version | None) -> dict[str, FileEntry]:
    if version is None:
        return {}
    rows = session.exec(select(VersionFile).where(VersionFile.version_id == version.id)).all()
    return {row.path: FileEntry(path=row.path, sha256=row.sha256, size=row.size) for row in rows}


def _kind(session: Session, repository: Repository, files: list[FileEntry]) -> str:
    has_version = session.exec(
        select(Version.id).where(Version.repository_id == repository.id)
    ).first()
    if has_version is not None:
        return repository.kind
    return "adapter" if any(entry.path == ADAPTER_CONFIG for entry in files) else "model"


def commit(
    session: Session,
    store: BlobStore,
    settings: Settings,
    caller: Caller,
    namespace: str,
    name: str,
    revision: str,
    lines: Iterable[Line],
) -> CommitResult:
    """Apply the NDJSON commit ``lines`` to ``revision`` as a new version (module docstring)."""
    repository = find_hub_repository(session, namespace, name)
    repo_id = repository_id(namespace, name)
    parsed: _Commit | None = None

    def holds(oid: str) -> bool:
        """An lfsFile may name a blob the namespace holds, or bytes this commit carried."""
        assert parsed is not None
        if sees_everything(caller.principal):
            return True
        if any(op.uploaded and op.sha256 == oid for op in parsed.operations):
            return True
        found = held(session, namespace, [oid])
        session.rollback()
        return bool(found)

    for item in lines:
        key, value, number = item.key, item.value, item.number
        if parsed is None:
            if key != "header":
                raise InvalidInput("a commit starts with its header line")
            parsed = _header(value)
            _check_parent(
                repo_id, commit_target(session, repository, revision), parsed.parent_commit
            )
            session.rollback()  # release the read before files are stored
            continue
        operation = _operation(key, value, number, item.content, store, settings, holds)
        parsed.operations.append(operation)
    if parsed is None:
        raise InvalidInput("the commit is empty; send a header line and operations")
    for _ in range(_ATTEMPTS):
        try:
            return _publish(session, store, settings, caller, repository, revision, parsed)
        except _HeadMoved:
            session.expire_all()
    raise Conflict(f"{repo_id} kept changing while this commit was applied; commit again")


def _publish(
    session: Session,
    store: BlobStore,
    settings: Settings,
    caller: Caller,
    repository: Repository,
    revision: str,
    parsed: _Commit,
) -> CommitResult:
    repo_id = repository_id(repository.namespace, repository.name)
    target = commit_target(session, repository, revision)
    _check_parent(repo_id, target, parsed.parent_commit)
    files = _apply(_base_files(session, target.base), parsed.operations)
    if target.base is not None and manifest_digest(files) == target.base.digest:
        return CommitResult(
            commit=target.base.digest[:40], version=target.base.number, created=False
        )
    base_id = target.base.id if target.base is not None else None

    def unchanged_head(locked: Session, locked_repository: Repository) -> None:
        now = commit_target(locked, locked_repository, revision)
        if (now.base.id if now.base is not None else None) != base_id:
            if parsed.parent_commit is not None:
                _check_parent(repo_id, now, parsed.parent_commit)
            raise _HeadMoved

    request = PublishRequest(
        files=files,
        message=parsed.message,
        alias=target.alias,
        kind=_kind(session, repository, files),  # type: ignore[arg-type]
    )
    session.rollback()
    version = publish_version(
        session,
        store,
        settings,
        caller,
        repository.namespace,
        repository.name,
        request,
        precondition=unchanged_head,
        uploaded={op.sha256 for op in parsed.operations if op.uploaded},
    )
    return CommitResult(commit=version.commit, version=version.version, created=True)
