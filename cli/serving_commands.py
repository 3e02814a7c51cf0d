"""``lorry webhook`` and ``lorry deploy``: signed event deliveries and deployment targets."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from cli.common import (
    JsonOption,
    RegistryOption,
    echo_json,
    fail,
    parse_reference,
    registry_client,
    stdout,
)
from cli.tables import Column, FittedTable

__all__ = ["register"]

API = "/api/v1"
webhook_app = typer.Typer(
    name="webhook", help="Signed webhooks: subscribe URLs to events.", no_args_is_help=True
)
deploy_app = typer.Typer(
    name="deploy",
    help="Deployment targets: servers (vLLM) that follow an alias.",
    no_args_is_help=True,
)
NamespaceArg = Annotated[str, typer.Argument(metavar="NAMESPACE")]
WebhookIdArg = Annotated[int, typer.Argument(metavar="WEBHOOK_ID")]


def _split_pattern(pattern: str) -> tuple[str, str]:
    namespace, slash, names = pattern.partition("/")
    if not slash or not namespace or not names or "*" in namespace:
        fail(
            f"{pattern!r} is not NAMESPACE/NAME-GLOB; write e.g. acme/* or acme/sql-*",
            "invalid_input",
        )
    return namespace, names


def _when(value: str | None) -> str:
    return value[:19].replace("T", " ") if value else "-"


def _webhooks_table(items: list[dict[str, Any]]) -> FittedTable:
    table = FittedTable(
        f"webhooks ({len(items)})",
        [
            Column("id", key=True, justify="right"),
            Column("repositories", key=True, style="bold cyan"),
            Column("events", drop=2),
            Column("url"),
            Column("created", drop=1),
        ],
    )
    for item in items:
        table.add_row(
            str(item["id"]),
            escape(f"{item['namespace']}/{item['repositories']}"),
            escape(", ".join(item["events"])),
            escape(item["url"]),
            _when(item["created_at"]),
        )
    return table


def _deliveries_table(items: list[dict[str, Any]]) -> FittedTable:
    table = FittedTable(
        f"deliveries ({len(items)})",
        [
            Column("delivery", key=True),
            Column("event", key=True),
            Column("state", key=True),
            Column("attempts", drop=3, justify="right"),
            Column("status", drop=4, justify="right"),
            Column("created", drop=2),
            Column("last error", drop=1),
        ],
    )
    for item in items:
        table.add_row(
            item["id"],
            escape(item["event"]),
            item["state"],
            str(item["attempts"]),
            str(item["last_status"] or "-"),
            _when(item["created_at"]),
            escape((item["last_error"] or "")[:80]),
        )
    return table


def _deployments_table(items: list[dict[str, Any]]) -> FittedTable:
    table = FittedTable(
        f"deployments ({len(items)})",
        [
            Column("id", key=True, justify="right"),
            Column("follows", key=True, style="bold cyan"),
            Column("server", drop=3),
            Column("name", drop=2),
            Column("alias at", key=True, justify="right"),
            Column("serves", key=True, justify="right"),
            Column("since", drop=1),
            Column("last error", drop=4),
        ],
    )
    for item in items:
        table.add_row(
            str(item["id"]),
            escape(f"{item['repository']}@{item['alias']}"),
            escape(f"{item['kind']} {item['url']}"),
            escape(item["lora_name"]),
            str(item["alias_version"] or "-"),
            str(item["served_version"] or "-"),
            _when(item["served_since"]),
            escape((item["last_error"] or "")[:80]),
        )
    return table


@webhook_app.command("add")
def webhook_add(
    pattern: Annotated[str, typer.Argument(metavar="NAMESPACE/NAME-GLOB")],
    url: Annotated[str, typer.Option("--url", help="Where to POST the events.")],
    events: Annotated[
        list[str],
        typer.Option("--event", help="An event type (repeat): alias.set, version.publish, ..."),
    ],
    secret: Annotated[
        str | None, typer.Option("--secret", help="Signing secret (default: a random one).")
    ] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Subscribe URL to EVENTs of the repositories matching NAMESPACE/NAME-GLOB."""
    namespace, names = _split_pattern(pattern)
    body: dict[str, Any] = {"url": url, "events": events, "repositories": names}
    if secret is not None:
        body["secret"] = secret
    if description is not None:
        body["description"] = description
    with registry_client(registry) as client:
        created = client.request("POST", f"{API}/webhooks/{namespace}", json=body).json()
    if json_out:
        echo_json(created)
        return
    typer.echo(f"webhook {created['id']}: {namespace}/{names} {', '.join(created['events'])}")
    typer.echo(f"signing secret (shown only now): {created['secret']}")


@webhook_app.command("ls")
def webhook_ls(json_out: JsonOption = False, registry: RegistryOption = None) -> None:
    """List the webhooks you may read."""
    with registry_client(registry) as client:
        items = client.request("GET", f"{API}/webhooks").json()["items"]
    if json_out:
        echo_json(items)
        return
    stdout.print(_webhooks_table(items))


