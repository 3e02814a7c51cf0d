"""Base models as they may be shown: a registry link or a Hub id, never a local path.

Pure functions of the stored values (no database), shared by the repository listing and
publishing (``registry.services.base_models`` chooses the link).
"""

from __future__ import annotations

import re
from typing import Any

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
"""A Hugging Face Hub id or a registry repository: ``namespace/name``."""


def usable_base_model(link: str | None, base_model_name_or_path: str | None) -> str | None:
    """What to show as the base model: the link, else a Hub id; never a local path."""
    if link:
        return link
    named = base_model_name_or_path
    if named and HUB_ID.fullmatch(named) and ".." not in named:
        return named
    return None


def _usable(named: object) -> bool:
    return isinstance(named, str) and usable_base_model(None, named) is not None


def card_with_usable_base(card: dict[str, Any], link: str | None) -> dict[str, Any]:
    """The parsed front matter of an adapter's card with its base model as a usable
    reference: a local path (what PEFT's ``save_pretrained`` writes there) is replaced by
    the link's repository, or dropped; so are ``base_model:...`` tags naming one. The
    README.md file itself stays as it was pushed."""
    linked = link.partition("@")[0] if link else None
    result = dict(card)
    base = result.get("base_model")
    if isinstance(base, list):
        kept = [item for item in base if _usable(item)]
        base = kept or None
    elif not _usable(base):
        base = None
    base = linked or base
    if base is None:
        result.pop("base_model", None)
    else:
        result["base_model"] = base
    tags = result.get("tags")
    if isinstance(tags, list):
        kept_tags = [
            tag
            for tag in tags
            if not (isinstance(tag, str) and tag.startswith("base_model:"))
            or _usable(tag.split(":", 2)[-1])
        ]
        if linked and f"base_model:adapter:{linked}" not in kept_tags:
            kept_tags.insert(0, f"base_model:adapter:{linked}")
        result["tags"] = kept_tags
    return result
