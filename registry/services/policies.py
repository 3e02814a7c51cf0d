"""Protected aliases: rules that say which aliases need the ``promote`` scope and a reason.

A rule matches a repository pattern (``acme/llama-lora``, ``acme/*`` for a
namespace, ``*`` for every repository) and an alias pattern (``production``,
``prod-*``). Setting, moving or deleting a matching alias (also through
``push --alias``) is refused with 403 unless the caller has ``promote`` on the
repository's namespace and, where the rule says so, gives a reason.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from registry.db import write_transaction
from registry.errors import Conflict, Forbidden, PolicyNotFound
from registry.schemas.trust import PolicyCreate, PolicyList, PolicyOut
from registry.services.audit import Caller, record_event
from registry.services.gate_rules import (
    describe_requirement,
    metric_name,
    parse_no_regression,
    parse_requirement,
)
from registry.services.principals import PROMOTE
from registry.services.visibility import EVERYTHING, Visibility
from registry.tables import AliasPolicy, utcnow

POLICY_SET = "policy.set"
POLICY_DELETE = "policy.delete"


def _policy_out(row: AliasPolicy) -> PolicyOut:
    assert row.id is not None
    return PolicyOut(
        id=row.id,
        repository=row.repository_pattern,
        alias=row.alias_pattern,
        require_reason=row.require_reason,
        description=row.description,
        created_by=row.created_by,
        created_at=row.created_at,
        requirements=[describe_requirement(spec) for spec in row.requirements],
        no_regression=[metric_name(spec) for spec in row.no_regression],
    )


def describe_rule(row: AliasPolicy) -> str:
    return f"rule {row.id} ({row.repository_pattern} @ {row.alias_pattern})"


def repository_matches(pattern: str, repository: str) -> bool:
    return pattern == "*" or fnmatchcase(repository, pattern)


def create_policy(session: Session, caller: Caller, body: PolicyCreate) -> PolicyOut:
    requirements = [
        parse_requirement(text, f"requirements[{i}]") for i, text in enumerate(body.requirements)
    ]
    no_regression = [
        parse_no_regression(text, f"no_regression[{i}]")
        for i, text in enumerate(body.no_regression)
    ]
    row = AliasPolicy(
        repository_pattern=body.repository,
        alias_pattern=body.alias,
        require_reason=body.require_reason,
        description=body.description,
        created_by=caller.actor,
        created_at=utcnow(),
        requirements=requirements,
        no_regression=no_regression,
    )
    try:
        with write_transaction(session):
            session.add(row)
            session.flush()
            record_event(
                session,
                caller,
                POLICY_SET,
                repository=None,
                target=f"policy:{row.id}",
                after={
                    "repository": row.repository_pattern,
                    "alias": row.alias_pattern,
                    "require_reason": row.require_reason,
                    "requirements": [describe_requirement(spec) for spec in requirements],
                    "no_regression": [metric_name(spec) for spec in no_regression],
                },
            )
    except IntegrityError as exc:
        raise Conflict(
            f"a rule for {body.repository} @ {body.alias} exists already; "
            "list the rules with `lorry policy ls`"
        ) from exc
    session.refresh(row)
    return _policy_out(row)


def list_policies(session: Session, visible: Visibility = EVERYTHING) -> PolicyList:
    """The rules that may apply to a repository the caller may read."""
    rows = session.exec(select(AliasPolicy).order_by(col(AliasPolicy.id))).all()
    return PolicyList(
        items=[
            _policy_out(row)
            for row in rows
            if visible.overlaps(row.repository_pattern.split("/", 1)[0])
        ]
    )


def delete_policy(session: Session, caller: Caller, policy_id: int) -> None:
    with write_transaction(session):
        row = session.get(AliasPolicy, policy_id)
        if row is None:
            raise PolicyNotFound(
                f"no protected-alias rule {policy_id}; list them with `lorry policy ls`"
            )
        record_event(
            session,
            caller,
            POLICY_DELETE,
            repository=None,
            target=f"policy:{policy_id}",
            before={
                "repository": row.repository_pattern,
                "alias": row.alias_pattern,
                "require_reason": row.require_reason,
            },
        )
        session.delete(row)


def matching_rules(session: Session, repository: str, alias: str) -> list[AliasPolicy]:
    rows = session.exec(select(AliasPolicy).order_by(col(AliasPolicy.id))).all()
    return [
        row
        for row in rows
        if repository_matches(row.repository_pattern, repository)
        and fnmatchcase(alias, row.alias_pattern)
    ]


def check_alias_change(
    session: Session, caller: Caller, repository: str, alias: str, reason: str | None
) -> None:
    """Refuse (403, naming the rule) a change of a protected alias without promote or reason."""
    namespace = repository.split("/", 1)[0]
    for rule in matching_rules(session, repository, alias):
        if not caller.principal.allows(PROMOTE, namespace):
            raise Forbidden(
                f"alias {alias!r} of {repository} is protected by {describe_rule(rule)}: "
                f"moving it needs the promote scope on {namespace!r}, which "
                f"{caller.actor!r} does not have",
                rule=rule.id,
            )
        if rule.require_reason and not (reason and reason.strip()):
            raise Forbidden(
                f"alias {alias!r} of {repository} is protected by {describe_rule(rule)}: "
                "moving it needs a reason (`--reason`, or `reason` in the request)",
                rule=rule.id,
            )
