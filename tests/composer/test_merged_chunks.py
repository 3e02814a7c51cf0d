"""The merged writer works a chunk of rows at a time; its bytes must be those of
whole-matrix arithmetic (``weight.float().addmm_(B, A)``, then one cast), whatever
the tensor's size, dtype or offset in the shard."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from composer import merged, shards
from composer.errors import InvalidBaseModel
from composer.merged import Delta, read_base_model, write_merged

_NAMES = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32", torch.int64: "I64"}


def _write_shard(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """A safetensors file with the tensors packed in the given order, with no alignment
    padding (the format allows it; ``safetensors.save_file`` would reorder and align)."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, tensor in tensors.items():
        size = tensor.numel() * tensor.element_size()
        header[name] = {
            "dtype": _NAMES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)) + encoded)
        for tensor in tensors.values():
            handle.write(tensor.contiguous().view(torch.uint8).numpy().tobytes())


def _base(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(7)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * 0.02

    tensors = {
        # 1100 x 1500: one chunk, or several and a short last one (chunk_elements)
        "big.weight": randn(1100, 1500).to(torch.bfloat16),
        "odd.weight": randn(3, 5).to(torch.bfloat16),  # 30 bytes: what follows is misaligned
        "dense.weight": randn(40, 24),
        "norm.weight": randn(24).to(torch.float16),
        "steps": torch.arange(5, dtype=torch.int64),
        "empty.weight": torch.zeros(0, 24, dtype=torch.bfloat16),
    }
    model = tmp_path / "base"
    model.mkdir()
    _write_shard(model / "model.safetensors", tensors)
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return model, tensors


def _deltas() -> dict[str, Delta]:
    generator = torch.Generator().manual_seed(8)
    return {
        "big": (
            torch.randn(1100, 24, generator=generator),
            torch.randn(24, 1500, generator=generator),
        ),
        "odd": (torch.randn(3, 2, generator=generator), torch.randn(2, 5, generator=generator)),
        "dense": torch.randn(40, 24, generator=generator),
    }


def _read(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118


def _expected(tensor: torch.Tensor, delta: Delta | None, dtype: torch.dtype) -> torch.Tensor:
    if delta is None:
        return tensor.to(dtype) if tensor.is_floating_point() else tensor
    whole = tensor.to(torch.float32, copy=True)
    if isinstance(delta, tuple):
        whole.addmm_(*delta)
    else:
        whole.add_(delta)
    return whole.to(dtype)


@pytest.fixture(params=["direct", "page-cache"])
def write_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Shards written with O_DIRECT (where the test filesystem takes it) or through the
    page cache. A stand-in for filesystems that refuse O_DIRECT, which a test cannot
    mount: ``set_direct`` reports failure."""
    if request.param == "page-cache":
        monkeypatch.setattr(shards, "set_direct", lambda fd, direct: False)
    return str(request.param)


@pytest.mark.parametrize("chunk_elements", [None, 400_000])
@pytest.mark.parametrize("stage_bytes", [None, 16 * 1024])
@pytest.mark.parametrize("dtype_name", [None, "float16", "float32"])
def test_chunked_merge_is_bit_identical_to_whole_matrix_arithmetic(
    tmp_path: Path,
    dtype_name: str | None,
    stage_bytes: int | None,
    chunk_elements: int | None,
    write_mode: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if stage_bytes is not None:  # small staging buffers: many rotations, some grown
        monkeypatch.setattr(shards, "_STAGE_BYTES", stage_bytes)
    if chunk_elements is not None:  # 1100 x 1500 in chunks of 266 rows and a short one
        monkeypatch.setattr(merged, "_CHUNK_ELEMENTS", chunk_elements)
    model, tensors = _base(tmp_path)
    deltas = _deltas()
    out = tmp_path / "out"
    out.mkdir()
    write_merged(
        read_base_model(model),
        out,
        deltas.get,
        dtype_name=dtype_name,
        device=torch.device("cpu"),
    )

    written = _read(out / "model.safetensors")
    assert list(written) == sorted(tensors)
    for name, tensor in tensors.items():
        delta = deltas.get(name.removesuffix(".weight"))
        dtype = getattr(torch, dtype_name) if dtype_name else tensor.dtype
        expected = _expected(tensor, delta, dtype if tensor.is_floating_point() else tensor.dtype)
        assert written[name].dtype == expected.dtype, name
        assert written[name].shape == expected.shape, name
        assert torch.equal(written[name].view(torch.uint8), expected.view(torch.uint8)), name


def test_unchanged_tensors_are_copied_byte_for_byte(tmp_path: Path, write_mode: str) -> None:
    model, tensors = _base(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    write_merged(
        read_base_model(model), out, lambda _: None, dtype_name=None, device=torch.device("cpu")
    )

    written = _read(out / "model.safetensors")
    for name, tensor in tensors.items():
        assert torch.equal(written[name].view(torch.uint8), tensor.view(torch.uint8)), name


def test_a_truncated_shard_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    model, _ = _base(tmp_path)
    shard = model / "model.safetensors"
    shard.write_bytes(shard.read_bytes()[:-100])

    with pytest.raises(InvalidBaseModel, match="truncated"):
        read_base_model(model)
