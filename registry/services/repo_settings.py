"""Repository settings: description, tags, and what `main` means to Hugging Face clients."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from registry.db import write_transaction
from registry.errors import AliasNotFound, InvalidInput
from registry.schemas.repos import Repo, RepoUpdate
from registry.services.audit import REPOSITORY_UPDATE, Caller, record_event
from registry.services.base_models import check_base_reference
from registry.services.names import check_alias_name, repository_id
from registry.services.repositories import find_repository, repo_out
from registry.tables import Alias

_MAX_TAGS = 64
_MAX_TAG_LENGTH = 100


def _check_tags(tags: list[str]) -> list[str]:
    cleaned = list(dict.fromkeys(tag.strip() for tag in tags))
    if len(cleaned) > _MAX_TAGS or any(not tag or len(tag) > _MAX_TAG_LENGTH for tag in cleaned):
        raise InvalidInput(
            f"tags must be at most {_MAX_TAGS} non-empty strings of up to "
            f"{_MAX_TAG_LENGTH} characters each"
        )
    return cleaned


def update_repository(
    session: Session, caller: Caller, namespace: str, name: str, update: RepoUpdate
) -> Repo:
    """Apply the fields present in ``update``; an empty ``main_alias`` clears it.

    The main alias must exist when it is set, so that ``main`` keeps resolving;
    one audit event ``repository.update`` records the fields before and after.
    """
    repo_id = repository_id(namespace, name)
    with write_transaction(session):
        repository = find_repository(session, namespace, name)
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        if "main_alias" in update.model_fields_set:
            main_alias = update.main_alias or None
            if main_alias is not None:
                check_alias_name(main_alias)
                exists = session.exec(
                    select(Alias.name).where(
                        Alias.repository_id == repository.id, Alias.name == main_alias
                    )
                ).first()
                if exists is None:
                    raise AliasNotFound(
                        f"{repo_id} has no alias {main_alias!r}; create it first with "
                        f"`lorry alias set {repo_id} {main_alias} VERSION`"
                    )
            if main_alias != repository.main_alias:
                before["main_alias"], after["main_alias"] = repository.main_alias, main_alias
                repository.main_alias = main_alias
        if update.description is not None and update.description != repository.description:
            before["description"], after["description"] = repository.description, update.description
            repository.description = update.description
        if update.base_model is not None:
            link = check_base_reference(session, update.base_model) if update.base_model else None
            if repository.kind != "adapter" and link is not None:
                raise InvalidInput(
                    f"{repo_id} holds models; base_model links adapters to the model they "
                    "were trained on"
                )
            if link != repository.base_model_link:
                before["base_model"], after["base_model"] = repository.base_model_link, link
                repository.base_model_link = link
        if update.tags is not None:
            tags = _check_tags(update.tags)
            if tags != list(repository.tags):
                before["tags"], after["tags"] = list(repository.tags), tags
                repository.tags = tags
        if after:
            session.add(repository)
            record_event(
                session,
                caller,
                REPOSITORY_UPDATE,
                repository=repo_id,
                target=repo_id,
                before=before,
                after=after,
            )
    session.refresh(repository)
    return repo_out(session, repository)
