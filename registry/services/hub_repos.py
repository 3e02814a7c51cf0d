"""Hub repository calls: ``create_repo``, ``delete_repo``, ``whoami``, ``list_models``,
``validate-yaml``.

``create_repo`` creates an empty repository (no version; its kind is taken from its
first commit). ``delete_repo`` is refused: a Hub client sends no reason, and deleting
(``registry.services.lifecycle``) is an admin's act with a reason, refused while aliases
or lineage depend on the repository; the message names the commands that do it.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from registry.db import write_transaction
from registry.errors import Conflict, DeletionRefused, InvalidInput
from registry.schemas.hub import HubModelSummary, HubRepoUrl
from registry.services.audit import Caller
from registry.services.hub import hub_timestamp
from registry.services.names import check_repository_name, repository_id
from registry.services.principals import ADMIN, PROMOTE, READ, WRITE, Principal
from registry.services.repositories import list_repositories, lock_or_create_repository
from registry.services.visibility import Visibility
from registry.tables import Repository, Version
from registry.validation import parse_model_card

MODEL_TYPE = "model"


def repo_from_body(body: dict[str, Any]) -> tuple[str, str]:
    """``(namespace, name)`` of a ``/api/repos/*`` body (``organization`` and ``name``)."""
    name, organization = body.get("name"), body.get("organization")
    kind = body.get("type") or MODEL_TYPE
    if kind != MODEL_TYPE:
        raise InvalidInput(
            f"Lorry holds model repositories (adapters and models), not {kind}s; create it "
            "without repo_type"
        )
    if not isinstance(name, str) or not isinstance(organization, str) or not organization:
        raise InvalidInput(
            "a repository id is NAMESPACE/NAME, e.g. create_repo('acme/sql-gen'); Lorry has no "
            "per-user default namespace"
        )
    check_repository_name(organization, name)
    return organization, name


def create_repository(
    session: Session, caller: Caller, namespace: str, name: str, endpoint: str
) -> HubRepoUrl:
    """An empty repository; 409 (which ``exist_ok=True`` accepts) when it exists."""
    repo_id = repository_id(namespace, name)
    with write_transaction(session):
        exists = session.exec(
            select(Repository.id).where(Repository.namespace == namespace, Repository.name == name)
        ).first()
        if exists is not None:
            raise Conflict(
                f"You already created this model repo: {repo_id} exists",
                url=f"{endpoint}/{repo_id}",
            )
        lock_or_create_repository(session, namespace, name, "adapter", caller)
    return HubRepoUrl(url=f"{endpoint}/{repo_id}", name=repo_id, id=repo_id)


def refuse_deletion(namespace: str, name: str) -> None:
    repo_id = repository_id(namespace, name)
    raise DeletionRefused(
        f"Lorry does not delete a repository through the Hub API, which sends no reason. "
        f"To retire {repo_id} while its versions still pull, archive it: "
        f"`lorry repo archive {repo_id} --reason TEXT`. To delete it (an admin, with a "
        f"reason; refused while aliases or derived versions depend on it): "
        f"`lorry repo delete {repo_id} --reason TEXT`; the next `lorry gc --delete` "
        "reclaims its blobs"
    )


def validate_yaml(body: dict[str, Any]) -> dict[str, Any]:
    """The Hub's answer to ``validate-yaml``; a malformed card raises ``InvalidModelCard``."""
    content = body.get("content")
    if not isinstance(content, str):
        raise InvalidInput("validate-yaml takes {'content': '<README.md text>'}")
    parse_model_card(content)
    return {"errors": [], "warnings": []}


def whoami(principal: Principal) -> dict[str, Any]:
    """The token's principal and scopes, shaped like the Hub's ``whoami-v2``."""
    role = "write" if principal.scopes & {WRITE, ADMIN} else "read"
    if not principal.scopes & {READ, WRITE, PROMOTE, ADMIN}:
        role = "none"
    orgs = [
        {"type": "org", "name": pattern.removesuffix("/*")}
        for pattern in principal.namespaces
        if "*" not in pattern.removesuffix("/*")
    ]
    return {
        "type": "user",
        "id": principal.name,
        "name": principal.name,
        "fullname": principal.name,
        "email": None,
        "emailVerified": False,
        "isPro": False,
        "canPay": False,
        "orgs": orgs,
        "auth": {
            "type": "access_token",
            "accessToken": {"displayName": principal.token_id or principal.name, "role": role},
        },
        "lorry": {
            "principal": principal.name,
            "scopes": sorted(principal.scopes),
            "namespaces": list(principal.namespaces),
            "token_id": principal.token_id,
        },
    }


def list_models(
    session: Session,
    principal: Principal,
    *,
    search: str | None,
    author: str | None,
    limit: int,
    offset: int,
) -> tuple[list[HubModelSummary], int]:
    """Repositories the caller may read, filtered as the Hub does, with the total."""
    page = list_repositories(
        session,
        q=search,
        namespace=author,
        limit=limit,
        offset=offset,
        visible=Visibility.of(principal),
    )
    heads = _latest_versions(session, [item.id for item in page.items])
    models = []
    for item in page.items:
        head = heads.get(item.id)
        models.append(
            HubModelSummary(
                _id=item.id,
                id=item.id,
                modelId=item.id,
                author=item.namespace,
                sha=head.digest[:40] if head is not None else None,
                lastModified=hub_timestamp(head.created_at if head else item.created_at),
                createdAt=hub_timestamp(item.created_at),
                library_name="peft" if item.kind == "adapter" else "transformers",
                tags=[*item.tags, "lorry"],
            )
        )
    return models, page.total


def _latest_versions(session: Session, repo_ids: list[str]) -> dict[str, Version]:
    heads: dict[str, Version] = {}
    for repo_id in repo_ids:
        namespace, name = repo_id.split("/", 1)
        head = session.exec(
            select(Version)
            .join(Repository, col(Repository.id) == col(Version.repository_id))
            .where(Repository.namespace == namespace, Repository.name == name)
            .order_by(col(Version.number).desc())
            .limit(1)
        ).first()
        if head is not None:
            heads[repo_id] = head
    return heads
