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

from sqlmodel import Session, select

from registry.errors import InvalidInput, InvalidReference
from registry.services.names import check_repository_name, repository_id
from registry.services.refs import resolve_ref
from registry.tables import Repository


def parse_base_reference(text: str) -> tuple[str, str, str | None]:
    """``NAMESPACE/NAME[@REF]`` as ``(namespace, name, ref or None)``."""
    repo, at, ref = text.strip().partition("@")
    namespace, slash, name = repo.partition("/")
    try:
        if not slash or "/" in name or (at and not ref):
            raise InvalidReference("not NAMESPACE/NAME[@REF]")
        check_repository_name(namespace, name)
    except InvalidInput:
        raise InvalidReference(
            f"base model {text!r} is not a registry reference; name a model repository of "
            "this registry as NAMESPACE/NAME[@REF], e.g. acme/llama-3-8b@1"
        ) from None
    return namespace, name, ref or None


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
