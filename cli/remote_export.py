"""`lorry export gguf NS/NAME@REF` through the registry, and `lorry exports`.

The registry builds the export as a job (or finds it: the same version, format,
outtype and base are built once), keeps it beside the version, and the CLI follows
the job, then downloads the file (when given an OUT path) and verifies its size and
sha256 against the registry's record. ``--merge-into`` makes it a merged export: the
adapter merged into a base model, one model file kept beside the adapter version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape

from cli.client import LorryClient
from cli.common import (
    JsonOption,
    RegistryOption,
    echo_json,
    fail,
    parse_reference,
    registry_client,
    stderr,
    stdout,
    transfer_progress,
)
from cli.remote_compose import FINISHED, follow_job
from cli.tables import Column, FittedTable
from cli.transfer import download_file

__all__ = ["export_in_registry", "exports_command", "print_hints"]


def _versions_path(repository: str, ref: str) -> str:
    namespace, _, name = repository.partition("/")
    return (
        f"/api/v1/repos/{quote(namespace, safe='')}/{quote(name, safe='')}"
        f"/versions/{quote(ref, safe=':')}"
    )


def _download(
    client: LorryClient, job: dict[str, Any], entry: dict[str, Any], out: Path, as_json: bool
) -> None:
    """Download the export, verified against the registry's record (``download_file``)."""
    result = job["result"]
    with transfer_progress(as_json) as progress:
        progress.start("download", entry["size"])
        download_file(
            client,
            result["repository"],
            result["digest"],
            entry,
            out,
            progress,
            retry="run the export again (the registry reuses its file)",
        )


def _wait(client: LorryClient, job: dict[str, Any], as_json: bool) -> dict[str, Any]:
    if job["state"] in FINISHED:
        return job
    if not as_json:
        stderr.print(
            f"Job {job['id']} {job['state']}: the registry builds {job['export']['path']}; "
            "Ctrl-C stops waiting (not the job)"
        )
    try:
        return follow_job(client, job, bar=not as_json)
    except KeyboardInterrupt:
        fail(
            f"stopped waiting; job {job['id']} goes on (`lorry job cancel {job['id']}` "
            f"cancels it, `lorry job {job['id']}` follows it)"
        )


def export_in_registry(
    source: str,
    out: Path | None,
    *,
    outtype: str | None,
    base: str | None,
    registry: str | None,
    as_json: bool,
    merge_into: str | None = None,
) -> None:
    """Have the registry build (or reuse) the export of ``source``, then download it to
    ``out`` (``None``: leave it in the registry)."""
    repository, ref = parse_reference(source, allow_ref=True)
    body = {"format": "gguf", "outtype": outtype, "base": base, "merge_into": merge_into}
    with registry_client(registry) as client:
        job = client.request(
            "POST",
            f"{_versions_path(repository, ref or 'latest')}/exports",
            json={key: value for key, value in body.items() if value is not None},
        ).json()
        job = _wait(client, job, as_json)
        if job["state"] != "succeeded":
            error = job.get("error") or {}
            reason = f": {error['message']}" if error.get("message") else ""
            fail(f"job {job['id']} {job['state']}{reason}", error.get("code") or job["state"])
        version = job["result"]["version"]
        path = job["export"]["path"]
        entry = client.request(
            "GET",
            f"{_versions_path(repository, job['result']['digest'])}/exports/"
            f"{quote(path, safe='/')}",
        ).json()
        if out is not None:
            _download(client, job, entry, out, as_json)
    lineage = entry["lineage"]
    merged = entry.get("merged_into")
    if as_json:
        echo_json(
            {
                "source": source,
                "kind": lineage.get("kind"),
                "out": str(out) if out is not None else None,
                "architecture": lineage.get("architecture"),
                "outtype": entry["outtype"],
                "tensors": lineage.get("tensors"),
                "size": entry["size"],
                "tokenizer_pre": lineage.get("tokenizer_pre"),
                "sha256": entry["sha256"],
                "registry": {
                    "repository": entry["repository"],
                    "version": entry["version"],
                    "path": path,
                    "job": job["id"],
                    "reused": job.get("reused", False),
                },
                "merged_into": merged,
                "libraries": lineage.get("libraries"),
            }
        )
        return
    what = "LoRA adapter" if lineage.get("kind") == "adapter" else "model"
    if merged:
        what = f"model (merged into {merged['repository']}@{merged['version']})"
    built = "reused the registry's" if job.get("reused") else "built by the registry,"
    architecture = lineage.get("architecture")
    where = f"{escape(entry['repository'])}@{version}/{path}"
    stdout.print(
        f"[green]Exported[/green] {escape(source)} as a GGUF {escape(what)} ({architecture}, "
        f"{entry['outtype']}, {lineage.get('tensors')} tensors, {entry['size']:,} bytes; "
        f"{built} {where}, job {job['id']})"
        + (f": [bold]{escape(str(out))}" if out is not None else "")
    )
    if out is None:
        stdout.print(
            "Download it: give the same command an OUT.gguf path (the registry reuses its "
            f"file), or fetch {escape(path)} as a file of {escape(entry['repository'])}@{version}"
        )
        return
    print_hints(lineage.get("kind") == "adapter", out)


