"""``lorry token`` (create, ls, revoke) and ``lorry policy`` (protected aliases: add, ls, rm).

``lorry token create --admin`` without ``LORRY_TOKEN`` (or with ``--local``)
writes to the database named by ``LORRY_DATABASE_URL`` directly, like ``lorry
serve`` (``cli.local``): the way to create the first admin token. Everything else
goes through the registry's REST API with the caller's ``LORRY_TOKEN``.
"""

from __future__ import annotations

import getpass
import os
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from cli.common import JsonOption, RegistryOption, echo_json, registry_client, stdout
from cli.local import LocalOption, local_registry

token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
policy_app = typer.Typer(
    help="Protected aliases: rules that make aliases need the promote scope and a reason.",
    no_args_is_help=True,
)

_DURATION = re.compile(r"^(\d+)([hdw])$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def _expires(value: str | None) -> datetime | None:
    if value is None:
        return None
    match = _DURATION.match(value.strip())
    if match is None:
        raise typer.BadParameter(
            f"{value!r} is not a duration such as 12h, 30d or 8w", param_hint="'--expires-in'"
        )
    return datetime.now(UTC) + timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _print_token(token: dict[str, Any], json_out: bool) -> None:
    if json_out:
        echo_json(token)
        return
    stdout.print(
        f"token {token['id']} for [bold]{token['principal']}[/]: "
        f"scopes {', '.join(token['scopes'])} on {', '.join(token['namespaces'])}"
    )
    stdout.print("Store it now; it is not shown again:")
    typer.echo(token["token"])


@token_app.command("create")
def create(
    principal: Annotated[
        str | None,
        typer.Option("--principal", help="Who uses it; the actor of its audit events."),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="read, write, promote or admin (repeat for several)."),
    ] = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", help="Namespace pattern such as acme/* (default *)."),
    ] = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="Shortcut for --scope admin --namespace '*'.")
    ] = False,
    description: Annotated[str, typer.Option("--description")] = "",
    expires_in: Annotated[
        str | None, typer.Option("--expires-in", help="Lifetime such as 90d (default: none).")
    ] = None,
    local: LocalOption = False,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    scopes = list(scope or [])
    namespaces = list(namespace or [])
    if admin:
        scopes = [*scopes, "admin"]
        namespaces = namespaces or ["*"]
    if not scopes:
        raise typer.BadParameter("give --scope (read, write, promote, admin) or --admin")
    name = principal or (getpass.getuser() if admin else None)
    if not name:
        raise typer.BadParameter("give --principal: who uses the token")
    expires_at = _expires(expires_in)
    if local or (admin and not os.environ.get("LORRY_TOKEN") and registry is None):
        with local_registry() as database:
            created = database.create_token(
                principal=name,
                scopes=scopes,
                namespaces=namespaces or ["*"],
                description=description,
                expires_at=expires_at,
            )
        _print_token(created, json_out)
        return
    body: dict[str, Any] = {
        "principal": name,
        "scopes": scopes,
        "namespaces": namespaces or ["*"],
        "description": description,
        "expires_at": expires_at.isoformat() if expires_at else None,
    }
    with registry_client(registry) as client:
        token = client.request("POST", "/api/v1/tokens", json=body).json()
    _print_token(token, json_out)


@token_app.command("ls")
def list_tokens(
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
    local: LocalOption = False,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """List tokens (never their secrets)."""
    if local:
        with local_registry() as database:
            items = database.list_tokens(include_revoked=include_revoked)
    else:
        with registry_client(registry) as client:
            items = client.request(
                "GET", "/api/v1/tokens", params={"include_revoked": include_revoked}
            ).json()["items"]
    if json_out:
        echo_json({"items": items})
        return
    if not items:
        stdout.print("no tokens")
    for item in items:
        state = " [red](revoked)[/]" if item["revoked_at"] else ""
        expiry = f", expires {item['expires_at']}" if item["expires_at"] else ""
        stdout.print(
            f"{item['id']}  {item['principal']}  {','.join(item['scopes'])}  "
            f"{','.join(item['namespaces'])}{expiry}{state}"
        )


@token_app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id (`token ls`).")],
    local: LocalOption = False,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Revoke a token at once; it is kept (revoked) so that the audit trail names it."""
    if local:
        with local_registry() as database:
            item = database.revoke_token(token_id)
    else:
        with registry_client(registry) as client:
            item = client.request("DELETE", f"/api/v1/tokens/{token_id}").json()
    if json_out:
        echo_json(item)
        return
    stdout.print(f"revoked token {item['id']} of {item['principal']}")


@policy_app.command("add")
def add_policy(
    repository: Annotated[
        str, typer.Argument(metavar="REPOSITORY", help="ns/name, ns/* or * (every repository).")
    ],
    alias: Annotated[str, typer.Argument(metavar="ALIAS", help="Alias name or pattern.")],
    no_reason: Annotated[
        bool, typer.Option("--no-reason", help="Need promote, but no reason.")
    ] = False,
    description: Annotated[str, typer.Option("--description")] = "",
    require: Annotated[
        list[str] | None,
        typer.Option(
            "--require",
            metavar="'TASK/METRIC OP NUMBER'",
            help="Evidence a move needs, e.g. 'sql_eval/exact_match >= 0.80' (repeatable).",
        ),
    ] = None,
    require_no_regression: Annotated[
        list[str] | None,
        typer.Option(
            "--require-no-regression",
            metavar="TASK/METRIC",
            help="No worse than on the version the alias points to now (repeatable).",
        ),
    ] = None,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Protect matching aliases: moving them needs the promote scope and a reason, and
    (with --require / --require-no-regression) evaluation results that pass."""
    body = {
        "repository": repository,
        "alias": alias,
        "require_reason": not no_reason,
        "description": description,
        "requirements": require or [],
        "no_regression": require_no_regression or [],
    }
    with registry_client(registry) as client:
        rule = client.request("POST", "/api/v1/policies", json=body).json()
    if json_out:
        echo_json(rule)
        return
    stdout.print(f"rule {rule['id']}: {rule['repository']} @ {rule['alias']} is protected")


@policy_app.command("ls")
def list_policies(json_out: JsonOption = False, registry: RegistryOption = None) -> None:
    """List the protected-alias rules."""
    with registry_client(registry) as client:
        items = client.request("GET", "/api/v1/policies").json()["items"]
    if json_out:
        echo_json({"items": items})
        return
    if not items:
        stdout.print("no protected aliases")
    for rule in items:
        reason = "promote + reason" if rule["require_reason"] else "promote"
        evidence = [*rule.get("requirements", [])]
        evidence += [f"no regression of {name}" for name in rule.get("no_regression", [])]
        gates = f"; {', '.join(evidence)}" if evidence else ""
        stdout.print(f"{rule['id']}  {rule['repository']} @ {rule['alias']}  ({reason}{gates})")


@policy_app.command("rm")
def remove_policy(
    policy_id: Annotated[int, typer.Argument(metavar="ID")],
    registry: RegistryOption = None,
) -> None:
    """Remove a protected-alias rule."""
    with registry_client(registry) as client:
        client.request("DELETE", f"/api/v1/policies/{policy_id}")
    stdout.print(f"removed rule {policy_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
    app.add_typer(policy_app, name="policy")
