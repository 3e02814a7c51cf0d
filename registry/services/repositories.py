"""Repositories: find, list and search, and create on first push."""

from __future__ import annotations

from sqlalchemy import String, bindparam, cast, func, or_
from sqlmodel import Session, col, select

from registry.db import insert_or_ignore
from registry.errors import RepositoryArchived, RepositoryDeleted, RepositoryNotFound
from registry.schemas.repos import Repo, RepoArchive, RepoList
from registry.services.access_log import repository_downloads
from registry.services.audit import REPOSITORY_CREATE, Caller, record_event
from registry.services.names import check_repository_name, repository_id
from registry.services.tombstones import repository_tombstone, tombstone_message
from registry.services.visibility import EVERYTHING, Visibility
from registry.tables import Alias, Repository, Version, utcnow
from registry.validation.base_model_names import usable_base_model

_REPOSITORY = select(Repository).where(
    col(Repository.namespace) == bindparam("namespace"), col(Repository.name) == bindparam("name")
)
"""Built once: see ``registry.services.refs``."""


def find_repository(session: Session, namespace: str, name: str) -> Repository:
    check_repository_name(namespace, name)
    row = session.exec(_REPOSITORY, params={"namespace": namespace, "name": name}).first()
    if row is None:
        repo_id = repository_id(namespace, name)
        tombstone = repository_tombstone(session, repo_id)
        if tombstone is not None:
            raise RepositoryDeleted(tombstone_message(f"repository {repo_id}", tombstone))
        raise RepositoryNotFound(
            f"repository {repo_id} does not exist; "
            "push a version to create it, or check the name with `lorry ls`"
        )
    return row


def check_writable(repository: Repository) -> None:
    """Refuse a change to an archived repository (a version, an alias move, an export)."""
    if repository.archived_at is None:
        return
    repo_id = repository_id(repository.namespace, repository.name)
    when = repository.archived_at.strftime("%Y-%m-%d")
    raise RepositoryArchived(
        f"{repo_id} is archived (on {when} by {repository.archived_by}: "
        f"{repository.archive_reason}), so it takes no new versions, alias moves or exports; "
        f"its versions still pull. To change it, unarchive it first: "
        f"`lorry repo unarchive {repo_id}`"
    )


def lock_repository(session: Session, namespace: str, name: str) -> Repository:
    """The repository row, locked until the transaction ends (``FOR UPDATE`` on PostgreSQL;
    SQLite's write transaction already holds the whole database): alias moves of one
    repository, through any replica, queue here instead of racing to insert the same
    alias or recording a stale ``before``."""
    find_repository(session, namespace, name)
    return session.exec(
        select(Repository)
        .where(Repository.namespace == namespace, Repository.name == name)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def lock_or_create_repository(
    session: Session, namespace: str, name: str, kind: str, caller: Caller
) -> Repository:
    """The repository row, locked for this transaction; created (and audited) if new.

    ``INSERT ... ON CONFLICT DO NOTHING`` lets concurrent first pushes all
    succeed; ``SELECT ... FOR UPDATE`` then serialises them on PostgreSQL
    (SQLite serialises whole write transactions, see ``db.begin_write``).
    """
    values = {
        "namespace": namespace,
        "name": name,
        "kind": kind,
        "description": "",
        "tags": [],
        "created_by": caller.actor,
        "created_at": utcnow(),
    }
    statement = insert_or_ignore(
        session, Repository, values, unique=["namespace", "name"]
    ).returning(col(Repository.id))
    created = session.execute(statement).first() is not None
    row = session.exec(
        select(Repository)
        .where(Repository.namespace == namespace, Repository.name == name)
        .with_for_update()
    ).one()
    if created:
        record_event(
            session,
            caller,
            REPOSITORY_CREATE,
            repository=repository_id(namespace, name),
            target=repository_id(namespace, name),
            after={"kind": kind},
        )
    check_writable(row)
    return row


def repo_out(session: Session, row: Repository) -> Repo:
    assert row.id is not None
    latest = session.exec(
        select(Version)
        .where(Version.repository_id == row.id)
        .order_by(col(Version.number).desc())
        .limit(1)
    ).first()
    aliases = session.exec(
        select(Alias.name, Version.number)
        .join(Version, col(Version.id) == col(Alias.version_id))
        .where(Alias.repository_id == row.id)
        .order_by(col(Alias.name))
    ).all()
    return Repo(
        id=repository_id(row.namespace, row.name),
        namespace=row.namespace,
        name=row.name,
        kind=row.kind,
        description=row.description,
        tags=list(row.tags),
        created_by=row.created_by,
        created_at=row.created_at,
        latest_version=latest.number if latest else None,
        aliases={alias: number for alias, number in aliases},
        base_model=usable_base_model(latest.base_model_link, latest.base_model) if latest else None,
        base_model_link=latest.base_model_link if latest else None,
        base_model_setting=row.base_model_link,
        main_alias=row.main_alias,
        downloads=repository_downloads(session, repository_id(row.namespace, row.name)),
        archived=_archive_out(row),
    )


def _archive_out(row: Repository) -> RepoArchive | None:
    if row.archived_at is None:
        return None
    return RepoArchive(at=row.archived_at, by=row.archived_by or "", reason=row.archive_reason)


def get_repository(session: Session, namespace: str, name: str) -> Repo:
    return repo_out(session, find_repository(session, namespace, name))


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_repositories(
    session: Session,
    *,
    q: str | None = None,
    namespace: str | None = None,
    base_model: str | None = None,
    tag: str | None = None,
    kind: str | None = None,
    limit: int = 50,
    offset: int = 0,
    visible: Visibility = EVERYTHING,
    archived: bool = False,
) -> RepoList:
    """Repositories matching every filter, by id; ``q`` searches id, description and tags;
    ``visible`` limits them to what the caller may read; archived ones only with
    ``archived``."""
    conditions = [visible.where(col(Repository.namespace), repository=False)]
    if not archived:
        conditions.append(col(Repository.archived_at).is_(None))
    if q:
        pattern = _like(q.lower())
        full_id = func.lower(col(Repository.namespace) + "/" + col(Repository.name))
        conditions.append(
            or_(
                full_id.like(pattern, escape="\\"),
                func.lower(col(Repository.description)).like(pattern, escape="\\"),
                func.lower(cast(col(Repository.tags), String)).like(pattern, escape="\\"),
            )
        )
    if namespace:
        conditions.append(col(Repository.namespace) == namespace)
    if kind:
        conditions.append(col(Repository.kind) == kind)
    if tag:
        conditions.append(cast(col(Repository.tags), String).like(_like(f'"{tag}"'), escape="\\"))
    if base_model:
        latest_numbers = (
            select(
                col(Version.repository_id).label("repository_id"),
                func.max(col(Version.number)).label("number"),
            )
            .group_by(col(Version.repository_id))
            .subquery()
        )
        matching = (
            select(col(Version.repository_id))
            .join(
                latest_numbers,
                (latest_numbers.c.repository_id == col(Version.repository_id))
                & (latest_numbers.c.number == col(Version.number)),
            )
            .where(col(Version.base_model) == base_model)
        )
        conditions.append(col(Repository.id).in_(matching))
    total = session.exec(select(func.count()).select_from(Repository).where(*conditions)).one()
    rows = session.exec(
        select(Repository)
        .where(*conditions)
        .order_by(col(Repository.namespace), col(Repository.name))
        .limit(limit)
        .offset(offset)
    ).all()
    return RepoList(items=[repo_out(session, row) for row in rows], total=total)
