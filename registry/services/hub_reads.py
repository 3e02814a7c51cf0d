"""The hot reads of the Hub API: model info at a revision and the file a resolve names.

One statement each on the hot path (a revision other than ``main``, a version whose files
are cached: ``registry.services.version_reads``), on the connection the route's reader
hands over (``registry.api.reads``); ``main`` and the lookups that name what is missing
open a session on that connection. Revisions, commit ids and the LFS view of files are
described in ``registry.services.hub``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection
from sqlmodel import Session

from registry.errors import FileNotFound, InvalidInput, InvalidReference, RepositoryNotFound
from registry.schemas.hub import HubLfs, HubModelInfo, HubSibling
from registry.services.derived_files import derived_file
from registry.services.evals import card_with_results
from registry.services.hub import (
    MAIN,
    empty_at_main,
    git_blob_id,
    hub_timestamp,
    lfs_pointer_size,
    resolve_revision,
)
from registry.services.names import repository_id
from registry.services.version_reads import (
    FileRow,
    RepositoryRecord,
    VersionKey,
    VersionRecord,
    VersionState,
    state_of,
    version_files,
    version_key,
    version_state,
)
from registry.services.versions import VersionFileRef
from registry.tables import Repository, VersionFile


@dataclass(frozen=True)
class HubFile:
    """A file at a resolved revision, with the commit id the Hub headers carry."""

    file: VersionFileRef
    commit: str


def _empty_model_info(repository: Repository) -> HubModelInfo:
    repo_id = repository_id(repository.namespace, repository.name)
    return HubModelInfo(
        id=repo_id,
        modelId=repo_id,
        author=repository.namespace,
        sha=None,
        lastModified=hub_timestamp(repository.created_at),
        createdAt=hub_timestamp(repository.created_at),
        library_name="peft" if repository.kind == "adapter" else "transformers",
        pipeline_tag=None,
        tags=[*repository.tags, "lorry"],
        cardData={},
        siblings=[],
        usedStorage=0,
        lorry={"version": None, "digest": None, "aliases": [], "kind": repository.kind},
    )


def _tags(repository: RepositoryRecord, version: VersionRecord) -> list[str]:
    card_tags = version.card.get("tags")
    tags = list(repository.tags)
    if isinstance(card_tags, list):
        tags.extend(str(tag) for tag in card_tags)
    tags.append("lorry")
    if version.kind == "adapter":
        tags.extend(["peft", "lora"])
    return list(dict.fromkeys(tags))


def _siblings(connection: Connection, version: VersionRecord) -> list[HubSibling]:
    """The version's files as Hub siblings, computed once per digest (``version_reads``)."""
    files = version_files(connection, version)
    siblings: list[HubSibling] | None = files.derived.get("hub_siblings")
    if siblings is None:
        siblings = [
            HubSibling(
                rfilename=f.path,
                size=f.size,
                blobId=git_blob_id(f.sha256, f.size),
                lfs=HubLfs(
                    sha256=f.sha256, size=f.size, pointerSize=lfs_pointer_size(f.sha256, f.size)
                ),
            )
            for f in files.files
        ]
        files.derived["hub_siblings"] = siblings
    return siblings


def _main_state(session: Session, namespace: str, name: str) -> VersionState | HubModelInfo:
    """The state of ``main``, or the model info of a repository without a version yet."""
    empty = empty_at_main(session, namespace, name, MAIN)
    if empty is not None:
        return _empty_model_info(empty)
    resolved = resolve_revision(session, namespace, name, MAIN)
    return state_of(session, resolved.repository, resolved.version)


def _revision_state(
    connection: Connection, namespace: str, name: str, revision: str
) -> VersionState | HubModelInfo:
    """``resolve_revision`` with the version's aliases and whether it has results: one
    statement for a revision other than ``main`` (``registry.services.version_reads``)."""
    if revision == MAIN:
        with Session(bind=connection) as session:
            return _main_state(session, namespace, name)
    try:
        return version_state(connection, namespace, name, revision)
    except InvalidReference:
        raise
    except InvalidInput as exc:
        raise RepositoryNotFound(exc.message) from exc


def model_info(connection: Connection, namespace: str, name: str, revision: str) -> HubModelInfo:
    state = _revision_state(connection, namespace, name, revision)
    if isinstance(state, HubModelInfo):
        return state
    repository, version = state.repository, state.version
    repo_id = repository_id(repository.namespace, repository.name)
    card = dict(version.card)
    if state.has_results:
        with Session(bind=connection) as session:
            card = card_with_results(session, card, repo_id, version.id)
    library = card.get("library_name")
    pipeline = card.get("pipeline_tag")
    return HubModelInfo(
        id=repo_id,
        modelId=repo_id,
        author=repository.namespace,
        sha=version.digest[:40],
        lastModified=hub_timestamp(version.created_at),
        createdAt=hub_timestamp(repository.created_at),
        library_name=str(library)
        if library
        else ("peft" if version.kind == "adapter" else "transformers"),
        pipeline_tag=str(pipeline) if pipeline else None,
        tags=_tags(repository, version),
        cardData=card,
        siblings=_siblings(connection, version),
        usedStorage=version.size,
        lorry={
            "version": version.number,
            "digest": f"sha256:{version.digest}",
            "aliases": state.aliases,
            "kind": version.kind,
            "main_alias": repository.main_alias,
        },
    )


def _revision_key(
    connection: Connection, namespace: str, name: str, revision: str
) -> VersionKey | None:
    """The version a revision names (``None``: ``main`` of a repository without one yet)."""
    if revision == MAIN:
        with Session(bind=connection) as session:
            if empty_at_main(session, namespace, name, MAIN) is not None:
                return None
            version = resolve_revision(session, namespace, name, MAIN).version
            assert version.id is not None
            return VersionKey(id=version.id, number=version.number, digest=version.digest)
    try:
        return version_key(connection, namespace, name, revision)
    except InvalidReference:
        raise
    except InvalidInput as exc:
        raise RepositoryNotFound(exc.message) from exc


def find_hub_file(
    connection: Connection, namespace: str, name: str, revision: str, path: str
) -> HubFile:
    """A file at a revision: one statement on the hot path (a revision other than ``main``
    naming a version whose files are cached, ``registry.services.version_reads``)."""
    version = _revision_key(connection, namespace, name, revision)
    repo_id = repository_id(namespace, name)
    if version is None:
        raise FileNotFound(f"{repo_id} has no version yet, so no file {path!r}; commit one first")
    commit = version.digest[:40]
    row: FileRow | VersionFile | None = version_files(connection, version).by_path.get(path)
    if row is None:
        with Session(bind=connection) as session:
            row = derived_file(session, version.id, path)
    if row is None:
        raise FileNotFound(
            f"version {version.number} of {repo_id} (revision {revision!r}) has no file {path!r}",
            commit=commit,
        )
    file = VersionFileRef(
        repository=repo_id,
        version=version.number,
        digest=f"sha256:{version.digest}",
        path=row.path,
        sha256=row.sha256,
        size=row.size,
    )
    return HubFile(file=file, commit=commit)