def print_hints(adapter: bool, out: Path) -> None:
    if adapter:
        stdout.print(f"llama.cpp: llama-cli -m BASE.gguf --lora {out}")
        stdout.print(f"Ollama Modelfile: FROM ./BASE.gguf + ADAPTER ./{out.name}")
    else:
        stdout.print(f"llama.cpp: llama-cli -m {out}  |  Ollama: FROM ./{out.name}")


def _exports_table(
    listing: dict[str, Any], items: str = "items", title: str = "exports of"
) -> FittedTable:
    source = listing["source"]
    table = FittedTable(
        f"{title} {source['repository']}@{source['version']} ({source['digest'][:19]})",
        [
            Column("path", key=True),
            Column("format", key=True),
            Column("outtype", key=True),
            Column("size", key=True, justify="right"),
            Column("sha256", drop=3),
            Column("from", drop=4),
            Column("created", drop=2),
            Column("job", drop=1),
        ],
    )
    for item in listing[items]:
        lineage = item["lineage"]
        base = lineage.get("base")
        origin = f"{lineage.get('kind')} ({lineage.get('architecture')})"
        if items != "items":
            origin = f"{item['repository']}@{item['version']}, {origin}"
        if base and lineage.get("merged"):
            origin += f", merged into {base['repository']}@{base['version']}"
        elif base:
            origin += f", base {base['repository']}@{base['version']}"
        table.add_row(
            escape(item["path"]),
            item["format"],
            item["outtype"],
            f"{item['size']:,}",
            item["sha256"][:12],
            escape(origin),
            f"{item['created_at'][:19].replace('T', ' ')} by {escape(item['created_by'])}",
            item["job"],
        )
    return table


def exports_command(
    reference: Annotated[
        str, typer.Argument(metavar="NAMESPACE/NAME[@REF]", help="The version (default: latest).")
    ],
    registry: RegistryOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the files exported from a version (GGUF), each downloadable as a file of it."""
    repository, ref = parse_reference(reference, allow_ref=True)
    with registry_client(registry) as client:
        listing = client.request(
            "GET", f"{_versions_path(repository, ref or 'latest')}/exports"
        ).json()
    if as_json:
        echo_json(listing)
        return
    merged = listing.get("merged_into_this") or []
    if not listing["items"] and not merged:
        source = listing["source"]
        stdout.print(
            f"{source['repository']}@{source['version']} has no exports; build one with "
            f"`lorry export gguf {source['repository']}@{source['version']} OUT.gguf`"
        )
        return
    if listing["items"]:
        stdout.print(_exports_table(listing))
    if merged:
        stdout.print(_exports_table(listing, "merged_into_this", "adapters merged into"))
