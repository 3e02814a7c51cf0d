"""Names and references: repository names, alias names and version refs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from registry.errors import InvalidInput, InvalidReference

_REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_ALIAS = re.compile(r"[a-z][a-z0-9._-]{0,63}")
_HEX = re.compile(r"[0-9a-f]+")
RESERVED_ALIASES = frozenset({"latest", "main"})


def repository_id(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def check_repository_name(namespace: str, name: str) -> None:
    for label, part in (("namespace", namespace), ("name", name)):
        if not _REPO_PART.fullmatch(part):
            raise InvalidInput(
                f"invalid repository {label} {part!r}: use 1-96 characters of letters, digits, "
                "'.', '_' or '-', starting with a letter or digit (e.g. acme/sql-gen)"
            )


def split_registry_ref(text: str, refusal: str) -> tuple[str, str, str | None]:
    """``NAMESPACE/NAME[@REF]`` as ``(namespace, name, REF or None)``; anything else is an
    ``InvalidReference`` with the caller's ``refusal`` (which says where the reference came
    from and gives an example)."""
    repo, at, ref = text.strip().partition("@")
    namespace, slash, name = repo.partition("/")
    try:
        if not slash or "/" in name or (at and not ref):
            raise InvalidInput("not NAMESPACE/NAME[@REF]")
        check_repository_name(namespace, name)
    except InvalidInput:
        raise InvalidReference(refusal) from None
    return namespace, name, ref or None


def check_namespace(namespace: str) -> None:
    """Refuse a namespace that no repository may have."""
    check_repository_name(namespace, "name")


def _is_hex_digest(text: str) -> bool:
    return len(text) in (40, 64) and _HEX.fullmatch(text) is not None


def check_alias_name(name: str) -> None:
    if name in RESERVED_ALIASES:
        raise InvalidInput(
            f"alias name {name!r} is reserved (it always means the newest version); "
            "choose another name such as 'production' or 'staging'"
        )
    if not _ALIAS.fullmatch(name) or _is_hex_digest(name):
        raise InvalidInput(
            f"invalid alias name {name!r}: use 1-64 characters of lowercase letters, digits, "
            "'.', '_' or '-', starting with a letter, and not a 40- or 64-hex digest "
            "(e.g. production, staging, prod-eu)"
        )


RefKind = Literal["number", "latest", "digest", "commit", "alias"]


@dataclass(frozen=True)
class Ref:
    kind: RefKind
    value: str
    """The number as text, the hex digest or commit, or the alias name."""

    @property
    def number(self) -> int:
        return int(self.value)


def parse_ref(text: str | int) -> Ref:
    """A version number, ``latest``, ``sha256:<64hex>``, a bare 64-hex digest, a 40-hex
    commit id or an alias name."""
    raw = str(text).strip()
    if raw.isdigit() and raw.isascii():
        return Ref("number", str(int(raw)))
    if raw == "latest":
        return Ref("latest", raw)
    lowered = raw.lower()
    if lowered.startswith("sha256:"):
        digest = lowered.removeprefix("sha256:")
        if len(digest) == 64 and _HEX.fullmatch(digest):
            return Ref("digest", digest)
        raise InvalidReference(
            f"invalid digest {raw!r}: a digest is 'sha256:' followed by 64 hex characters"
        )
    if _is_hex_digest(lowered):
        return Ref("digest" if len(lowered) == 64 else "commit", lowered)
    if _ALIAS.fullmatch(raw):
        return Ref("alias", raw)
    raise InvalidReference(
        f"invalid version reference {raw!r}: use a version number (3), 'latest', an alias "
        "(production), a digest (sha256:<64 hex>) or a 40-hex commit id"
    )
