"""Push and pull mechanics: walk, hash, upload missing blobs, download and verify.

What ``push`` sends from a directory:
- every regular file below it, by its POSIX path relative to the directory;
- hidden entries (a name starting with ``.``: ``.git``, ``.cache``, ``.DS_Store``) are
  skipped, directories and files alike, as ``git`` and ``huggingface_hub`` tooling leave them;
- a symbolic link to a file is followed when its target lies inside the directory and
  refused when it points outside (it would publish files the user did not mean to);
  links to directories are refused;
- ``--include``/``--exclude`` globs choose among them (``cli.push_checks``);
- pickles (the registry's own rule, ``composer.file_rules``: refused by extension, except
  the Trainer's scanned state files such as ``optimizer.pt``), names the registry refuses
  (``composer.paths``: a backslash, ``:``, ``CON``, a trailing dot ...) and names that
  collide on macOS or Windows (``README.md`` beside ``readme.md``) are refused before
  anything is hashed or sent, by the registry's own rules, and so is a directory that
  lacks the files its kind needs.

Blobs are hashed with sha256 in large buffers, checked with ``HEAD`` and only missing
ones are uploaded, streamed from disk. ``pull`` resolves the reference once, then
downloads every file of that exact version (by digest) to a temporary file beside its
target, verifies size and sha256 and renames it into place; files already present
with the right sha256 are kept.
"""

from __future__ import annotations

import errno
import os
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cli.client import LorryClient, LorryClientError
from cli.digests import HashingWriter
from cli.pull_checks import PARTIAL_SUFFIX, check_pull_target
from cli.push_checks import PathFilter, check_kind
from composer.file_rules import PICKLE_EXTENSIONS, refused_pickle_extension
from composer.fileio import sha256_file
from composer.paths import colliding_paths, path_problem

__all__ = [
    "PICKLE_SUFFIXES",
    "LocalFile",
    "PullResult",
    "PushResult",
    "TransferProgress",
    "pull_version",
    "push_directory",
    "scan_directory",
]

PICKLE_SUFFIXES = PICKLE_EXTENSIONS
UPLOAD_CHUNK = 4 * 1024 * 1024


class TransferProgress:
    """Receives progress of a transfer; the CLI subclasses it with rich bars."""

    def start(self, phase: str, total: int) -> None:
        """A phase (``hash``, ``upload``, ``download``) over ``total`` bytes begins."""

    def advance(self, phase: str, nbytes: int) -> None:
        """``nbytes`` more bytes of ``phase`` are done."""


@dataclass(frozen=True)
class LocalFile:
    path: str
    source: Path
    size: int
    sha256: str = ""

    def manifest_entry(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


@dataclass
class PushResult:
    version: dict[str, Any]
    uploaded_bytes: int
    skipped_bytes: int
    uploaded_files: list[str]
    skipped_files: list[str]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.version['repository']}@{self.version['version']}"

    def as_json(self) -> dict[str, Any]:
        return {
            "repository": self.version["repository"],
            "version": self.version["version"],
            "digest": self.version["digest"],
            "commit": self.version["commit"],
            "ref": self.ref,
            "aliases": self.version.get("aliases", []),
            "uploaded_bytes": self.uploaded_bytes,
            "skipped_bytes": self.skipped_bytes,
            "uploaded_files": self.uploaded_files,
            "skipped_files": self.skipped_files,
        }


@dataclass
class PullResult:
    version: dict[str, Any]
    directory: Path
    downloaded_files: list[str]
    kept_files: list[str]
    downloaded_bytes: int
    timings: dict[str, float] = field(default_factory=dict)
    removed_files: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "repository": self.version["repository"],
            "version": self.version["version"],
            "digest": self.version["digest"],
            "commit": self.version["commit"],
            "ref": f"{self.version['repository']}@{self.version['version']}",
            "directory": str(self.directory),
            "files": [entry["path"] for entry in self.version["files"]],
            "downloaded_files": self.downloaded_files,
            "kept_files": self.kept_files,
            "downloaded_bytes": self.downloaded_bytes,
            "removed_files": self.removed_files,
        }


def _is_inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _check_name(relative: str) -> None:
    problem = path_problem(relative)
    if problem is not None:
        raise LorryClientError("invalid_path", problem)
    extension = refused_pickle_extension(relative)
    if extension is not None:
        raise LorryClientError(
            "pickle_not_allowed",
            f"{relative}: pickled files ({', '.join(PICKLE_EXTENSIONS)}) are refused because "
            "loading them can run code; save the weights with safetensors "
            "(`save_pretrained(..., safe_serialization=True)`), or leave the file out with "
            f"--exclude '*{extension}'",
        )


