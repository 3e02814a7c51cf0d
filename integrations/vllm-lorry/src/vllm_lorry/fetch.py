"""Fetch one exact version of an adapter from Lorry, through its Hugging Face Hub API.

Nothing here imports vLLM: ``resolver`` wraps it for vLLM's ``LoRAResolver`` interface.

A reference ``NAMESPACE/NAME@REF`` (``REF``: a version number, an alias such as
``production``, ``latest``, or a digest ``sha256:…``) is resolved once, by asking Lorry
for the model info at that revision: its ``sha`` is the version's commit id, which never
changes. Everything after that is pinned to the commit: ``snapshot_download`` of that
commit (the version's own files; Lorry leaves GGUF exports out of what a snapshot
fetches), and a check of every file against the sha256 that Lorry lists for it. So an
alias that moves while a download runs cannot mix two versions, and a corrupted or
stale cache entry is never served.

The adapter must have been trained on the model vLLM serves: its card's ``base_model``
(Lorry writes the model repository the version links to there) or its
``adapter_config.json``'s ``base_model_name_or_path`` must name it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

LOGGER_NAME = "vllm.lorry_resolver"
"""Under ``vllm``: vLLM configures only its own logger tree, so messages of any other name
below WARNING would never show in its output."""

logger = logging.getLogger(LOGGER_NAME)

REFERENCE = re.compile(r"^(?P<repository>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)@(?P<ref>[\w.:-]+)$")
"""What this resolver answers for: ``NAMESPACE/NAME@REF``; any other name is left to
vLLM's other resolvers."""

_CHUNK = 1 << 20


def _transport_errors() -> tuple[type[BaseException], ...]:
    """What huggingface_hub lets through when a server cannot be reached: the exceptions of
    whichever HTTP library this version of it uses (httpx2, httpx or requests)."""
    errors: list[type[BaseException]] = [OSError, HfHubHTTPError]
    for module, name in (
        ("httpx2", "HTTPError"),
        ("httpx", "HTTPError"),
        ("requests", "RequestException"),
    ):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


_TRANSPORT_ERRORS = _transport_errors()


class LorryResolverError(Exception):
    """Root of this package's errors."""


class AdapterRefused(LorryResolverError):
    """The reference names something that this vLLM must not serve: not a LoRA adapter,
    an adapter of another base model, or files that do not match their digests."""


class RegistryUnavailable(LorryResolverError):
    """Lorry did not answer, or not as Lorry."""


@dataclass(frozen=True)
class Settings:
    """The resolver's configuration, from the environment (see ``from_env``)."""

    url: str
    token: str | None
    cache_dir: Path
    base_model: str | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings | None:
        """``LORRY_URL`` (required: ``None`` without it), ``LORRY_TOKEN``,
        ``LORRY_VLLM_CACHE`` (default ``~/.cache/lorry/vllm``) and ``LORRY_BASE_MODEL``
        (the served model's name in Lorry, where vLLM serves it from a local path)."""
        url = environ.get("LORRY_URL", "").strip()
        if not url:
            return None
        cache = environ.get("LORRY_VLLM_CACHE") or os.path.join("~", ".cache", "lorry", "vllm")
        return cls(
            url=url.rstrip("/"),
            token=environ.get("LORRY_TOKEN") or None,
            cache_dir=Path(cache).expanduser(),
            base_model=environ.get("LORRY_BASE_MODEL") or None,
        )


@dataclass(frozen=True)
class FetchedAdapter:
    reference: str
    repository: str
    version: int | None
    digest: str | None
    commit: str
    path: Path
    base_models: tuple[str, ...]
    """What the adapter says it was trained on: its card's ``base_model`` entries, then
    its ``adapter_config.json``'s ``base_model_name_or_path``."""


def parse_reference(name: str) -> tuple[str, str] | None:
    """``(repository, ref)`` of ``NAMESPACE/NAME@REF``, else ``None``."""
    match = REFERENCE.match(name.strip())
    return (match["repository"], match["ref"]) if match else None


