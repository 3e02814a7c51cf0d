"""Streaming reader of a Hub commit's NDJSON lines, one file's content never in memory.

``huggingface_hub`` sends each ``file`` operation as one line,
``{"key": "file", "value": {"content": "<base64>", "path": ..., "encoding": "base64"}}``,
so a 1 GiB file is one 1.4 GB line. ``read_lines`` scans each line in ``CHUNK`` pieces:
the string at ``value.content`` is unescaped, base64-decoded (4 characters at a time
stay aligned across pieces) and hashed into a locked spool file
(``registry.storage.scratch``) as it arrives; every other byte of the line forms a small
"skeleton" (the content replaced by ``null``, at most ``SKELETON_BYTES``) parsed by
``json.loads`` at the end of the line. Keys may come in any order, strings may hold any
JSON escape, whitespace is free. Peak memory is a few chunks, whatever the file size.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import os
import re
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from registry.errors import InvalidInput, StorageUnavailable, TooLarge
from registry.storage.base import BlobStore
from registry.storage.scratch import ScratchLock, new_file

CHUNK = 1024 * 1024
"""Bytes read from the spool per step (the decoded piece is 3/4 of it)."""
SKELETON_BYTES = 64 * 1024
"""The longest a line may be without its file content (path, encoding, header fields)."""
_STRUCTURE = re.compile(rb'["\\\n{}\[\]:,]')
_STRING_STOP = re.compile(rb'["\\\n]')
_STOPS = (b'"', b"\\", b"\n")
"""What ends a run of base64 characters; found with ``bytes.find`` (a regex search of the
same class is 100x slower, the scan's bottleneck)."""
_ESCAPES = {b'"': b'"', b"\\": b"\\", b"/": b"/", b"b": b"\b", b"f": b"\f", b"n": b"\n"}
_ESCAPES |= {b"r": b"\r", b"t": b"\t"}


def _not_json(line: int) -> InvalidInput:
    return InvalidInput(f"commit line {line} is not JSON; send NDJSON lines")


def _bad_base64(line: int, path: object) -> InvalidInput:
    name = repr(path) if isinstance(path, str) else "a file"
    return InvalidInput(f"commit line {line}: the content of {name} is not valid base64")


class Content:
    """A file's decoded content, spooled and hashed; ``store`` hands it to the blob store."""

    def __init__(self, directory: Path) -> None:
        try:
            self._fd: int | None
            self._fd, self._path, self._lock = new_file(directory, "upload-", ".part")
        except OSError as exc:
            raise StorageUnavailable(
                f"could not create a spool file for a committed file: {exc.strerror}; check "
                "that the data directory is writable and has free space"
            ) from exc
        self._live: ScratchLock | None = self._lock
        self._hasher = hashlib.sha256()
        self.size = 0
        self.valid = True
        self._tail = b""
        self._padded = False

    def feed(self, text: bytes) -> None:
        """Decode the next base64 characters (any length: a partial quad waits)."""
        if not self.valid:
            return
        text = self._tail + text
        cut = len(text) - len(text) % 4
        self._tail = text[cut:]
        if cut:
            self._decode(text[:cut])

    def _decode(self, quads: bytes) -> None:
        if self._padded:  # padding already ended the data
            self.valid = False
            return
        try:
            data = binascii.a2b_base64(quads, strict_mode=True)
        except binascii.Error:
            self.valid = False
            return
        self._padded = quads.endswith(b"=")
        self._hasher.update(data)
        self.size += len(data)
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            raise StorageUnavailable(
                f"could not spool a committed file: {exc.strerror}; check that the data "
                "directory is writable and has free space"
            ) from exc

    def finish(self) -> None:
        """The string ended: what is left must be whole quads."""
        if self._tail:
            self.valid = False
        self._close()

    @property
    def sha256(self) -> str:
        return self._hasher.hexdigest()

    def store(self, store: BlobStore) -> None:
        """Put the content in ``store`` as blob ``sha256`` (unreferenced until published)."""
        self._close()
        try:
            if not store.exists(self.sha256):
                store.put_file(self._path, self.sha256)
        finally:
            self.discard()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def discard(self) -> None:
        self._close()
        self._path.unlink(missing_ok=True)
        if self._live is not None:
            self._live.release()
            self._live = None


@dataclass
class Line:
    """One parsed line: ``value`` without its ``content`` string, which is in ``content``."""

    number: int
    key: str
    value: dict[str, Any]
    content: Content | None = None


@dataclass
class _Scanner:
    """The state of one line's scan: containers open, whether a key or a value is next."""

    number: int
    directory: Path
    skeleton: bytearray = field(default_factory=bytearray)
    stack: list[list[Any]] = field(default_factory=list)  # [kind, current key, expect key]
    in_string: bool = False
    string: bytearray | None = None  # a key being read
    content: Content | None = None
    streaming: bool = False  # inside the content string
    escape: bytes = b""  # an escape cut by a chunk boundary
    _next: dict[bytes, int] = field(default_factory=dict)  # next stop of each kind, or -1
    _slow_until: int = 0  # escapes before this offset of the chunk go one at a time

    def _stop(self, chunk: bytes, pos: int) -> int:
        """The first of ``_STOPS`` at or after ``pos`` (``len(chunk)``: none); each kind is
        searched again only once passed, so a chunk costs one pass whatever its escapes."""
        first = len(chunk)
        for char, at in self._next.items():
            if -1 < at < pos or at == -2:
                at = chunk.find(char, pos)
                self._next[char] = at
            if -1 < at < first:
                first = at
        return first

    def add(self, data: bytes) -> None:
        self.skeleton += data
        if len(self.skeleton) > SKELETON_BYTES:
            raise TooLarge(
                f"commit line {self.number}: its fields besides a file's content are longer "
                f"than {SKELETON_BYTES} bytes; send shorter paths and messages"
            )

    def scan(self, chunk: bytes) -> None:
        pos = 0
        self._next = dict.fromkeys(_STOPS, -2)
        self._slow_until = 0
        while pos < len(chunk):
            if self.streaming:
                pos = self._stream(chunk, pos)
            elif self.in_string:
                pos = self._string(chunk, pos)
            else:
                pos = self._structure(chunk, pos)

    def _structure(self, chunk: bytes, pos: int) -> int:
        found = _STRUCTURE.search(chunk, pos)
        end = found.start() if found else len(chunk)
        self.add(chunk[pos:end])
        if not found:
            return end
        char = chunk[end : end + 1]
        top = self.stack[-1] if self.stack else None
        if char == b'"':
            if self._at_content():
                self.add(b"null")
                if self.content is not None:
                    raise InvalidInput(f"commit line {self.number}: `value.content` appears twice")
                self.content = Content(self.directory)
                self.streaming = True
            else:
                self.add(char)
                self.in_string = True
                if top is not None and top[0] == "{" and top[2]:
                    self.string = bytearray(b'"')
            return end + 1
        self.add(char)
        if char in (b"{", b"["):
            self.stack.append([char.decode(), None, char == b"{"])
        elif char in (b"}", b"]") and self.stack:
            self.stack.pop()
        elif char == b":" and top is not None:
            top[2] = False
        elif char == b"," and top is not None:
            top[2] = top[0] == "{"
        return end + 1

    def _at_content(self) -> bool:
        return (
            len(self.stack) == 2
            and self.stack[0][:2] == ["{", "value"]
            and self.stack[1][:3] == ["{", "content", False]
        )

    def _string(self, chunk: bytes, pos: int) -> int:
        """Inside a string of the skeleton; a key's text is kept to track ``value.content``."""
        if self.escape:  # the character after a backslash
            self._keep(chunk[pos : pos + 1])
            self.escape = b""
            return pos + 1
        found = _STRING_STOP.search(chunk, pos)
        end = found.start() if found else len(chunk)
        self._keep(chunk[pos:end])
        if not found:
            return end
        char = chunk[end : end + 1]
        if char == b"\n":
            raise _not_json(self.number)
        self._keep(char)
        if char == b"\\":
            self.escape = char
        else:
            self.in_string = False
            if self.string is not None:
                try:
                    self.stack[-1][1] = json.loads(bytes(self.string))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    raise _not_json(self.number) from None
                self.string = None
        return end + 1

    def _keep(self, data: bytes) -> None:
        self.add(data)
        if self.string is not None:
            self.string += data

    def _stream(self, chunk: bytes, pos: int) -> int:
        """Inside the content string: plain runs go to the decoder, escapes are unescaped
        (one byte per step: base64 needs none, ``\\/`` is the only one a client might send)."""
        assert self.content is not None
        if self.escape:
            self.escape += chunk[pos : pos + 1]
            if self.escape[1:2] != b"u" or len(self.escape) == 6:
                self.content.feed(self._unescape(self.escape))
                self.escape = b""
            return pos + 1
        end = self._stop(chunk, pos)
        if end > pos:
            self.content.feed(chunk[pos:end])
        if end == len(chunk):
            return end
        char = chunk[end : end + 1]
        if char == b'"':
            self.streaming = False
            self.content.finish()
        elif char == b"\\":
            fast = self._unslash(chunk, end)
            if fast > end:
                return fast
            self.escape = b"\\"
        else:  # a raw newline inside a string: not JSON (lines end before one anyway)
            raise _not_json(self.number)
        return end + 1

    def _unslash(self, chunk: bytes, start: int) -> int:
        """Feed the run from ``start`` to the string's end or the chunk's in one step when
        its only escapes are ``\\/`` (what some JSON writers make of every ``/``); return
        where the run ends, or ``start`` when it holds other escapes (then the run is not
        tried again: one pass per chunk whatever its escapes)."""
        assert self.content is not None
        if start < self._slow_until:
            return start
        self._stop(chunk, start)
        ends = [at for char, at in self._next.items() if char != b"\\" and at >= 0]
        hard = min(ends, default=len(chunk))
        run = chunk[start:hard]
        plain = run.replace(b"\\/", b"/")
        if run.endswith(b"\\") or b"\\" in plain:
            self._slow_until = hard
            return start
        self.content.feed(plain)
        return hard

    def _unescape(self, escape: bytes) -> bytes:
        if escape[1:2] == b"u":
            try:
                code = int(escape[2:6], 16)
            except ValueError:
                raise _not_json(self.number) from None
            return chr(code).encode("utf-8", "surrogatepass")  # non-base64 anyway if not ASCII
        try:
            return _ESCAPES[escape[1:2]]
        except KeyError:
            raise _not_json(self.number) from None

    def result(self) -> Line:
        if self.streaming or self.in_string or self.escape:
            raise _not_json(self.number)
        try:
            item = json.loads(bytes(self.skeleton))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise _not_json(self.number) from None
        if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
            raise InvalidInput(
                f'commit line {self.number} must be {{"key": ..., "value": {{...}}}}'
            )
        value = item["value"]
        if self.content is not None and not self.content.valid:
            raise _bad_base64(self.number, value.get("path"))
        return Line(self.number, str(item.get("key")), value, self.content)


def read_lines(
    handle: IO[bytes], max_line_bytes: int, directory: Path
) -> Generator[Line, None, None]:
    """The non-blank lines of ``handle``; a line's content is spooled under ``directory``
    and discarded when the consumer moves on without storing it (or stops)."""
    number = 0
    pending = b""
    while True:
        number += 1
        scanner = _Scanner(number, directory)
        length = 0
        ended = False
        try:
            while not ended:
                chunk = pending or handle.read(CHUNK)
                pending = b""
                if not chunk:
                    break
                cut = chunk.find(b"\n")
                if cut >= 0:
                    chunk, pending, ended = chunk[:cut], chunk[cut + 1 :], True
                length += len(chunk)
                if length > max_line_bytes:
                    raise TooLarge(
                        f"a commit line is longer than {max_line_bytes} bytes; send files this "
                        "large through LFS (they are over LORRY_MAX_FILE_BYTES)"
                    )
                scanner.scan(chunk)
            if not scanner.skeleton.strip() and scanner.content is None:
                if not ended:
                    return
                continue
            yield scanner.result()
        finally:
            if scanner.content is not None:
                scanner.content.discard()