@webhook_app.command("rm")
def webhook_rm(
    namespace: NamespaceArg, webhook_id: WebhookIdArg, registry: RegistryOption = None
) -> None:
    """Remove a webhook and its pending deliveries."""
    with registry_client(registry) as client:
        client.request("DELETE", f"{API}/webhooks/{namespace}/{webhook_id}")
    typer.echo(f"removed webhook {webhook_id}")


@webhook_app.command("test")
def webhook_test(
    namespace: NamespaceArg,
    webhook_id: WebhookIdArg,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Queue a signed `ping` delivery to the webhook."""
    with registry_client(registry) as client:
        path = f"{API}/webhooks/{namespace}/{webhook_id}/test"
        delivery = client.request("POST", path).json()
    if json_out:
        echo_json(delivery)
        return
    typer.echo(f"ping queued: delivery {delivery['id']} (see `lorry webhook deliveries`)")


@webhook_app.command("deliveries")
def webhook_deliveries(
    namespace: NamespaceArg,
    webhook_id: WebhookIdArg,
    state: Annotated[str | None, typer.Option("--state")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """The delivery log of a webhook, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if state is not None:
        params["state"] = state
    with registry_client(registry) as client:
        path = f"{API}/webhooks/{namespace}/{webhook_id}/deliveries"
        result = client.request("GET", path, params=params).json()
    if json_out:
        echo_json(result)
        return
    stdout.print(_deliveries_table(result["items"]))


@webhook_app.command("redeliver")
def webhook_redeliver(
    namespace: NamespaceArg,
    webhook_id: WebhookIdArg,
    delivery_id: Annotated[str, typer.Argument(metavar="DELIVERY_ID")],
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Send a delivery again (a new delivery id, the same event id and payload)."""
    with registry_client(registry) as client:
        path = f"{API}/webhooks/{namespace}/{webhook_id}/deliveries/{delivery_id}/redeliver"
        delivery = client.request("POST", path).json()
    if json_out:
        echo_json(delivery)
        return
    typer.echo(f"redelivery queued: delivery {delivery['id']}")


@deploy_app.command("add")
def deploy_add(
    repository: Annotated[str, typer.Argument(metavar="NAMESPACE/NAME")],
    alias: Annotated[str, typer.Option("--alias", help="The alias the server follows.")],
    vllm: Annotated[str | None, typer.Option("--vllm", help="Base URL of a vLLM server.")] = None,
    webhook: Annotated[
        str | None,
        typer.Option("--webhook", help="A URL that gets each rollout as a signed JSON POST."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="The LoRA name the server serves it under (vLLM: needed)."),
    ] = None,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Make a server follow ALIAS: every move of it rolls the new version out there."""
    repo, _ = parse_reference(repository, allow_ref=False)
    if (vllm is None) == (webhook is None):
        fail("give exactly one of --vllm URL and --webhook URL", "invalid_input")
    if vllm is not None and name is None:
        fail("--vllm needs --name: the LoRA name vLLM serves the adapter under", "invalid_input")
    kind, url = ("vllm", vllm) if vllm is not None else ("webhook", webhook)
    lora_name = name or repo.split("/", 1)[1]
    body = {"alias": alias, "kind": kind, "url": url, "lora_name": lora_name}
    with registry_client(registry) as client:
        created = client.request("POST", f"{API}/repos/{repo}/deployments", json=body).json()
    if json_out:
        echo_json(created)
        return
    typer.echo(
        f"deployment {created['id']}: {kind} {url} serves {repo}@{alias} as {lora_name!r}; "
        f"rolling out version {created['alias_version']}"
    )
    if created.get("secret"):
        typer.echo(f"signing secret (shown only now): {created['secret']}")


@deploy_app.command("ls")
def deploy_ls(
    repository: Annotated[str | None, typer.Argument(metavar="[NAMESPACE/NAME]")] = None,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Each target with the version it serves now, since when, and the last error."""
    with registry_client(registry) as client:
        if repository is None:
            items = client.request("GET", f"{API}/deployments").json()["items"]
        else:
            repo, _ = parse_reference(repository, allow_ref=False)
            items = client.request("GET", f"{API}/repos/{repo}/deployments").json()["items"]
    if json_out:
        echo_json(items)
        return
    stdout.print(_deployments_table(items))


@deploy_app.command("rm")
def deploy_rm(
    repository: Annotated[str, typer.Argument(metavar="NAMESPACE/NAME")],
    deployment_id: Annotated[int, typer.Argument(metavar="DEPLOYMENT_ID")],
    registry: RegistryOption = None,
) -> None:
    """Stop following (what the server serves is left as it is)."""
    repo, _ = parse_reference(repository, allow_ref=False)
    with registry_client(registry) as client:
        client.request("DELETE", f"{API}/repos/{repo}/deployments/{deployment_id}")
    typer.echo(f"removed deployment {deployment_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(webhook_app, name="webhook")
    app.add_typer(deploy_app, name="deploy")
