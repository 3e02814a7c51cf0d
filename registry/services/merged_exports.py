"""Merged exports: an adapter version merged into a base model and exported as one GGUF
model file (``lorry export gguf ADAPTER --merge-into BASE --outtype q4_k_m``), stored as
an export of the adapter version.

Submission checks what it can without reading a weight, with the composer's own rules
(``composer.export.read_model_spec`` for the base's architecture,
``composer.api.check_merge_shapes`` for every adapted module against the base's
safetensors headers, read as byte ranges of their blobs), and pins the base to its
digest: the job merges exactly that version whatever its aliases do later. The path
names the base and its digest, so one adapter version may hold merges into several
bases, and the same request answers with the same export.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import Session, col, select

from registry.config import Settings
from registry.errors import InvalidInput
from registry.schemas.compose import JobInput
from registry.services.base_models import readable_model_version
from registry.storage.base import BlobStore
from registry.storage.scratch import scratch_directory
from registry.tables import Version, VersionFile
from registry.validation.safetensors_header import read_exact, read_safetensors_header

__all__ = ["merged_export_path", "resolve_merge_base"]

_CONFIG = "config.json"


def merged_export_path(base_name: str, base_digest_hex: str, outtype: str) -> str:
    """``merged-<base name>-<first 12 hex of its digest>-<outtype>.gguf``."""
    return f"merged-{base_name}-{base_digest_hex[:12]}-{outtype}.gguf"


def _base_files(session: Session, version: Version) -> dict[str, VersionFile]:
    rows = session.exec(select(VersionFile).where(col(VersionFile.version_id) == version.id))
    return {row.path: row for row in rows.all()}


def _check_architecture(
    store: BlobStore, settings: Settings, config: VersionFile, where: str
) -> None:
    """The base's architecture is one the GGUF export maps (the composer's own check)."""
    from composer.export import read_model_spec

    if config.size > settings.max_config_bytes:
        raise InvalidInput(
            f"{where}: {_CONFIG} is {config.size} bytes, over the limit of "
            f"{settings.max_config_bytes} (LORRY_MAX_CONFIG_BYTES)"
        )
    raw = read_exact(store.read_bytes, config.sha256, 0, config.size, what=_CONFIG)
    with scratch_directory(settings.tmp_dir, "merge-check-") as work:
        (work / _CONFIG).write_bytes(raw)
        read_model_spec(work / _CONFIG)


def _base_shapes(
    store: BlobStore, settings: Settings, files: dict[str, VersionFile]
) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for path in sorted(files):
        if not path.endswith(".safetensors"):
            continue
        row = files[path]
        header = read_safetensors_header(
            store.read_bytes,
            row.sha256,
            row.size,
            max_header_bytes=settings.max_safetensors_header_bytes,
            name=path,
        )
        shapes.update({tensor: info.shape for tensor, info in header.items()})
    return shapes


def _adapted_modules(adapter: Version) -> dict[str, tuple[int, int]]:
    """The adapter's modules as (out, in), from the factor shapes recorded at publish."""
    modules: dict[str, tuple[int, int]] = {}
    for module, factors in (adapter.adapter_metadata.get("modules") or {}).items():
        a, b = factors.get("lora_A"), factors.get("lora_B")
        if isinstance(a, list) and isinstance(b, list) and len(a) == 2 and len(b) == 2:
            modules[module] = (int(b[0]), int(a[1]))
    return modules


def resolve_merge_base(
    session: Session,
    store: BlobStore,
    settings: Settings,
    adapter: Version,
    reference: str,
    check_access: Callable[[str, str], None] | None,
) -> JobInput:
    """The base model ``reference`` (``NAMESPACE/NAME[@REF]``) pinned, once the caller may
    read it and the adapter ``adapter`` fits it; refused otherwise, before anything is
    written."""
    from composer.api import check_merge_shapes

    base_id, version = readable_model_version(
        session, reference, check_access, "merge_into", "--merge-into"
    )
    where = f"base {base_id}@{version.number}"
    files = _base_files(session, version)
    config = files.get(_CONFIG)
    if config is None:
        raise InvalidInput(f"{where} has no {_CONFIG}; a merged export needs the base's config")
    _check_architecture(store, settings, config, where)
    check_merge_shapes(where, _base_shapes(store, settings, files), _adapted_modules(adapter))
    return JobInput(
        ref=reference,
        repository=base_id,
        version=version.number,
        digest=f"sha256:{version.digest}",
        role="base",
    )
