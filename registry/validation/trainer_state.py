"""Trainer state pickles: accepted as opaque files after a static scan, never unpickled.

``transformers.Trainer`` writes ``training_args.bin`` (a pickled ``TrainingArguments``)
next to the weights it pushes, and ``optimizer.pt``, ``scheduler.pt``, ``scaler.pt`` and
``rng_state*.pth`` into its checkpoints. They are not weights, and refusing them would
make ``Trainer(push_to_hub=True)`` fail out of the box. So a file with exactly one of
these names (in any folder) is accepted when picklescan's static disassembly of it
(``pickletools``: opcodes only, nothing is imported or called) finds no global outside
``_ALLOWED_MODULES`` and none that picklescan calls dangerous, and it parses.

Everything else with a pickle extension is still refused (``check_manifest``). Lorry
never loads these files: they are listed in the version's metadata under
``trainer_state`` with the globals they would import, model validation does not count
them as weights, and a client that unpickles one does so at its own risk.
"""

from __future__ import annotations

import io
import logging
import pickletools
import zipfile
from collections.abc import Sequence
from typing import IO, Any

from picklescan.scanner import SafetyLevel, scan_bytes

from registry.errors import PickleNotAllowed
from registry.validation.manifest import BlobReader, ManifestEntry
from registry.validation.trainer_names import is_trainer_state

__all__ = ["TRAINER_STATE_KEY", "scan_trainer_state"]

TRAINER_STATE_KEY = "trainer_state"
"""Key of the version metadata that lists the accepted trainer state files."""

_ALLOWED_MODULES = frozenset(
    {"torch", "numpy", "collections", "transformers", "accelerate", "peft", "trl"}
)
"""Top-level modules whose classes a trainer state pickle may name (measured on the files
transformers 5 writes: TrainingArguments and its enums, accelerate's PartialState, torch
storages and tensors, numpy arrays for the RNG state)."""
_ALLOWED_GLOBALS = frozenset({("_codecs", "encode")})
"""How numpy's RNG state pickles its bytes."""
_FIX = (
    "Lorry accepts the Trainer's own training_args.bin, optimizer.pt, scheduler.pt, "
    "scaler.pt and rng_state*.pth only when they import nothing but torch, numpy, "
    "collections, transformers, accelerate, peft or trl classes; push the file without it "
    "(`ignore_patterns=[...]`), or keep it out of the output directory"
)

logger = logging.getLogger(__name__)


class _BlobFile(io.RawIOBase):
    """A read-only, seekable file over a stored blob, read in spans through ``read``."""

    def __init__(self, read: BlobReader, sha256: str, size: int) -> None:
        self._read, self._sha256, self._size, self._position = read, sha256, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._position)
        if want <= 0:
            return 0
        data = self._read(self._sha256, self._position, want)
        view[: len(data)] = data
        self._position += len(data)
        return len(data)


def _disassembles(handle: IO[bytes]) -> bool:
    """Whether the file is a pickle, or a torch zip archive of pickles, that ``pickletools``
    reads to its end (picklescan reports an unreadable file as clean)."""
    try:
        if not zipfile.is_zipfile(handle):
            handle.seek(0)
            return _opcodes_end(handle)
        with zipfile.ZipFile(handle) as archive:
            members = [name for name in archive.namelist() if name.endswith(".pkl")]
            for name in members:
                with archive.open(name) as member:
                    if not _opcodes_end(member):
                        return False
            return bool(members)
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _opcodes_end(stream: IO[bytes]) -> bool:
    try:
        last = None
        for opcode, _argument, _position in pickletools.genops(stream):
            last = opcode.name
        return last == "STOP"
    except Exception:  # noqa: BLE001 -- pickletools raises anything on malformed input
        return False


def _scan(entry: ManifestEntry, read: BlobReader) -> list[str]:
    """The globals the pickle would import, as ``module.name``; raises if one is not allowed."""
    extension = "." + entry.path.rsplit(".", 1)[-1]
    handle = io.BufferedReader(_BlobFile(read, entry.sha256, entry.size), 1024 * 1024)
    readable = _disassembles(handle)
    handle.seek(0)
    result = scan_bytes(handle, entry.path, extension)
    if not readable or result.scan_err or result.scanned_files == 0:
        raise PickleNotAllowed(
            f"file {entry.path!r} is named like a Trainer state file but is not a pickle "
            f"(or a torch archive of one) that can be disassembled; {_FIX}",
            path=entry.path,
        )
    refused = sorted(
        f"{found.module}.{found.name}"
        for found in result.globals
        if found.safety is SafetyLevel.Dangerous
        or (
            found.module.split(".", 1)[0] not in _ALLOWED_MODULES
            and (found.module, found.name) not in _ALLOWED_GLOBALS
        )
    )
    if refused:
        raise PickleNotAllowed(
            f"file {entry.path!r} is a pickle that would import {', '.join(refused)} when "
            f"loaded; {_FIX}",
            path=entry.path,
        )
    return sorted({f"{found.module}.{found.name}" for found in result.globals})


def scan_trainer_state(entries: Sequence[ManifestEntry], read: BlobReader) -> list[dict[str, Any]]:
    """Scan every trainer state file of the manifest; the records for the version metadata."""
    records = []
    for entry in sorted(entries, key=lambda item: item.path):
        if is_trainer_state(entry.path):
            imports = _scan(entry, read)
            logger.info("accepted trainer state file %s (imports %s)", entry.path, imports)
            records.append({"path": entry.path, "sha256": entry.sha256, "imports": imports})
    return records
