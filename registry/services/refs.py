"""Resolve a version reference (number, latest, digest, commit id, alias) to a version row."""

from __future__ import annotations

from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from registry.errors import (
    AliasNotFound,
    InvalidReference,
    LorryError,
    VersionDeleted,
    VersionNotFound,
)
from registry.services.names import parse_ref, repository_id
from registry.services.repositories import find_repository
from registry.services.tombstones import tombstone_message, version_tombstone
from registry.tables import Alias, Repository, Version


def resolve_ref(session: Session, repository: Repository, ref: str | int) -> Version:
    parsed = parse_ref(ref)
    repo_id = repository_id(repository.namespace, repository.name)
    query = select(Version).where(Version.repository_id == repository.id)
    if parsed.kind == "number":
        row = session.exec(query.where(Version.number == parsed.number)).first()
        missing = f"version {parsed.value}"
    elif parsed.kind == "latest":
        row = session.exec(query.order_by(col(Version.number).desc()).limit(1)).first()
        missing = "versions"
    elif parsed.kind == "digest":
        row = session.exec(query.where(Version.digest == parsed.value)).first()
        missing = f"a version with digest sha256:{parsed.value}"
    elif parsed.kind == "commit":
        matches = session.exec(
            query.where(col(Version.digest).startswith(parsed.value)).limit(2)
        ).all()
        if len(matches) > 1:
            raise InvalidReference(
                f"commit id {parsed.value} matches several versions of {repo_id}; "
                "use the full sha256 digest"
            )
        row = matches[0] if matches else None
        missing = f"a version with commit id {parsed.value}"
    else:
        row = session.exec(
            select(Version)
            .join(Alias, col(Alias.version_id) == col(Version.id))
            .where(Alias.repository_id == repository.id, Alias.name == parsed.value)
        ).first()
        if row is None:
            raise AliasNotFound(
                f"{repo_id} has no alias {parsed.value!r}; list its aliases with "
                f"`lorry show {repo_id}` or use a version number"
            )
        return row
    if row is None:
        tombstone = version_tombstone(session, repo_id, parsed.kind, parsed.value)
        if tombstone is not None:
            what = f"version {tombstone.version} of {repo_id} (sha256:{tombstone.digest})"
            raise VersionDeleted(tombstone_message(what, tombstone))
        raise VersionNotFound(
            f"{repo_id} has no {missing}; list its versions with `lorry show {repo_id}`"
        )
    return row


# Built once: building a statement and computing its cache key costs about a millisecond
# each time (measured), several times what executing it costs; with bound parameters the
# compiled form is cached and reused.
_REPOSITORY_VERSION = (
    select(Repository, Version)
    .join(Version, col(Version.repository_id) == col(Repository.id))
    .where(
        col(Repository.namespace) == bindparam("namespace"),
        col(Repository.name) == bindparam("name"),
    )
)
_FIND_VERSION = {
    "number": _REPOSITORY_VERSION.where(col(Version.number) == bindparam("number")),
    "latest": _REPOSITORY_VERSION.order_by(col(Version.number).desc()).limit(1),
    "digest": _REPOSITORY_VERSION.where(col(Version.digest) == bindparam("value")),
    "alias": _REPOSITORY_VERSION.join(Alias, col(Alias.version_id) == col(Version.id)).where(
        col(Alias.repository_id) == col(Repository.id), col(Alias.name) == bindparam("value")
    ),
}


def find_version(
    session: Session, namespace: str, name: str, ref: str | int
) -> tuple[Repository, Version]:
    """The repository and the version ``ref`` names, in one query on the hot path (a number,
    ``latest``, a digest or an alias); the two-step lookup runs for commit ids and to name
    what is missing."""
    try:
        parsed = parse_ref(ref)
    except LorryError:
        parsed = None
    if parsed is not None and parsed.kind in _FIND_VERSION:
        params: dict[str, object] = {"namespace": namespace, "name": name, "value": parsed.value}
        if parsed.kind == "number":
            params["number"] = parsed.number
        found = session.execute(_FIND_VERSION[parsed.kind], params).first()
        if found is not None:
            return found[0], found[1]
    repository = find_repository(session, namespace, name)
    return repository, resolve_ref(session, repository, ref)
