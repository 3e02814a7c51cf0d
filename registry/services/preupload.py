"""Hub preupload: which files of a coming commit travel how (``upload_modes``).

Answers for a revision that a commit can go to (``main`` or an alias), so that a client
learns of a missing repository or branch before it sends any bytes.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from registry.config import Settings
from registry.errors import InvalidInput
from registry.services.hub import find_hub_repository
from registry.services.hub_commits import commit_target
from registry.services.upload_modes import upload_mode
from registry.validation import check_path

MAX_FILES = 1000
"""The Hub's client asks about at most 256 files per request."""


def _file(item: object) -> tuple[str, int]:
    if not isinstance(item, dict):
        raise InvalidInput("preupload takes {'files': [{'path', 'size', 'sample'}, ...]}")
    path, size = item.get("path"), item.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInput(f"preupload: file {path!r} needs a non-negative integer size")
    return check_path(path), size


def preupload(
    session: Session,
    settings: Settings,
    namespace: str,
    name: str,
    revision: str,
    body: dict[str, Any],
    user_agent: str | None,
) -> dict[str, Any]:
    files = body.get("files")
    if not isinstance(files, list) or len(files) > MAX_FILES:
        raise InvalidInput(f"preupload takes {{'files': [...]}} with at most {MAX_FILES} files")
    repository = find_hub_repository(session, namespace, name)
    target = commit_target(session, repository, revision)
    answers = []
    for item in files:
        path, size = _file(item)
        mode = upload_mode(size, settings=settings, user_agent=user_agent)
        answers.append({"path": path, "uploadMode": mode, "shouldIgnore": False})
    head = target.base.digest[:40] if target.base is not None else None
    return {"files": answers, "commitOid": head}
