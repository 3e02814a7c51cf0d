"""Evaluation gates: a protected alias moves only to a version whose results pass its rules.

``enforce_gates`` runs inside every alias move (``registry.services.aliases.point_alias``,
which ``alias set``, ``push --alias``, Hub commits, branches and tags, and compositions
publishing to an alias all go through). A threshold needs the version's newest matching
result to pass it; ``no regression`` needs the version no worse than the one the alias
points to now. Decisions:

- an alias that points nowhere yet has nothing to regress from: no regression passes;
- a current version without a result for the metric passes too (there is no baseline),
  and the audit event says so; the candidate itself must have a result;
- worse is lower when ``higher_is_better`` is true or unknown, higher when it is false;
  any worsening counts, significant or not.

A refusal names the rule, the metric, the value found (or "no result") and the threshold.
An admin may override a refusal with a reason; the override is its own audit event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from registry.errors import EvidenceRequired, Forbidden
from registry.services.audit import Caller, record_event
from registry.services.gate_rules import OPERATORS, describe_requirement, metric_name
from registry.services.names import repository_id
from registry.services.policies import describe_rule, matching_rules
from registry.services.principals import ADMIN
from registry.tables import Alias, AliasPolicy, EvalResult, Repository, Version

ALIAS_GATE_OVERRIDE = "alias.gate_override"


@dataclass
class GateOutcome:
    evidence: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    failed_rules: list[int] = field(default_factory=list)

    def fail(self, rule: AliasPolicy, message: str) -> None:
        self.failures.append(message)
        if rule.id is not None and rule.id not in self.failed_rules:
            self.failed_rules.append(rule.id)


def _newest(session: Session, version: Version, spec: dict[str, Any]) -> EvalResult | None:
    query = select(EvalResult).where(
        EvalResult.version_id == version.id,
        EvalResult.task == spec["task"],
        EvalResult.metric == spec["metric"],
    )
    if spec.get("filter"):
        query = query.where(EvalResult.filter == spec["filter"])
    return session.exec(query.order_by(col(EvalResult.id).desc()).limit(1)).first()


def _found(result: EvalResult | None) -> str:
    return "no result" if result is None else f"{result.value:g} (result {result.id})"


def _thresholds(
    session: Session, rule: AliasPolicy, version: Version, outcome: GateOutcome, intro: str
) -> None:
    for spec in rule.requirements:
        check = describe_requirement(spec)
        result = _newest(session, version, spec)
        if result is None or not OPERATORS[spec["op"]](result.value, spec["threshold"]):
            outcome.fail(
                rule, f"{intro} requires {check}; version {version.number} has {_found(result)}"
            )
            continue
        outcome.evidence.append(
            {"rule": rule.id, "check": check, "result": result.id, "value": result.value}
        )


def _worse(candidate: EvalResult, baseline: EvalResult) -> bool:
    higher = candidate.higher_is_better
    if higher is None:
        higher = baseline.higher_is_better
    if higher is False:
        return candidate.value > baseline.value
    return candidate.value < baseline.value


def _no_regression(
    session: Session,
    rule: AliasPolicy,
    version: Version,
    current: Version | None,
    outcome: GateOutcome,
    intro: str,
) -> None:
    for spec in rule.no_regression:
        check = f"no regression of {metric_name(spec)}"
        result = _newest(session, version, spec)
        if current is None:
            outcome.evidence.append(
                {
                    "rule": rule.id,
                    "check": check,
                    "result": result.id if result else None,
                    "value": result.value if result else None,
                    "baseline": None,
                }
            )
            continue
        baseline = _newest(session, current, spec)
        if result is None or (baseline is not None and _worse(result, baseline)):
            outcome.fail(
                rule,
                f"{intro} requires {check} against version {current.number}, where the alias "
                f"points now ({_found(baseline)}); version {version.number} has {_found(result)}",
            )
            continue
        outcome.evidence.append(
            {
                "rule": rule.id,
                "check": check,
                "result": result.id,
                "value": result.value,
                "baseline": {
                    "version": current.number,
                    "result": baseline.id if baseline else None,
                    "value": baseline.value if baseline else None,
                },
            }
        )


def evaluate_gates(
    session: Session, repository: Repository, alias: str, version: Version
) -> GateOutcome:
    repo_id = repository_id(repository.namespace, repository.name)
    outcome = GateOutcome()
    row = session.get(Alias, (repository.id, alias))
    current = session.get(Version, row.version_id) if row is not None else None
    for rule in matching_rules(session, repo_id, alias):
        intro = f"alias {alias!r} of {repo_id} is protected by {describe_rule(rule)}, which"
        _thresholds(session, rule, version, outcome, intro)
        _no_regression(session, rule, version, current, outcome, intro)
    return outcome


def enforce_gates(
    session: Session,
    caller: Caller,
    repository: Repository,
    alias: str,
    version: Version,
    reason: str | None,
    override: bool,
) -> dict[str, Any]:
    """What the alias move's audit event records: the evidence relied on (and an override).
    Raises ``EvidenceRequired`` (403) when the evidence fails and no admin overrides."""
    outcome = evaluate_gates(session, repository, alias, version)
    recorded: dict[str, Any] = {"evidence": outcome.evidence} if outcome.evidence else {}
    if not outcome.failures:
        return recorded
    repo_id = repository_id(repository.namespace, repository.name)
    if not override:
        raise EvidenceRequired(
            "; ".join(outcome.failures)
            + f". Record results with `lorry eval add {repo_id}@{version.number} RESULTS.json`,"
            " or an admin may override with `lorry alias set ... --override-gate --reason ...`",
            rules=outcome.failed_rules,
        )
    if not caller.principal.allows(ADMIN, repository.namespace):
        raise Forbidden(
            f"overriding the evaluation gate of {repo_id}@{alias} needs the admin scope on "
            f"{repository.namespace!r}, which {caller.actor!r} does not have"
        )
    if not (reason and reason.strip()):
        raise Forbidden(
            f"overriding the evaluation gate of {repo_id}@{alias} needs a reason "
            "(`--reason`, or `reason` in the request)"
        )
    record_event(
        session,
        caller,
        ALIAS_GATE_OVERRIDE,
        repository=repo_id,
        target=f"{repo_id}@{alias}",
        after={
            "version": version.number,
            "reason": reason,
            "failures": outcome.failures,
            "evidence": outcome.evidence,
        },
    )
    return {**recorded, "override": True, "failures": outcome.failures}


def refuse_unmeasured_version(session: Session, repo_id: str, alias: str) -> None:
    """Refuse up front (a composition's submit) a move of ``alias`` to a version that cannot
    have results yet: a composed version has none when it is published."""
    for rule in matching_rules(session, repo_id, alias):
        if rule.requirements or rule.no_regression:
            raise EvidenceRequired(
                f"alias {alias!r} of {repo_id} is protected by {describe_rule(rule)}, which "
                "requires evaluation results, and a composed version has none when it is "
                "published: compose without the alias and name it as the recipe's evaluate "
                "promote (evaluate: [{tasks: [...], base: ..., tasks_from: ..., promote: "
                f"{alias}}}]), or record results with `lorry eval add` and then move the alias "
                "with `lorry alias set`",
                rules=[rule.id],
            )
