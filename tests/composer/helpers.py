"""Reference computations for the composer tests, done with PEFT and transformers."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import typer

from cli.compose_commands import register
from tests.support.factories import load_tiny_llama

INPUT_IDS = torch.tensor([[1, 5, 9, 17, 33, 65, 100, 127], [3, 2, 1, 0, 64, 32, 16, 8]])


def peft_deltas(base_dir: Path, adapter_dir: Path) -> dict[str, torch.Tensor]:
    """Each adapted module's delta weight as PEFT itself computes it (scaling included)."""
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    model = PeftModel.from_pretrained(load_tiny_llama(base_dir), adapter_dir)
    deltas = {}
    prefix = "base_model.model."
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer) and "default" in module.lora_A:
            deltas[name.removeprefix(prefix)] = module.get_delta_weight("default").detach().clone()
    return deltas


def logits_with_deltas(base_dir: Path, deltas: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits of the base model with ``deltas`` added to a copy of its weights."""
    model = copy.deepcopy(load_tiny_llama(base_dir))
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, delta in deltas.items():
            modules[name].weight += delta
        return model(INPUT_IDS).logits


def peft_logits(base_dir: Path, adapter_dir: Path) -> torch.Tensor:
    from peft import PeftModel

    model = PeftModel.from_pretrained(load_tiny_llama(base_dir), adapter_dir)
    model.eval()
    with torch.no_grad():
        return model(INPUT_IDS).logits


def combine(*terms: tuple[float, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """``sum_i c_i * deltas_i`` over the union of modules."""
    out: dict[str, torch.Tensor] = {}
    for coefficient, deltas in terms:
        for name, delta in deltas.items():
            out[name] = out.get(name, torch.zeros_like(delta)) + coefficient * delta
    return out


def compose_app() -> typer.Typer:
    """A `lorry` app holding only the compose command (the local composer's CLI)."""
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test app holding only the compose command."""

    register(app)
    return app