def scan_directory(root: Path, selected: PathFilter | None = None) -> list[LocalFile]:
    """The files ``push`` would publish from ``root`` (see the module docstring), sorted;
    ``selected`` (the ``--include``/``--exclude`` globs) keeps a subset."""
    if not root.is_dir():
        raise LorryClientError("invalid_path", f"{root} is not a directory")
    real_root = root.resolve()
    files: list[LocalFile] = []
    for current, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(current)
        kept_dirs = []
        for name in sorted(dirnames):
            if name.startswith("."):
                continue
            entry = here / name
            if entry.is_symlink():
                target = entry.resolve()
                relative = entry.relative_to(root).as_posix()
                if not _is_inside(target, real_root):
                    raise LorryClientError(
                        "invalid_path",
                        f"{relative} is a symbolic link to {target}, outside {root}; "
                        "copy the files in or remove the link",
                    )
                raise LorryClientError(
                    "invalid_path",
                    f"{relative} is a symbolic link to a directory; replace it with the "
                    "directory itself",
                )
            kept_dirs.append(name)
        dirnames[:] = kept_dirs
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            entry = here / name
            relative = entry.relative_to(root).as_posix()
            if selected is not None and not selected.keeps(relative):
                continue
            _check_name(relative)
            if entry.is_symlink():
                target = entry.resolve()
                if not _is_inside(target, real_root):
                    raise LorryClientError(
                        "invalid_path",
                        f"{relative} is a symbolic link to {target}, outside {root}; "
                        "copy the file in or remove the link",
                    )
            if not entry.is_file():
                raise LorryClientError(
                    "invalid_path", f"{relative} is not a regular file (a socket, FIFO or device)"
                )
            files.append(LocalFile(relative, entry, entry.stat().st_size))
    collision = colliding_paths(item.path for item in files)
    if collision is not None:
        raise LorryClientError(
            "invalid_path",
            f"{collision[0]!r} and {collision[1]!r} differ only in letter case or Unicode "
            "normalisation, so they name the same file (or a file and its folder) on macOS and "
            "Windows; rename one of them",
        )
    if not files:
        raise LorryClientError(
            "invalid_input",
            f"{root} has no files to push (hidden files are skipped"
            f"{', and --include/--exclude left none' if selected is not None else ''}); "
            "it needs at least adapter_config.json and adapter_model.safetensors",
        )
    return sorted(files, key=lambda item: item.path)


def _file_chunks(path: Path, on_bytes: Callable[[int], None]) -> Iterator[bytes]:
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(UPLOAD_CHUNK):
            on_bytes(len(chunk))
            yield chunk


def _hashed(item: LocalFile, progress: TransferProgress) -> LocalFile:
    """``item`` with its sha256, and the size of the bytes that were hashed (the file
    may have changed since the directory was scanned)."""
    seen = 0

    def advance(nbytes: int) -> None:
        nonlocal seen
        seen += nbytes
        progress.advance("hash", nbytes)

    sha256 = sha256_file(item.source, advance)
    return LocalFile(item.path, item.source, seen, sha256)


