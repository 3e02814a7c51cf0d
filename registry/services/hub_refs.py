"""Hub branches and tags as aliases, and versions as commits.

``create_branch`` and ``create_tag`` create an alias (409 if it exists, as on the Hub)
at a starting revision; deleting a branch or tag deletes the alias. Both go through
``point_alias`` / ``delete_alias``: protected-alias rules, scopes, alias history and
audit are those of ``lorry alias set``. The tag message is the alias move's reason; a
branch has none, so a protected alias needs ``lorry alias set --reason`` instead.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from registry.db import write_transaction
from registry.errors import Conflict
from registry.schemas.hub import HubCommit, HubCommitAuthor
from registry.services.aliases import delete_alias, point_alias
from registry.services.audit import Caller
from registry.services.hub import MAIN, empty_at_main, hub_timestamp, resolve_revision
from registry.services.names import check_alias_name, repository_id
from registry.services.repositories import find_repository
from registry.tables import Alias, Version

COMMITS_PAGE_SIZE = 100


def create_alias_ref(
    session: Session,
    caller: Caller,
    namespace: str,
    name: str,
    alias: str,
    starting_point: str | None,
    reason: str | None,
) -> None:
    """A new alias at ``starting_point`` (``main`` when absent); 409 when it exists."""
    check_alias_name(alias)
    repo_id = repository_id(namespace, name)
    if alias == MAIN:
        raise Conflict(f"`main` of {repo_id} exists: it is the latest version or its main alias")
    version = resolve_revision(session, namespace, name, starting_point or MAIN).version
    with write_transaction(session):
        repository = find_repository(session, namespace, name)
        if session.get(Alias, (repository.id, alias)) is not None:
            raise Conflict(
                f"Reference already exists: {repo_id} has an alias {alias!r}; move it with "
                f"`lorry alias set {repo_id} {alias} VERSION`"
            )
        current = session.get(Version, version.id)
        assert current is not None
        point_alias(session, repository, alias, current, reason, caller)


def delete_alias_ref(
    session: Session, caller: Caller, namespace: str, name: str, alias: str
) -> None:
    delete_alias(session, namespace, name, alias, None, caller)


def list_commits(
    session: Session, namespace: str, name: str, revision: str, offset: int
) -> tuple[list[HubCommit], bool]:
    """The versions up to the revision's, newest first, one page; and whether more follow."""
    if empty_at_main(session, namespace, name, revision) is not None:
        return [], False
    resolved = resolve_revision(session, namespace, name, revision)
    rows = session.exec(
        select(Version)
        .where(
            Version.repository_id == resolved.repository.id,
            col(Version.number) <= resolved.version.number,
        )
        .order_by(col(Version.number).desc())
        .offset(offset)
        .limit(COMMITS_PAGE_SIZE + 1)
    ).all()
    commits = [
        HubCommit(
            id=row.digest[:40],
            title=(row.message or f"version {row.number}").split("\n", 1)[0],
            message=row.message or "",
            authors=[HubCommitAuthor(user=row.created_by)],
            date=hub_timestamp(row.created_at),
        )
        for row in rows[:COMMITS_PAGE_SIZE]
    ]
    return commits, len(rows) > COMMITS_PAGE_SIZE
