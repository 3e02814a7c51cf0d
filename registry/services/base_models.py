"""The base model of an adapter as a registry reference, never a trainer's local path.

An adapter's ``base_model_name_or_path`` is whatever its trainer loaded: often a local
directory (``/home/me/llama``) or a Hugging Face Hub id. A version of an adapter links
to a model repository of this registry (``NAMESPACE/NAME`` or ``NAMESPACE/NAME@REF``),
chosen at publish time, first found wins:

1. the push's ``base_model`` (``lorry push --base-model``);
2. the repository's ``base_model`` setting (``PATCH /api/v1/repos/{ns}/{name}``), which
   is how commits through the Hub API (PEFT's ``push_to_hub``, the Trainer) get one;
3. ``base_model_name_or_path`` itself, when it names a model repository here.

Where a base model is shown as something to use (console snippets, model card tags,
the GGUF export's default base) it is the link, or a Hub id; a local path is never
shown as one (``usable_base_model``).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import Session, select

from registry.errors import InvalidInput, InvalidReference
from registry.services.names import repository_id, split_registry_ref
from registry.services.principals import READ
from registry.services.refs import resolve_ref
from registry.services.repositories import find_repository
from registry.tables import Repository, Version


def parse_base_reference(text: str) -> tuple[str, str, str | None]:
    """``NAMESPACE/NAME[@REF]`` as ``(namespace, name, ref or None)``."""
    return split_registry_ref(
        text,
        f"base model {text!r} is not a registry reference; name a model repository of "
        "this registry as NAMESPACE/NAME[@REF], e.g. acme/llama-3-8b@1",
    )


def readable_model_version(
    session: Session,
    reference: str,
    check_access: Callable[[str, str], None] | None,
    what: str,
    flag: str,
) -> tuple[str, Version]:
    """The version of the model repository that ``reference`` (``NAMESPACE/NAME[@REF]``,
    latest by default) names, as ``(repository id, version)``, once the caller may read
    its namespace; ``what`` and ``flag`` say in a refusal where the reference came from
    (``"merge_into"``, ``"--merge-into"``)."""
    namespace, name, ref = split_registry_ref(
        reference,
        f"{what} {reference!r} is not a registry reference; name the base model as "
        f"NAMESPACE/NAME[@REF], e.g. `{flag} acme/llama-3.2-3b@1`",
    )
    if check_access is not None:
        # before any lookup: a namespace the caller may not read is refused whether or
        # not the repository exists, so the answer says nothing of its contents
        check_access(READ, namespace)
    repository = find_repository(session, namespace, name)
    repo_id = repository_id(namespace, name)
    if repository.kind != "model":
        raise InvalidInput(
            f"{what} {reference!r}: {repo_id} holds {repository.kind}s; the base must be a "
            f"model repository (push one with `lorry push DIR {repo_id} --kind model`)"
        )
    return repo_id, resolve_ref(session, repository, ref or "latest")


def _model_repository(session: Session, namespace: str, name: str) -> Repository | None:
    return session.exec(
        select(Repository).where(
            Repository.namespace == namespace,
            Repository.name == name,
            Repository.kind == "model",
        )
    ).first()


def check_base_reference(session: Session, text: str) -> str:
    """The canonical link for ``text``: a model repository here (and its ``REF``) must exist."""
    namespace, name, ref = parse_base_reference(text)
    repo_id = repository_id(namespace, name)
    repository = _model_repository(session, namespace, name)
    if repository is None:
        raise InvalidReference(
            f"base model {text!r}: {repo_id} is not a model repository of this registry; "
            f"push the base model first (`lorry push DIR {repo_id} --kind model`)"
        )
    if ref is None:
        return repo_id
    resolve_ref(session, repository, ref)
    return f"{repo_id}@{ref}"


def automatic_link(session: Session, base_model_name_or_path: str | None) -> str | None:
    """``base_model_name_or_path`` when it names a model repository here, else ``None``."""
    if not base_model_name_or_path:
        return None
    try:
        namespace, name, ref = parse_base_reference(base_model_name_or_path)
    except InvalidInput:
        return None
    if ref is not None or _model_repository(session, namespace, name) is None:
        return None
    return repository_id(namespace, name)


def link_base_model(
    session: Session,
    requested: str | None,
    setting: str | None,
    base_model_name_or_path: str | None,
) -> str | None:
    """The base model link of a new adapter version (see the module docstring)."""
    if requested:
        return check_base_reference(session, requested)
    if setting:
        return setting
    return automatic_link(session, base_model_name_or_path)
