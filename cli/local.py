"""The ``--local`` side of client commands, without importing the registry.

A few commands (``token create|ls|revoke``, ``gc``, ``audit verify|checkpoint|keygen``)
can work on the configured database and blob store directly instead of over HTTP:
the way to create the first admin token, or to check the audit chain with the server
down. Their client modules talk to a ``LocalRegistry``; the implementation lives in
``cli.server_commands`` (the one CLI module that imports the registry), which installs
it when it registers its commands. Results are the REST API's JSON shapes, and errors
are raised as ``LorryClientError`` so that both paths end the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer

from cli.client import LorryClientError
from cli.common import fail

__all__ = ["LocalOption", "LocalRegistry", "install_local_registry", "local_registry"]

LocalOption = Annotated[
    bool,
    typer.Option(
        "--local",
        help="Use the database of LORRY_DATABASE_URL directly instead of the REST API.",
    ),
]


class LocalRegistry(Protocol):
    """What ``--local`` commands do on the database; each answer is the route's JSON."""

    def create_token(
        self,
        *,
        principal: str,
        scopes: list[str],
        namespaces: list[str],
        description: str,
        expires_at: datetime | None,
    ) -> dict[str, Any]: ...

    def list_tokens(self, *, include_revoked: bool) -> list[dict[str, Any]]: ...

    def revoke_token(self, token_id: str) -> dict[str, Any]: ...

    def collect_garbage(self, *, delete: bool, grace_minutes: int | None) -> dict[str, Any]: ...

    def verify_audit(
        self, *, checkpoints: Path | None, public_key: Path | None
    ) -> dict[str, Any]: ...

    def write_checkpoint(self) -> dict[str, Any]: ...

    def generate_signing_key(self, key_file: Path, origin: str | None) -> tuple[str, str]:
        """Write the key; ``(verifier line, the log's name)``."""
        ...


_installed: list[LocalRegistry] = []


def install_local_registry(registry: LocalRegistry) -> None:
    """Make ``registry`` what ``local_registry()`` yields (``cli.server_commands`` does)."""
    _installed[:] = [registry]


@contextmanager
def local_registry() -> Iterator[LocalRegistry]:
    """The installed local registry; its errors end the command with exit status 1."""
    if not _installed:
        fail("--local needs the server commands of lorry (cli.server_commands), not installed")
    try:
        yield _installed[0]
    except LorryClientError as exc:
        fail(exc.message, exc.code)
