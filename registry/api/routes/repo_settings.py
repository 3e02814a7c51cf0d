from __future__ import annotations

from fastapi import APIRouter

from registry.api.deps import CallerDep, SessionDep
from registry.schemas.repos import Repo, RepoUpdate
from registry.services import repo_settings

router = APIRouter(prefix="/repos", tags=["repositories"])


@router.patch("/{namespace}/{name}")
def update_repository(
    session: SessionDep, caller: CallerDep, namespace: str, name: str, body: RepoUpdate
) -> Repo:
    """Change repository settings: `main_alias` (what `main` means to Hugging Face clients;
    null or empty for the latest version), `description`, `tags`, `base_model` (the model
    repository `NAMESPACE/NAME[@REF]` that new adapter versions, Hub commits included,
    link to; empty clears it)."""
    return repo_settings.update_repository(session, caller, namespace, name, body)