def fetch_adapter(settings: Settings, repository: str, ref: str) -> FetchedAdapter | None:
    """Download the version that ``repository@ref`` names now, pinned to its commit.

    ``None`` when Lorry has no such repository or revision (or the token may not read
    it). Raises ``AdapterRefused`` for a model repository, a version that is not a PEFT
    LoRA adapter, or a file whose sha256 differs from Lorry's; ``RegistryUnavailable``
    when Lorry cannot be reached.
    """
    reference = f"{repository}@{ref}"
    token: str | bool = settings.token or False  # False: never send a Hugging Face token
    api = HfApi(endpoint=settings.url, token=token, library_name="vllm-lorry")
    try:
        info = api.model_info(repository, revision=ref, files_metadata=True)
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        logger.warning("Lorry at %s has no %s: %s", settings.url, reference, _first_line(exc))
        return None
    except _TRANSPORT_ERRORS as exc:
        raise RegistryUnavailable(f"Lorry at {settings.url} failed on {reference}: {exc}") from exc
    lorry: dict[str, Any] = getattr(info, "lorry", None) or {}
    if not info.sha or not lorry:
        raise RegistryUnavailable(
            f"{settings.url} did not answer as Lorry for {reference} (no commit or version); "
            "check LORRY_URL"
        )
    if lorry.get("kind") != "adapter":
        raise AdapterRefused(
            f"{reference} is a {lorry.get('kind')} repository, not a LoRA adapter; "
            "serve models with `vllm serve`"
        )
    expected = {s.rfilename: s.lfs.sha256 for s in info.siblings or [] if s.lfs is not None}
    path = _download(settings, repository, info.sha, token)
    _verify(path, expected, reference)
    config = _adapter_config(path, reference)
    card_base = info.card_data.get("base_model") if info.card_data is not None else None
    return FetchedAdapter(
        reference=reference,
        repository=repository,
        version=lorry.get("version"),
        digest=lorry.get("digest"),
        commit=info.sha,
        path=path,
        base_models=(
            *_names(card_base),
            *_names(config.get("base_model_name_or_path")),
        ),
    )


def check_base_model(adapter: FetchedAdapter, served: str, settings: Settings) -> None:
    """Raise ``AdapterRefused`` unless the adapter was trained on the served model:
    ``served`` (vLLM's model, a path or Hub id) or ``LORRY_BASE_MODEL``."""
    wanted = [name for name in (settings.base_model, served) if name]
    if any(_same_model(base, name) for base in adapter.base_models for name in wanted):
        return
    said = ", ".join(repr(b) for b in adapter.base_models) or "nothing"
    raise AdapterRefused(
        f"{adapter.reference} (version {adapter.version}) is an adapter of {said}, but this "
        f"vLLM serves {' / '.join(repr(n) for n in wanted)}; load it on a server of its base "
        "model, or set LORRY_BASE_MODEL to the name of the served model in Lorry if it is "
        "the same model under another name"
    )


def _download(settings: Settings, repository: str, commit: str, token: str | bool) -> Path:
    try:
        folder = snapshot_download(
            repository,
            revision=commit,
            cache_dir=settings.cache_dir,
            endpoint=settings.url,
            token=token,
            library_name="vllm-lorry",
        )
    except _TRANSPORT_ERRORS as exc:
        raise RegistryUnavailable(
            f"downloading {repository} at commit {commit} from {settings.url} failed: {exc}"
        ) from exc
    return Path(folder)


def _verify(folder: Path, expected: Mapping[str, str], reference: str) -> None:
    for relative, sha256 in expected.items():
        digest = hashlib.sha256()
        with open(folder / relative, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise AdapterRefused(
                f"{reference}: {relative} in {folder} has sha256 {digest.hexdigest()}, but Lorry "
                f"lists {sha256}; delete that folder to download it again"
            )


def _adapter_config(folder: Path, reference: str) -> dict[str, Any]:
    try:
        config: dict[str, Any] = json.loads((folder / "adapter_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise AdapterRefused(f"{reference} has no readable adapter_config.json: {exc}") from exc
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise AdapterRefused(
            f"{reference} is a {config.get('peft_type')!r} adapter; vLLM serves LoRA adapters only"
        )
    return config


def _names(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _same_model(a: str, b: str) -> bool:
    a, b = a.strip().rstrip("/"), b.strip().rstrip("/")
    if a == b or a.partition("@")[0] == b.partition("@")[0]:
        return True
    if os.path.isdir(a) and os.path.isdir(b):
        return os.path.samefile(a, b)
    return False


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