def push_directory(
    client: LorryClient,
    root: Path,
    repository: str,
    *,
    message: str | None = None,
    alias: str | None = None,
    kind: str = "adapter",
    progress: TransferProgress | None = None,
    selected: PathFilter | None = None,
    base_model: str | None = None,
) -> PushResult:
    """Publish the files of ``root`` as the next version of ``repository``.

    Everything the registry would refuse for the directory's shape (pickles, a kind
    without its required files, a kind other than the repository's) is refused here,
    before anything is hashed or uploaded."""
    progress = progress or TransferProgress()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    scanned = scan_directory(root, selected)
    check_kind(client, root, repository, kind, [item.path for item in scanned])

    progress.start("hash", sum(item.size for item in scanned))
    # hashlib releases the GIL: files (shards of a model, say) hash in parallel.
    workers = max(1, min(len(scanned), os.cpu_count() or 1, 8))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lorry-hash") as pool:
        files = list(pool.map(lambda item: _hashed(item, progress), scanned))
    timings["hash_s"] = time.perf_counter() - started

    mark = time.perf_counter()
    unique: dict[str, LocalFile] = {}
    for item in files:
        unique.setdefault(item.sha256, item)
    # Asked and uploaded for the repository's namespace: a version may name only blobs its
    # namespace holds, whatever other namespaces uploaded (the server stores one copy).
    namespace = repository.split("/", 1)[0]
    missing = [
        item
        for item in unique.values()
        if client.blob_size(item.sha256, namespace=namespace) is None
    ]
    missing_digests = {item.sha256 for item in missing}
    timings["check_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    progress.start("upload", sum(item.size for item in missing))
    for item in missing:
        client.put_blob(
            item.sha256,
            item.size,
            _file_chunks(item.source, lambda n: progress.advance("upload", n)),
            namespace=namespace,
        )
    timings["upload_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    version = client.create_version(
        repository,
        [item.manifest_entry() for item in files],
        message=message,
        alias=alias,
        kind=kind,
        base_model=base_model,
    )
    timings["commit_s"] = time.perf_counter() - mark
    timings["total_s"] = time.perf_counter() - started

    uploaded = [item.path for item in files if item.sha256 in missing_digests]
    uploaded_set = set(uploaded)
    return PushResult(
        version=version,
        uploaded_bytes=sum(item.size for item in missing),
        skipped_bytes=sum(item.size for item in files) - sum(item.size for item in missing),
        uploaded_files=uploaded,
        skipped_files=[item.path for item in files if item.path not in uploaded_set],
        timings=timings,
    )


def _safe_target(directory: Path, relative: str) -> Path:
    """The local path of a manifest entry; refuse anything that would escape ``directory``."""
    pure = PurePosixPath(relative)
    if (
        not relative
        or "\\" in relative
        or pure.is_absolute()
        or any(part in ("", ".", "..") for part in relative.split("/"))
    ):
        raise LorryClientError(
            "invalid_path", f"the registry listed an unsafe file path {relative!r}; not writing it"
        )
    return directory.joinpath(*pure.parts)


def _matches(path: Path, size: int, sha256: str) -> bool:
    return path.is_file() and path.stat().st_size == size and sha256_file(path) == sha256


def _preallocate(fd: int, size: int, path: Path) -> None:
    """Reserve the file's blocks before writing: writes into allocated blocks cost the
    filesystem less (ext4: ~30% less kernel time), and a full disk fails at once."""
    if size <= 0 or not hasattr(os, "posix_fallocate"):  # macOS has no posix_fallocate
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise LorryClientError(
                "no_space",
                f"{path.parent} has no room for a {size}-byte file; free some space and "
                "run the pull again",
            ) from exc


def download_file(
    client: LorryClient,
    repository: str,
    digest: str,
    entry: dict[str, Any],
    target: Path,
    progress: TransferProgress,
    *,
    retry: str = "run the pull again",
) -> None:
    """Stream one file of a version (or a derived file) to a temporary file beside
    ``target``, check its size and sha256 against ``entry``, then rename it into place;
    nothing is left on failure. ``retry`` ends the mismatch message."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.parent / f".{target.name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}"
    # os.open with 0o666 lets the umask decide the mode, as for any file the user creates.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    writer = HashingWriter(fd)
    try:
        _preallocate(fd, entry["size"], temp)
        with client.stream_file(repository, digest, entry["path"]) as response:
            # No content coding expected on weights; decode only if the server applied one.
            encoded = "content-encoding" in response.headers
            for chunk in response.iter_bytes() if encoded else response.iter_raw():
                writer.write(chunk)
                progress.advance("download", len(chunk))
        sha256 = writer.close()
        os.close(fd)
        fd = -1
        if writer.size != entry["size"] or sha256 != entry["sha256"]:
            raise LorryClientError(
                "digest_mismatch",
                f"{entry['path']}: downloaded {writer.size} bytes with sha256 {sha256}, "
                f"expected {entry['size']} bytes with sha256 {entry['sha256']}; "
                f"nothing was written, {retry}",
            )
        os.replace(temp, target)
    except BaseException:
        writer.abort()
        if fd >= 0:
            os.close(fd)
        temp.unlink(missing_ok=True)
        raise


def pull_version(
    client: LorryClient,
    repository: str,
    ref: str,
    directory: Path,
    *,
    progress: TransferProgress | None = None,
    overwrite: bool = False,
) -> PullResult:
    """Download every file of ``repository@ref`` into ``directory``, verified; other files
    there are refused, or removed with ``overwrite`` (``cli.pull_checks``)."""
    progress = progress or TransferProgress()
    started = time.perf_counter()
    version = client.get_version(repository, ref)
    # Pin the resolved version: an alias moved mid-pull must not mix two versions.
    pinned = version["digest"]
    entries = version["files"]
    targets = [(entry, _safe_target(directory, entry["path"])) for entry in entries]
    removed = check_pull_target(
        directory,
        (entry["path"] for entry in entries),
        f"{version['repository']}@{version['version']}",
        overwrite=overwrite,
    )
    directory.mkdir(parents=True, exist_ok=True)

    wanted = []
    kept = []
    for entry, target in targets:
        if _matches(target, entry["size"], entry["sha256"]):
            kept.append(entry["path"])
        else:
            wanted.append((entry, target))
    mark = time.perf_counter()
    progress.start("download", sum(entry["size"] for entry, _ in wanted))
    for entry, target in wanted:
        download_file(client, repository, pinned, entry, target, progress)
    return PullResult(
        version=version,
        directory=directory,
        downloaded_files=[entry["path"] for entry, _ in wanted],
        kept_files=kept,
        downloaded_bytes=sum(entry["size"] for entry, _ in wanted),
        removed_files=removed,
        timings={
            "download_s": time.perf_counter() - mark,
            "total_s": time.perf_counter() - started,
        },
    )
