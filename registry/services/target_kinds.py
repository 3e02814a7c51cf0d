"""Kinds of deployment target: how a rollout becomes a request to a serving system.

A ``TargetKind`` checks a new target (``check_target``) and turns a rollout (the payload
written by ``registry.services.outbox.request_rollout``) into one HTTP request
(``rollout_request``), or says it no longer applies (``Superseded``) or can never succeed
(``PermanentFailure``). A new kind (LoRAX, SGLang) is one class and one line in ``KINDS``.

vLLM (``VllmKind``) uses its runtime LoRA API (the server runs with
``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` and ``--enable-lora``):
``POST /v1/load_lora_adapter {"lora_name", "lora_path", "load_inplace": true}`` and
``POST /v1/unload_lora_adapter {"lora_name"}``. vLLM resolves a ``lora_path`` that is
not a local directory with ``huggingface_hub.snapshot_download(repo_id=lora_path)``,
against its ``HF_ENDPOINT``: a repository id, no revision (a revision in the id, such as
``acme/sql@3``, fails the Hub client's repo-id check). So the path is the repository id,
vLLM fetches the repository's ``main``, and a vLLM target needs ``main`` to follow the
target's alias; before each rollout Lorry checks that ``main`` resolves to the version
being rolled out. ``snapshot_download`` asks for ``main``'s commit each time and a
version's commit id names that version, so no cache serves a stale version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from sqlmodel import Session

from registry.errors import InvalidInput, LorryError
from registry.services.hub import resolve_revision
from registry.services.refs import resolve_ref
from registry.services.repositories import find_repository
from registry.services.webhook_signing import signed_headers
from registry.tables import DeploymentTarget, Repository


class Superseded(Exception):
    """The alias moved again since the rollout was queued: a newer rollout replaces it."""


class PermanentFailure(Exception):
    """A rollout that cannot succeed however often it is tried (the message says why)."""


@dataclass(frozen=True)
class Outgoing:
    url: str
    body: bytes
    headers: dict[str, str]


def _json_request(url: str, document: dict[str, Any]) -> Outgoing:
    body = json.dumps(document, separators=(",", ":")).encode()
    return Outgoing(url, body, {"Content-Type": "application/json"})


class TargetKind(Protocol):
    name: str
    signs: bool
    """Whether its rollouts are signed with the target's secret (made at creation)."""

    def check_target(self, session: Session, repository: Repository, alias: str) -> None:
        """Refuse (``InvalidInput``) a target that this kind could never roll out to."""

    def rollout_request(
        self, session: Session, target: DeploymentTarget, rollout: dict[str, Any], delivery_id: str
    ) -> Outgoing:
        """The request that makes ``target`` serve the rollout's version."""


def _alias_version(session: Session, repository: str, alias: str) -> int | None:
    namespace, name = repository.split("/", 1)
    try:
        return resolve_ref(session, find_repository(session, namespace, name), alias).number
    except LorryError:
        return None


def _check_current(session: Session, target: DeploymentTarget, version: int | None) -> None:
    if _alias_version(session, target.repository, target.alias) != version:
        raise Superseded


class VllmKind:
    name = "vllm"
    signs = False

    def check_target(self, session: Session, repository: Repository, alias: str) -> None:
        if repository.main_alias != alias:
            repo_id = f"{repository.namespace}/{repository.name}"
            raise InvalidInput(
                f"vLLM fetches an adapter by repository id, which Hugging Face clients resolve "
                f"at `main`, and `main` of {repo_id} follows "
                f"{repository.main_alias or 'the latest version'}, not {alias!r}; make it "
                f"follow the alias first: `lorry repo set {repo_id} --main-alias {alias}`"
            )

    def rollout_request(
        self, session: Session, target: DeploymentTarget, rollout: dict[str, Any], delivery_id: str
    ) -> Outgoing:
        version = rollout["version"]
        _check_current(session, target, version)
        base = target.url.rstrip("/")
        if version is None:
            return _json_request(f"{base}/v1/unload_lora_adapter", {"lora_name": target.lora_name})
        namespace, name = target.repository.split("/", 1)
        try:
            main = resolve_revision(session, namespace, name, "main").version.number
        except LorryError as exc:
            raise PermanentFailure(exc.message) from exc
        if main != version:
            raise PermanentFailure(
                f"`main` of {target.repository} resolves to version {main}, not {version}, so "
                f"vLLM would load the wrong version; make `main` follow {target.alias!r}: "
                f"`lorry repo set {target.repository} --main-alias {target.alias}`"
            )
        return _json_request(
            f"{base}/v1/load_lora_adapter",
            {"lora_name": target.lora_name, "lora_path": target.repository, "load_inplace": True},
        )


class WebhookKind:
    """A plain webhook: the rollout's JSON (``action``, ``version``, ``digest``, ...) is
    posted to the URL, signed like webhook deliveries (``registry.services.webhook_signing``)
    with the target's own secret; the receiver loads the version however it serves."""

    name = "webhook"
    signs = True

    def check_target(self, session: Session, repository: Repository, alias: str) -> None:
        return None

    def rollout_request(
        self, session: Session, target: DeploymentTarget, rollout: dict[str, Any], delivery_id: str
    ) -> Outgoing:
        _check_current(session, target, rollout["version"])
        assert target.secret is not None
        body = json.dumps(rollout, separators=(",", ":"), sort_keys=True).encode()
        return Outgoing(
            target.url, body, signed_headers(target.secret, delivery_id, rollout["type"], body)
        )


KINDS: dict[str, TargetKind] = {VllmKind.name: VllmKind(), WebhookKind.name: WebhookKind()}


def target_kind(name: str) -> TargetKind:
    try:
        return KINDS[name]
    except KeyError:
        raise InvalidInput(
            f"unknown deployment target kind {name!r}; known: {', '.join(sorted(KINDS))}"
        ) from None
