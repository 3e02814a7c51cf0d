"""Submitting a composition: pin every registry reference, dedupe, record the job."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from registry.config import Settings
from registry.errors import Conflict, InvalidInput
from registry.schemas.compose import CompositionRequest, JobInput, JobOut
from registry.services.audit import Caller
from registry.services.eval_gates import refuse_unmeasured_version
from registry.services.evaluations import plan_recipe_evaluations
from registry.services.job_kinds.compose import EVALUATE, ComposeSubmission
from registry.services.job_queue import JobQueue
from registry.services.jobs import create_job
from registry.services.names import (
    check_alias_name,
    check_repository_name,
    repository_id,
    split_registry_ref,
)
from registry.services.policies import check_alias_change
from registry.services.principals import READ, WRITE
from registry.services.refs import resolve_ref
from registry.services.repositories import check_writable, find_repository
from registry.storage.base import BlobStore
from registry.tables import Repository

if TYPE_CHECKING:
    from composer import Recipe


@dataclass(frozen=True)
class RegistryRef:
    namespace: str
    name: str
    ref: str

    @property
    def repository(self) -> str:
        return repository_id(self.namespace, self.name)


def parse_registry_ref(text: str) -> RegistryRef:
    """``ns/name`` (latest), ``ns/name@REF``; REF as the REST API takes it."""
    namespace, name, ref = split_registry_ref(
        text,
        f"{text!r} is not a registry reference; in a composition every input names a "
        "version as NAMESPACE/NAME@REF (e.g. acme/sql-gen@production or acme/tone@3)",
    )
    return RegistryRef(namespace, name, ref or "latest")


def pinned_ref(repository: str, digest_hex: str) -> str:
    """The reference a job uses for a resolved input: exact, whatever aliases do later."""
    return f"{repository}@sha256:{digest_hex}"


def _resolve(session: Session, text: str, kind: str, role: str) -> tuple[Repository, JobInput]:
    parsed = parse_registry_ref(text)
    repository = find_repository(session, parsed.namespace, parsed.name)
    if repository.kind != kind:
        raise InvalidInput(
            f"{text}: {parsed.repository} holds {repository.kind}s but the recipe uses it as "
            f"{'an input adapter' if role == 'input' else 'the base model (output.base)'}"
        )
    version = resolve_ref(session, repository, parsed.ref)
    return repository, JobInput(
        ref=text,
        repository=parsed.repository,
        version=version.number,
        digest=f"sha256:{version.digest}",
        role="input" if role == "input" else "base",
    )


def resolve_recipe(session: Session, recipe: Recipe) -> tuple[Recipe, list[JobInput]]:
    """The recipe with every input (and a merged output's base) pinned to a digest.

    Each distinct reference is resolved once (two queries), however often the recipe
    repeats it: the cost follows the distinct references, which ``check_recipe_limits``
    bounds with the inputs.
    """
    inputs: list[JobInput] = []
    pinned_inputs = []
    resolved_refs: dict[str, JobInput] = {}
    for item in recipe.inputs:
        if item.adapter not in resolved_refs:
            resolved_refs[item.adapter] = _resolve(session, item.adapter, "adapter", "input")[1]
        resolved = resolved_refs[item.adapter]
        resolved = resolved.model_copy(update={"weight": item.weight})
        inputs.append(resolved)
        hex_digest = resolved.digest.removeprefix("sha256:")
        pinned_inputs.append(
            item.model_copy(update={"adapter": pinned_ref(resolved.repository, hex_digest)})
        )
    output = recipe.output
    if output.type == "merged" and output.base is not None:
        _repo, base = _resolve(session, output.base, "model", "base")
        inputs.append(base)
        hex_digest = base.digest.removeprefix("sha256:")
        output = output.model_copy(update={"base": pinned_ref(base.repository, hex_digest)})
    pinned = recipe.model_copy(update={"inputs": pinned_inputs, "output": output})
    return pinned, inputs


def check_recipe_limits(document: dict[str, Any], settings: Settings) -> None:
    """Refuse a recipe over the deployment's caps, before it is validated or resolved.

    The raw input count is checked first, so an oversized recipe costs one ``len``.
    """
    from composer import RecipeError

    inputs = document.get("inputs")
    if isinstance(inputs, list) and len(inputs) > settings.max_recipe_inputs:
        raise RecipeError(
            f"invalid recipe: it has {len(inputs)} inputs, over this registry's limit of "
            f"{settings.max_recipe_inputs} (LORRY_MAX_RECIPE_INPUTS); merge in stages "
            "(compose a few inputs, then compose the results)"
        )


def check_output_rank(recipe: Recipe, settings: Settings) -> None:
    from composer import RecipeError

    rank = recipe.output.rank
    if isinstance(rank, int) and rank > settings.max_output_rank:
        raise RecipeError(
            f"invalid recipe: output.rank {rank} is over this registry's limit of "
            f"{settings.max_output_rank} (LORRY_MAX_OUTPUT_RANK); ask for a smaller rank, "
            "an energy such as 0.99, or exact"
        )


def _check_target(session: Session, target: str, output_kind: str) -> tuple[str, str]:
    namespace, slash, name = target.partition("/")
    if not slash:
        raise InvalidInput(f"target {target!r} must be NAMESPACE/NAME, e.g. acme/sql-formal")
    check_repository_name(namespace, name)
    existing = session.exec(
        select(Repository).where(Repository.namespace == namespace, Repository.name == name)
    ).first()
    if existing is not None:
        check_writable(existing)
    if existing is not None and existing.kind != output_kind:
        raise Conflict(
            f"{target} holds {existing.kind}s but this recipe writes a {output_kind}; "
            "choose another target repository"
        )
    return namespace, name


def submit_composition(
    session: Session,
    caller: Caller,
    queue: JobQueue,
    request: CompositionRequest,
    check_access: Callable[[str, str], None] | None = None,
    *,
    settings: Settings,
    store: BlobStore,
) -> JobOut:
    """Record a composition job (or find an identical earlier one) and enqueue it.

    The recipe is checked against ``settings``' caps and validated (finite numbers,
    known method) before anything is read or written. Every reference is resolved
    now: the job composes exactly these versions even if an alias moves before it
    runs. A job with the same idempotency key (the pinned recipe, its evaluations and the
    target) that is queued, running or succeeded is returned (``reused``) instead of a new
    one. The recipe's ``evaluate`` entries (``registry.services.evaluations``) are checked
    and pinned here too; the job submits them once it has published.
    """
    from composer import parse_recipe  # torch and mergekit load with the first composition

    check_recipe_limits(request.recipe, settings)
    document = dict(request.recipe)
    evaluate = document.pop(EVALUATE, None) or []
    if not isinstance(evaluate, list):
        raise InvalidInput(
            "the recipe's evaluate must be a list of evaluations "
            "([{tasks: [...], base: NS/NAME, tasks_from: NS/NAME@REF}])",
            field="evaluate",
        )
    recipe = parse_recipe(document)
    check_output_rank(recipe, settings)
    output_kind = "model" if recipe.output.type == "merged" else "adapter"
    namespace, name = _check_target(session, request.target, output_kind)
    target = repository_id(namespace, name)
    if request.alias is not None:
        check_alias_name(request.alias)
        # the job publishes as its submitter: a protected alias needs the submitter's promote
        check_alias_change(session, caller, target, request.alias, request.message)
        refuse_unmeasured_version(session, target, request.alias)
    if check_access is not None:
        check_access(WRITE, namespace)
        for reference in [item.adapter for item in recipe.inputs] + [recipe.output.base]:
            if reference is not None:
                check_access(READ, parse_registry_ref(reference).namespace)
    pinned, inputs = resolve_recipe(session, recipe)
    planned = plan_recipe_evaluations(
        session, caller, store, settings, target, evaluate, request.message, check_access
    )
    return create_job(
        session,
        caller,
        queue,
        kind="compose",
        spec=ComposeSubmission(recipe=pinned, evaluate=planned),
        target=target,
        inputs=inputs,
        summary="inputs ",
        event={"method": pinned.method},
        alias=request.alias,
        message=request.message,
    )
