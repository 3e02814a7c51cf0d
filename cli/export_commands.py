"""`lorry export gguf` and `lorry exports`: adapters and models as GGUF for llama.cpp,
Ollama and LM Studio.

The source is a local directory or a registry reference ``NAMESPACE/NAME[@REF]``.
A reference is exported by the registry (``cli.remote_export``: a job that stores the
file beside the version, recorded and shared), then downloaded and verified; with
``--local`` it is pulled and converted on this machine instead, as a directory always
is. ``--merge-into`` follows the same rule: an adapter reference merged into a base
reference is a registry job (a merged export of the adapter version) unless
``--local``; a directory on either side merges here. The composer is imported when a
local conversion runs.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.client import LorryClient, LorryClientError
from cli.common import (
    JsonOption,
    RegistryOption,
    echo_json,
    fail,
    is_reference,
    parse_reference,
    registry_client,
    stderr,
    stdout,
    step_progress,
    transfer_progress,
)
from cli.remote_export import export_in_registry, exports_command, print_hints
from cli.transfer import pull_version

if TYPE_CHECKING:
    from composer.export import GGUFExport

__all__ = ["register"]

_OUTTYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_s", "q4_k_m", "q5_k_m", "q6_k")


def _fetch_config(client: LorryClient, reference: str, directory: Path) -> Path:
    """Download only ``config.json`` of a model version (an adapter export needs no weights)."""
    repository, ref = parse_reference(reference, allow_ref=True)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "config.json"
    with client.stream_file(repository, ref or "latest", "config.json") as response:
        target.write_bytes(response.read())
    return directory


def _adapter_base_reference(source_dir: Path) -> str | None:
    """The adapter's base model when it names a registry repository, not a local directory."""
    try:
        config = json.loads((source_dir / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    named = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if not isinstance(named, str) or Path(named).expanduser().exists():
        return None
    return named if is_reference(named) else None


def _run_export(
    source_dir: Path,
    out: Path,
    *,
    outtype: str | None,
    base: Path | None,
    overwrite: bool,
    name: str | None,
    as_json: bool,
    merge_into: Path | None = None,
) -> GGUFExport:
    from composer import ComposerError
    from composer.export import export_gguf

    try:
        if as_json:
            return export_gguf(
                source_dir,
                out,
                outtype=outtype,
                base=base,
                merge_into=merge_into,
                overwrite=overwrite,
                name=name,
            )
        with step_progress(stderr) as bar:
            task = bar.add_task("exporting", total=None)

            def on_tensor(tensor: str, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, description=tensor)

            return export_gguf(
                source_dir,
                out,
                outtype=outtype,
                base=base,
                merge_into=merge_into,
                overwrite=overwrite,
                name=name,
                progress=on_tensor,
            )
    except ComposerError as error:
        fail(error.message, error.code)


def _print_result(result: GGUFExport, source: str) -> None:
    what = "LoRA adapter" if result.kind == "adapter" else "model"
    if result.merged_into is not None:
        what = "model (adapter merged into its base)"
    stdout.print(
        f"[green]Exported[/green] {source} as a GGUF {what} ({result.architecture}, "
        f"{result.outtype}, {result.tensors} tensors, {result.size:,} bytes): [bold]{result.out}"
    )
    print_hints(result.kind == "adapter", result.out)


def gguf_command(
    source: Annotated[
        str,
        typer.Argument(
            metavar="SOURCE",
            help="An adapter or model directory, or a registry reference NAMESPACE/NAME[@REF].",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Argument(
            metavar="[OUT.gguf]",
            help="The GGUF file to write; for a registry export it may be left out (the "
            "file stays in the registry, beside the version).",
        ),
    ] = None,
    outtype: Annotated[
        str | None,
        typer.Option(
            "--outtype",
            help="f32, f16, bf16 or q8_0 (default: f32 for adapters, f16 for models); for "
            "models and merges also llama-quantize's mixes q4_k_m, q4_k_s, q5_k_m, q6_k, q4_0.",
        ),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            metavar="DIR|NAMESPACE/NAME[@REF]",
            help="Adapters: the base model (its config.json is enough); default: the "
            "adapter's base_model_name_or_path.",
        ),
    ] = None,
    merge_into: Annotated[
        str | None,
        typer.Option(
            "--merge-into",
            metavar="DIR|NAMESPACE/NAME[@REF]",
            help="Merge the adapter SOURCE into this base model (float32, as compose "
            "merges) and export one model file, e.g. --outtype q4_k_m. With both as registry "
            "references the registry builds it (an export of the adapter version, with its "
            "lineage); --local pulls both and merges on this machine.",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="general.name in the file (default: source).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT.gguf if it exists.")
    ] = False,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="For a registry reference: pull it and convert on this machine instead of "
            "having the registry build (and record) the export.",
        ),
    ] = False,
    registry: RegistryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Export a PEFT LoRA adapter (for llama.cpp --lora / Ollama ADAPTER) or a Hugging Face
    model with its tokenizer (for llama.cpp -m / Ollama FROM) to GGUF.

    A registry reference is exported by the registry, which keeps the file beside the
    version (`lorry exports` lists them; Hugging Face clients download it), then
    downloaded and verified. Supported architectures: Llama, Mistral, Qwen2. Nothing is
    written on error.
    """
    if outtype is not None and outtype not in _OUTTYPES:
        fail(f"--outtype must be one of {', '.join(_OUTTYPES)}", "invalid_input")
    if out is not None and out.exists() and not overwrite:
        fail(f"{out} exists; pass --overwrite to replace it", "output_exists")
    if out is not None and out.is_dir():
        fail(f"{out} is a directory; give the path of the .gguf file to write", "output_exists")
    source_path = Path(source).expanduser()
    local_source = source_path.exists() or not is_reference(source)
    if merge_into is not None:
        if base is not None:
            fail(
                "--base names an adapter's base for an adapter export; with --merge-into "
                "the base is the model merged into",
                "invalid_input",
            )
        local_merge = Path(merge_into).expanduser().exists() or not is_reference(merge_into)
        if not (local or local_source or local_merge):
            if name is not None:
                fail(
                    "--name applies to conversions on this machine; the registry names its "
                    "file NAMESPACE/NAME@VERSION (add --local to choose the name)",
                    "invalid_input",
                )
            export_in_registry(
                source,
                out,
                outtype=outtype,
                base=None,
                merge_into=merge_into,
                registry=registry,
                as_json=as_json,
            )
            return
        result = _merged_export(
            source, merge_into, _local_out(out), outtype, overwrite, name, registry, as_json
        )
        _report(result, source, as_json, merge_into)
        return
    base_path = Path(base).expanduser() if base is not None else None
    local_base = base_path is None or base_path.exists() or not is_reference(str(base))
    if not local_source and not local:
        if base is not None and local_base:
            fail(
                f"--base {base} is a local path, which the registry cannot read: give the base "
                "model as NAMESPACE/NAME[@REF], or add --local to convert on this machine",
                "invalid_input",
            )
        if name is not None:
            fail(
                "--name applies to conversions on this machine; the registry names its file "
                "NAMESPACE/NAME@VERSION (add --local to choose the name)",
                "invalid_input",
            )
        export_in_registry(
            source, out, outtype=outtype, base=base, registry=registry, as_json=as_json
        )
        return
    out = _local_out(out)
    base_in_registry = (
        local_source and base_path is None and _adapter_base_reference(source_path) is not None
    )
    if local_source and local_base and not base_in_registry:
        if not source_path.is_dir():
            fail(
                f"{source} is neither a directory nor a registry reference NAMESPACE/NAME[@REF]",
                "invalid_input",
            )
        result = _run_export(
            source_path,
            out,
            outtype=outtype,
            base=base_path,
            overwrite=overwrite,
            name=name,
            as_json=as_json,
        )
    else:
        with (
            tempfile.TemporaryDirectory(prefix="lorry-export-") as scratch,
            registry_client(registry) as client,
        ):
            work = Path(scratch)
            if not local_source:
                repository, ref = parse_reference(source, allow_ref=True)
                with transfer_progress(as_json) as progress:
                    pulled = pull_version(
                        client, repository, ref or "latest", work / "source", progress=progress
                    )
                source_path = pulled.directory
                name = name or f"{repository}@{pulled.version['version']}"
            if not local_base:
                base_path = _fetch_config(client, str(base), work / "base")
            elif base_path is None and (reference := _adapter_base_reference(source_path)):
                try:
                    base_path = _fetch_config(client, reference, work / "base")
                except LorryClientError:
                    base_path = None
            result = _run_export(
                source_path,
                out,
                outtype=outtype,
                base=base_path,
                overwrite=overwrite,
                name=name,
                as_json=as_json,
            )
    _report(result, source, as_json)


def _local_out(out: Path | None) -> Path:
    if out is None:
        fail(
            "give OUT.gguf, the file to write: only an export that the registry builds "
            "(a registry reference without --local) may leave it out",
            "invalid_input",
        )
    return out


def _local_or_pulled(
    value: str, client: LorryClient | None, work: Path, as_json: bool
) -> tuple[Path, str | None]:
    """A local directory as it is, or a registry reference pulled into ``work``."""
    path = Path(value).expanduser()
    if path.exists() or not is_reference(value):
        if not path.is_dir():
            fail(f"{value} is neither a directory nor a registry reference", "invalid_input")
        return path, None
    assert client is not None
    repository, ref = parse_reference(value, allow_ref=True)
    with transfer_progress(as_json) as progress:
        pulled = pull_version(client, repository, ref or "latest", work, progress=progress)
    return pulled.directory, f"{repository}@{pulled.version['version']}"


def _merged_export(
    source: str,
    merge_into: str,
    out: Path,
    outtype: str | None,
    overwrite: bool,
    name: str | None,
    registry: str | None,
    as_json: bool,
) -> GGUFExport:
    remote = any(
        not Path(value).expanduser().exists() and is_reference(value)
        for value in (source, merge_into)
    )
    with tempfile.TemporaryDirectory(prefix="lorry-merge-") as scratch:
        work = Path(scratch)
        if remote:
            with registry_client(registry) as client:
                adapter, adapter_ref = _local_or_pulled(source, client, work / "adapter", as_json)
                base, _ = _local_or_pulled(merge_into, client, work / "base", as_json)
        else:
            adapter, adapter_ref = _local_or_pulled(source, None, work, as_json)
            base, _ = _local_or_pulled(merge_into, None, work, as_json)
        return _run_export(
            adapter,
            out,
            outtype=outtype,
            base=None,
            overwrite=overwrite,
            name=name or adapter_ref,
            as_json=as_json,
            merge_into=base,
        )


def _report(result: GGUFExport, source: str, as_json: bool, merged_into: str | None = None) -> None:
    if as_json:
        echo_json(
            {
                "source": source,
                "kind": result.kind,
                "out": str(result.out),
                "architecture": result.architecture,
                "outtype": result.outtype,
                "tensors": result.tensors,
                "size": result.size,
                "tokenizer_pre": result.tokenizer_pre,
                "merged_into": merged_into,
            }
        )
    else:
        _print_result(result, source)


def register(app: typer.Typer) -> None:
    export_app = typer.Typer(
        name="export",
        help="Export adapters and models to other formats (GGUF for llama.cpp and Ollama).",
        no_args_is_help=True,
    )
    export_app.command("gguf")(gguf_command)
    app.add_typer(export_app, name="export")
    app.command("exports")(exports_command)
