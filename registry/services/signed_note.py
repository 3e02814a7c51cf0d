"""Signed notes (the C2SP ``signed-note`` format) with Ed25519 keys.

A note is UTF-8 text ending in a newline, a blank line, then one signature
line per signer: ``— <key name> <base64(key id || signature)>``. The
signature covers the text (up to and including its last newline). A key id
is the first four bytes of ``sha256(name || "\\n" || 0x01 || public key)``;
a verifier key is written ``<name>+<8 hex of the key id>+<base64(0x01 ||
public key)>`` (as Go's ``golang.org/x/mod/sumdb/note`` and transparency log
witnesses write them), so a note can be checked without the private key.

Private keys are PKCS#8 PEM files (``openssl genpkey -algorithm ed25519``
writes the same), held outside the database; ``generate_key`` writes one
with mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from registry.errors import LorryError

logger = logging.getLogger(__name__)

ED25519 = b"\x01"
SIGNATURE_PREFIX = "\u2014 "
MAX_NOTE_BYTES = 16 * 1024
"""A checkpoint is a few hundred bytes; anything much larger is not one of ours."""


class InvalidAuditKey(LorryError):
    """A signing or verifier key file is missing, unreadable or not an Ed25519 key."""

    code = "invalid_audit_key"
    status_code = 500


class NoteError(Exception):
    """A note that does not verify; ``kind`` is ``malformed``, ``unknown_key`` or
    ``bad_signature``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _check_name(name: str) -> str:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise InvalidAuditKey(
            f"key name {name!r} must be non-empty, without spaces or '+' "
            "(set LORRY_AUDIT_CHECKPOINT_ORIGIN, e.g. registry.example.com/audit)"
        )
    return name


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public_key).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class NoteVerifier:
    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    @property
    def vkey(self) -> str:
        encoded = base64.b64encode(ED25519 + _raw_public(self.public_key)).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"


@dataclass(frozen=True)
class NoteSigner:
    name: str
    private_key: Ed25519PrivateKey

    @property
    def verifier(self) -> NoteVerifier:
        public = self.private_key.public_key()
        return NoteVerifier(self.name, key_id(self.name, _raw_public(public)), public)

    def sign(self, text: str) -> str:
        """The signed note of ``text`` (which must end with a newline)."""
        if not text.endswith("\n") or "\n\n" in text:
            raise ValueError("a note's text ends with one newline and has no blank line")
        signature = self.private_key.sign(text.encode())
        blob = base64.b64encode(self.verifier.key_id + signature).decode()
        return f"{text}\n{SIGNATURE_PREFIX}{self.name} {blob}\n"


def parse_vkey(line: str) -> NoteVerifier:
    """A verifier from its ``name+keyid+base64`` form."""
    parts = line.strip().split("+", 2)
    if len(parts) != 3:
        raise InvalidAuditKey(
            f"verifier key {line.strip()[:80]!r} is not of the form NAME+KEYID+BASE64 "
            "(as `lorry audit keygen` prints)"
        )
    name, hex_id, encoded = parts
    try:
        raw = base64.b64decode(encoded, validate=True)
        wanted = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError):
        raise InvalidAuditKey(f"verifier key for {name!r} is not valid hex/base64") from None
    if len(raw) != 33 or raw[:1] != ED25519:
        raise InvalidAuditKey(f"verifier key for {name!r} is not an Ed25519 key")
    if key_id(_check_name(name), raw[1:]) != wanted:
        raise InvalidAuditKey(f"verifier key for {name!r}: its key id does not match the key")
    return NoteVerifier(name, wanted, Ed25519PublicKey.from_public_bytes(raw[1:]))


def load_verifiers(path: Path) -> list[NoteVerifier]:
    """Verifier keys from a file, one ``name+keyid+base64`` per line (``#`` comments)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InvalidAuditKey(
            f"cannot read the audit public key file {path}: {exc.strerror}; "
            "check LORRY_AUDIT_PUBLIC_KEYS or --public-key"
        ) from exc
    verifiers = [parse_vkey(line) for line in lines if line.strip() and not line.startswith("#")]
    if not verifiers:
        raise InvalidAuditKey(f"the audit public key file {path} holds no key")
    return verifiers


def load_signer(path: Path, name: str) -> NoteSigner:
    """The PEM Ed25519 private key at ``path``, signing as ``name``."""
    try:
        data = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as exc:
        raise InvalidAuditKey(
            f"cannot read the audit signing key {path}: {exc.strerror}; check "
            "LORRY_AUDIT_SIGNING_KEY (create one with `lorry audit keygen`)"
        ) from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("audit signing key %s is readable by others; chmod 600 it", path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidAuditKey(
            f"the audit signing key {path} is not an unencrypted PEM private key: {exc}"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidAuditKey(f"the audit signing key {path} is not an Ed25519 key")
    return NoteSigner(_check_name(name), key)


def generate_key(path: Path, name: str) -> NoteVerifier:
    """Write a new private key to ``path`` (mode 0600; never over an existing file)."""
    signer = NoteSigner(_check_name(name), Ed25519PrivateKey.generate())
    pem = signer.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidAuditKey(f"{path} exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise InvalidAuditKey(f"cannot create {path}: {exc.strerror}") from exc
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    return signer.verifier


def open_note(note: str, verifiers: list[NoteVerifier]) -> tuple[str, NoteVerifier]:
    """The text of ``note`` and the known key that signed it; ``NoteError`` otherwise."""
    if len(note.encode()) > MAX_NOTE_BYTES:
        raise NoteError("malformed", f"larger than {MAX_NOTE_BYTES} bytes")
    text, separator, signatures = note.rpartition("\n\n")
    if not separator or not signatures.endswith("\n"):
        raise NoteError("malformed", "no signature block after a blank line")
    text += "\n"
    known = {(v.name, v.key_id): v for v in verifiers}
    seen: list[str] = []
    for line in signatures[:-1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError("malformed", f"signature line {line[:60]!r} does not start with '— '")
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise NoteError("malformed", f"signature of {name!r} is not base64") from None
        if len(blob) != 4 + 64:
            raise NoteError("malformed", f"signature of {name!r} is not an Ed25519 signature")
        verifier = known.get((name, blob[:4]))
        if verifier is None:
            seen.append(f"{name}+{blob[:4].hex()}")
            continue
        try:
            verifier.public_key.verify(blob[4:], text.encode())
        except InvalidSignature:
            raise NoteError(
                "bad_signature",
                f"the signature of key {name}+{blob[:4].hex()} does not match the "
                "text: the checkpoint was altered or forged",
            ) from None
        return text, verifier
    raise NoteError(
        "unknown_key",
        f"signed by {', '.join(seen) or 'no key'}, none of the configured public keys "
        "(a forged checkpoint, or a key missing from LORRY_AUDIT_PUBLIC_KEYS)",
    )
