"""Upload validation: manifest paths and limits, safetensors headers, LoRA adapters, cards."""

from __future__ import annotations

import hashlib
import json
import random
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import deserialize, safe_open
from safetensors.torch import load_file, save_file

from registry.config import Settings
from registry.errors import (
    InvalidAdapter,
    InvalidInput,
    InvalidModelCard,
    InvalidPath,
    InvalidSafetensors,
    PickleNotAllowed,
    TooLarge,
    UnsupportedAdapterType,
)
from registry.validation import (
    DTYPE_BITS,
    AdapterMetadata,
    BlobReader,
    ManifestEntry,
    adapter_config,
    check_manifest,
    generate_model_card,
    load_model_card,
    module_rank,
    parse_model_card,
    read_safetensors_header,
    validate_adapter,
)
from tests.factories import build_lora_adapter, load_tiny_llama

SHA = "ab" * 32
PREFIX = "base_model.model.model.layers"


class Blobs:
    """A content-addressed blob store backed by a dict {sha256: path}, like the registry's."""

    def __init__(self) -> None:
        self.paths: dict[str, Path] = {}

    def add(self, path: Path, name: str | None = None) -> ManifestEntry:
        data = path.read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        self.paths[sha256] = path
        return ManifestEntry(path=name or path.name, sha256=sha256, size=len(data))

    def read(self, sha256: str, start: int, length: int) -> bytes:
        with self.paths[sha256].open("rb") as handle:
            handle.seek(start)
            return handle.read(length)


def _manifest(directory: Path, blobs: Blobs) -> list[ManifestEntry]:
    return [
        blobs.add(path, path.relative_to(directory).as_posix())
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    ]


def _copy_adapter(source: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    for name in ("adapter_config.json", "adapter_model.safetensors", "README.md"):
        (target / name).write_bytes((source / name).read_bytes())
    return target


def _edit_config(directory: Path, **changes: Any) -> None:
    path = directory / "adapter_config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if value is _DELETE:
            del config[key]
        else:
            config[key] = value
    path.write_text(json.dumps(config))


_DELETE = object()


def _validate(directory: Path, settings: Settings) -> AdapterMetadata:
    blobs = Blobs()
    entries = _manifest(directory, blobs)
    check_manifest(entries, settings)
    return validate_adapter(entries, blobs.read, settings)


def _safetensors(header: Any, data: bytes = b"", *, length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def _reader(blob: bytes) -> BlobReader:
    def read(sha256: str, start: int, length: int) -> bytes:
        return blob[start : start + length]

    return read


def _parse(blob: bytes, *, size: int | None = None, limit: int = 1 << 20) -> dict[str, Any]:
    return read_safetensors_header(
        _reader(blob), SHA, len(blob) if size is None else size, max_header_bytes=limit
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture(scope="module")
def patterned_adapter_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    """rsLoRA, three targets, and a rank_pattern with a full-path key and a suffix key."""
    return build_lora_adapter(
        tiny_llama_dir,
        tmp_path_factory.mktemp("patterned") / "adapter",
        r=8,
        lora_alpha=32,
        target_modules=("q_proj", "v_proj", "down_proj"),
        use_rslora=True,
        rank_pattern={"layers.1.self_attn.q_proj": 4, "down_proj": 2},
    )


@pytest.fixture(scope="module")
def dora_adapter_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    from peft import LoraConfig, get_peft_model

    out = tmp_path_factory.mktemp("dora") / "adapter"
    model = get_peft_model(
        load_tiny_llama(tiny_llama_dir), LoraConfig(r=4, target_modules=["v_proj"], use_dora=True)
    )
    model.save_pretrained(str(out))
    return out


# ---------------------------------------------------------------- manifest


def _entry(path: str, size: int = 10, sha256: str = SHA) -> ManifestEntry:
    return ManifestEntry(path=path, sha256=sha256, size=size)


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("../x", "'..'"),
        ("weights/../../etc/passwd", "'..'"),
        ("/abs/adapter_config.json", "absolute"),
        ("a\\b", "backslash"),
        ("a//b", "empty or '.'"),
        ("./a", "empty or '.'"),
        ("dir/", "empty or '.'"),
        ("a\x00b", "control character"),
        ("a\nb", "control character"),
        ("C:/x", "drive letter"),
        ("x" * 256, "longer than 255"),
        ("a/" * 600 + "b", "longer than 1024"),
        ("", "non-empty"),
        ("a:b", "drive letter"),
        ("adapter:b", "contains :"),
        ("weights/x:stream", "contains :"),
        ("what?.json", "contains ?"),
        ('a<b>"c|d*', 'contains " * < > |'),
        ("notes.", "ends in a dot or a space"),
        ("dir /a.json", "ends in a dot or a space"),
        ("CON", "CON is a device name"),
        ("con.json", "CON is a device name"),
        ("tok/Nul.tar.gz", "NUL is a device name"),
        ("com1", "COM1 is a device name"),
        ("LPT9.txt", "LPT9 is a device name"),
        ("COM\u00b9.md", "COM\u00b9 is a device name"),
        ("AUX /x", "ends in a dot or a space"),
        ("a\x7fb", "control character"),
        ("a\x85b", "control character"),
    ],
)
def test_check_manifest_rejects_unsafe_path(settings: Settings, path: str, problem: str) -> None:
    with pytest.raises(InvalidPath) as info:
        check_manifest([_entry("adapter_config.json"), _entry(path)], settings)
    assert problem in info.value.message
    assert repr(path)[:60] in info.value.message or path == ""


@pytest.mark.parametrize(
    "path", ["pytorch_model.bin", "adapter.pt", "x/adapter.pth", "MODEL.PKL", "a.pickle", "c.ckpt"]
)
def test_check_manifest_rejects_pickled_weights_with_safetensors_hint(
    settings: Settings, path: str
) -> None:
    with pytest.raises(PickleNotAllowed) as info:
        check_manifest([_entry("adapter_config.json"), _entry(path)], settings)
    message = info.value.message
    assert repr(path) in message
    assert "safetensors.torch.save_file" in message
    assert "save_pretrained" in message


def test_check_manifest_accepts_numpy_and_nested_extra_files(settings: Settings) -> None:
    check_manifest(
        [_entry("adapter_config.json"), _entry("extra/stats.npy"), _entry("tokenizer/vocab.json")],
        settings,
    )


def test_check_manifest_rejects_duplicate_path(settings: Settings) -> None:
    with pytest.raises(InvalidPath, match=r"'README.md' appears more than once"):
        check_manifest([_entry("README.md"), _entry("a"), _entry("README.md")], settings)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("README.md", "readme.md"),
        ("Tokenizer/vocab.json", "tokenizer/vocab.json"),
        ("caf\u00e9.json", "cafe\u0301.json"),
        ("stra\u00dfe.txt", "STRASSE.txt"),
        ("Tok", "tok/a.json"),
    ],
)
def test_check_manifest_refuses_paths_that_collide_on_macos_and_windows(
    settings: Settings, first: str, second: str
) -> None:
    with pytest.raises(InvalidPath) as info:
        check_manifest([_entry(first), _entry("adapter_config.json"), _entry(second)], settings)
    assert repr(first) in info.value.message and repr(second) in info.value.message
    assert "macOS and Windows" in info.value.message


def test_check_manifest_accepts_names_that_only_look_like_device_names(
    settings: Settings,
) -> None:
    names = ["console.json", "CONFIG.json", "nul_stats.npy", "com10.txt", "lpt.md", "a.b/c d.e"]
    check_manifest([_entry(name) for name in names], settings)


def test_check_manifest_rejects_file_that_is_also_a_folder(settings: Settings) -> None:
    with pytest.raises(InvalidPath, match=r"'tok' is both a file and the folder of 'tok/a.json'"):
        check_manifest([_entry("tok"), _entry("tok/a.json")], settings)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (_entry("a", sha256="AB" * 32), "64 lowercase hex"),
        (_entry("a", sha256="ab" * 31), "64 lowercase hex"),
        (_entry("a", size=-1), "non-negative integer"),
    ],
)
def test_check_manifest_rejects_bad_digest_or_size(
    settings: Settings, entry: ManifestEntry, problem: str
) -> None:
    with pytest.raises(InvalidInput, match=problem):
        check_manifest([entry], settings)


def test_check_manifest_rejects_empty_manifest(settings: Settings) -> None:
    with pytest.raises(InvalidInput, match="no files"):
        check_manifest([], settings)


def test_check_manifest_reports_unsafe_path_before_limits(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, max_files_per_version=1)
    with pytest.raises(InvalidPath):
        check_manifest([_entry("a"), _entry("../b")], settings)


def test_check_manifest_enforces_file_count_limit(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, max_files_per_version=2)
    with pytest.raises(TooLarge, match="at most 2 files, this one has 3"):
        check_manifest([_entry("a"), _entry("b"), _entry("c")], settings)


def test_check_manifest_enforces_file_size_limit(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, max_file_bytes=100)
    with pytest.raises(TooLarge, match=r"'big.safetensors' is 101 bytes.*LORRY_MAX_FILE_BYTES"):
        check_manifest([_entry("a", 100), _entry("big.safetensors", 101)], settings)


def test_check_manifest_enforces_version_size_limit(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, max_version_bytes=150)
    with pytest.raises(TooLarge, match=r"add up to 160 bytes.*LORRY_MAX_VERSION_BYTES"):
        check_manifest([_entry("a", 80), _entry("b", 80)], settings)


# ---------------------------------------------------------------- safetensors header


def test_read_safetensors_header_matches_safetensors_library(lora_adapter_dir: Path) -> None:
    path = lora_adapter_dir / "adapter_model.safetensors"
    tensors = _parse(path.read_bytes())
    with safe_open(path, "pt") as handle:
        assert sorted(tensors) == sorted(handle.keys())
        for name, info in tensors.items():
            assert list(info.shape) == handle.get_slice(name).get_shape()
            assert info.dtype == handle.get_slice(name).get_dtype()
            assert info.end - info.start == info.numel * DTYPE_BITS[info.dtype] // 8


def test_read_safetensors_header_accepts_metadata_and_empty_tensors() -> None:
    header = {
        "__metadata__": {"format": "pt"},
        "empty": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]},
        "x": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]},
    }
    tensors = _parse(_safetensors(header, b"\0" * 4))
    assert tensors["x"].shape == (2,)
    assert tensors["empty"].numel == 0
    assert "__metadata__" not in tensors


def test_read_safetensors_header_rejects_header_length_beyond_file() -> None:
    blob = _safetensors({}, length=1000)
    with pytest.raises(InvalidSafetensors, match=r"claims 1000 bytes but the file is only"):
        _parse(blob)


def test_read_safetensors_header_rejects_header_over_limit() -> None:
    blob = _safetensors({"x": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"\0")
    with pytest.raises(InvalidSafetensors, match=r"over the limit of 16 bytes"):
        _parse(blob, limit=16)


def test_read_safetensors_header_rejects_tiny_file() -> None:
    with pytest.raises(InvalidSafetensors, match="too short"):
        _parse(b"\x01\x02")


def test_read_safetensors_header_rejects_blob_shorter_than_its_manifest_size() -> None:
    blob = _safetensors({"x": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}}, b"\0" * 4)
    truncated = blob[:20]
    with pytest.raises(InvalidSafetensors, match="truncated"):
        _parse(truncated, size=len(blob))


def test_read_safetensors_header_rejects_missing_tensor_data() -> None:
    header = {"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
    with pytest.raises(InvalidSafetensors, match=r"cover 16 bytes but the data section is 8"):
        _parse(_safetensors(header, b"\0" * 8))


def test_read_safetensors_header_rejects_trailing_bytes() -> None:
    header = {"x": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}
    with pytest.raises(InvalidSafetensors, match=r"cover 2 bytes but the data section is 3"):
        _parse(_safetensors(header, b"\0" * 3))


@pytest.mark.parametrize(
    "raw", [b"{not json", b"\xff\xfe{}", b'{"a": NaN}', b'{"x": 1, "x": 2}', b"[1, 2]"]
)
def test_read_safetensors_header_rejects_garbage_header(raw: bytes) -> None:
    with pytest.raises(InvalidSafetensors, match="safetensors header"):
        _parse(_safetensors(raw))


def test_read_safetensors_header_rejects_overlapping_offsets() -> None:
    header = {
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
    }
    with pytest.raises(InvalidSafetensors, match=r"tensor 'b' starts at offset 4.*overlaps"):
        _parse(_safetensors(header, b"\0" * 12))


def test_read_safetensors_header_rejects_gap_between_tensors() -> None:
    header = {
        "a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
        "b": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]},
    }
    with pytest.raises(InvalidSafetensors, match=r"tensor 'b'.*leaves a gap"):
        _parse(_safetensors(header, b"\0" * 6))


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}, "needs 12 bytes"),
        ({"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}, "unknown dtype 'Q4'"),
        ({"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}, "non-negative integers"),
        ({"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}, "non-negative integers"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}, "begin <= end"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [0]}, "begin <= end"),
        ({"dtype": "F32", "shape": [2]}, "exactly the keys"),
        ([1, 2], "not a JSON object"),
    ],
)
def test_read_safetensors_header_rejects_bad_tensor_entry(entry: Any, problem: str) -> None:
    with pytest.raises(InvalidSafetensors, match=re.escape(problem)):
        _parse(_safetensors({"w": entry}, b"\0" * 8))


def test_read_safetensors_header_rejects_non_string_metadata() -> None:
    with pytest.raises(InvalidSafetensors, match="__metadata__"):
        _parse(_safetensors({"__metadata__": {"step": 3}}))


def test_read_safetensors_header_survives_random_mutations(lora_adapter_dir: Path) -> None:
    """Every mutated file either parses or is refused with an InvalidInput, never anything
    else, and the verdict agrees with the safetensors library's own parser."""
    original = (lora_adapter_dir / "adapter_model.safetensors").read_bytes()
    header_end = 8 + struct.unpack("<Q", original[:8])[0]
    rng = random.Random(20261124)
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(200):
        blob = bytearray(original)
        for _ in range(rng.randint(1, 8)):
            blob[rng.randrange(header_end)] = rng.randrange(256)
        if rng.random() < 0.1:
            blob = blob[: rng.randrange(len(blob))]
        try:
            _parse(bytes(blob), limit=1 << 16)
            parsed = True
        except InvalidInput:
            parsed = False
        try:
            deserialize(bytes(blob))
            library_parsed = True
        except Exception:
            library_parsed = False
        assert parsed == library_parsed
        outcomes["parsed" if parsed else "refused"] += 1
    assert outcomes["refused"] > 100
    assert outcomes["parsed"] > 0


# ---------------------------------------------------------------- adapter


def test_validate_adapter_returns_exact_metadata_of_real_peft_adapter(
    settings: Settings, lora_adapter_dir: Path, tiny_llama_dir: Path
) -> None:
    metadata = _validate(lora_adapter_dir, settings)
    modules: dict[str, dict[str, list[int]]] = {}
    for layer in (0, 1):
        modules[f"model.layers.{layer}.self_attn.q_proj"] = {"lora_A": [8, 64], "lora_B": [64, 8]}
        modules[f"model.layers.{layer}.self_attn.v_proj"] = {"lora_A": [8, 64], "lora_B": [32, 8]}
    assert metadata.to_dict() == {
        "peft_type": "LORA",
        "r": 8,
        "lora_alpha": 16,
        "use_rslora": False,
        "target_modules": ["q_proj", "v_proj"],
        "base_model_name_or_path": str(tiny_llama_dir),
        "rank_pattern": {},
        "alpha_pattern": {},
        "parameter_count": 2 * (8 * 64 + 64 * 8 + 8 * 64 + 32 * 8),
        "dtypes": ["F32"],
        "modules": modules,
        "task_type": "CAUSAL_LM",
        "use_dora": False,
        "bias": "none",
    }


def test_validate_adapter_applies_rank_pattern_like_peft(
    settings: Settings, patterned_adapter_dir: Path
) -> None:
    metadata = _validate(patterned_adapter_dir, settings).to_dict()
    assert metadata["use_rslora"] is True
    assert metadata["rank_pattern"] == {"layers.1.self_attn.q_proj": 4, "down_proj": 2}
    assert metadata["target_modules"] == ["down_proj", "q_proj", "v_proj"]
    assert metadata["modules"] == {
        "model.layers.0.mlp.down_proj": {"lora_A": [2, 128], "lora_B": [64, 2]},
        "model.layers.0.self_attn.q_proj": {"lora_A": [8, 64], "lora_B": [64, 8]},
        "model.layers.0.self_attn.v_proj": {"lora_A": [8, 64], "lora_B": [32, 8]},
        "model.layers.1.mlp.down_proj": {"lora_A": [2, 128], "lora_B": [64, 2]},
        "model.layers.1.self_attn.q_proj": {"lora_A": [4, 64], "lora_B": [64, 4]},
        "model.layers.1.self_attn.v_proj": {"lora_A": [8, 64], "lora_B": [32, 8]},
    }
    tensors = load_file(patterned_adapter_dir / "adapter_model.safetensors")
    assert metadata["parameter_count"] == sum(t.numel() for t in tensors.values())


def test_validate_adapter_records_dora_magnitudes(
    settings: Settings, dora_adapter_dir: Path
) -> None:
    metadata = _validate(dora_adapter_dir, settings).to_dict()
    assert metadata["use_dora"] is True
    assert metadata["modules"]["model.layers.0.self_attn.v_proj"] == {
        "lora_A": [4, 64],
        "lora_B": [32, 4],
        "lora_magnitude_vector": [32],
    }
    assert "task_type" not in metadata


@pytest.mark.parametrize(
    "module",
    [
        "model.layers.1.self_attn.q_proj",
        "model.layers.11.self_attn.q_proj",
        "model.layers.0.mlp.down_proj",
        "model.layers.0.self_attn.v_proj",
        "down_proj",
        "model.layers.0.mlp.xdown_proj",
    ],
)
def test_module_rank_matches_peft_pattern_lookup(module: str) -> None:
    from peft.utils.other import get_pattern_key

    pattern = {"layers.1.self_attn.q_proj": 4, r"layers\.1\d\..*q_proj": 6, "down_proj": 2}
    key = get_pattern_key(list(pattern), module)
    assert module_rank(module, 8, pattern) == (pattern.get(key, 8), key if key in pattern else None)


def test_module_rank_refuses_pattern_that_matches_too_slowly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(adapter_config, "PATTERN_TIMEOUT_S", 1e-6)
    module = "model." + "layer." * 3000 + "q_proj"
    with pytest.raises(InvalidAdapter, match="rank_pattern pattern .* takes too long"):
        module_rank(module, 8, {r"(?:(\w+)\.?)+\1\1[!?]": 4})


def test_validate_adapter_requires_adapter_config(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = _copy_adapter(lora_adapter_dir, tmp_path / "a")
    (directory / "adapter_config.json").unlink()
    with pytest.raises(InvalidAdapter, match=r"no adapter_config.json.*save_pretrained"):
        _validate(directory, settings)


def test_validate_adapter_requires_safetensors_weights(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = _copy_adapter(lora_adapter_dir, tmp_path / "a")
    (directory / "weights").mkdir()
    (directory / "adapter_model.safetensors").rename(directory / "weights" / "x.safetensors")
    with pytest.raises(InvalidAdapter, match=r"no adapter_model.safetensors.*save_pretrained"):
        _validate(directory, settings)


def test_validate_adapter_bounds_config_size(lora_adapter_dir: Path, tmp_path: Path) -> None:
    assert Settings(home=tmp_path).max_config_bytes == 1024 * 1024
    settings = Settings(home=tmp_path, max_config_bytes=100)
    with pytest.raises(
        TooLarge,
        match=r"adapter_config.json is \d+ bytes, over the limit of 100 \(LORRY_MAX_CONFIG",
    ):
        _validate(lora_adapter_dir, settings)


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"{broken", "not valid UTF-8 JSON"), (b"\xff{}", "not valid UTF-8 JSON"), (b"[]", "object")],
)
def test_validate_adapter_rejects_unparsable_config(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path, content: bytes, problem: str
) -> None:
    directory = _copy_adapter(lora_adapter_dir, tmp_path / "a")
    (directory / "adapter_config.json").write_bytes(content)
    with pytest.raises(InvalidAdapter, match=problem):
        _validate(directory, settings)


def test_validate_adapter_refuses_real_ia3_adapter(
    settings: Settings, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    from peft import IA3Config, get_peft_model

    model = get_peft_model(
        load_tiny_llama(tiny_llama_dir),
        IA3Config(target_modules=["v_proj"], feedforward_modules=[]),
    )
    model.save_pretrained(str(tmp_path / "ia3"))
    with pytest.raises(UnsupportedAdapterType) as info:
        _validate(tmp_path / "ia3", settings)
    assert "'IA3' is not supported" in info.value.message
    assert "LORA" in info.value.message
    assert "LoraConfig" in info.value.message


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"peft_type": _DELETE}, "no peft_type"),
        ({"r": _DELETE}, "r is missing; it must be a positive integer"),
        ({"r": 0}, "r is 0"),
        ({"r": "8"}, "r is '8'"),
        ({"r": True}, "r is True"),
        ({"lora_alpha": _DELETE}, "lora_alpha is missing"),
        ({"lora_alpha": "16"}, "lora_alpha is '16'"),
        ({"target_modules": _DELETE}, "target_modules is missing"),
        ({"target_modules": []}, "target_modules is []"),
        ({"target_modules": ["q_proj", 3]}, "target_modules is"),
        ({"use_rslora": "yes"}, "use_rslora is 'yes'; it must be true or false"),
        ({"rank_pattern": {"q_proj": 0}}, "rank_pattern['q_proj'] is 0"),
        ({"rank_pattern": ["q_proj"]}, "rank_pattern is ['q_proj']"),
        ({"alpha_pattern": {"q_proj": "x"}}, "alpha_pattern['q_proj'] is 'x'"),
        ({"rank_pattern": {"q_proj(": 4}}, "not a valid regular expression"),
        ({"target_modules": "q_proj("}, "not a valid regular expression"),
        ({"base_model_name_or_path": 3}, "base_model_name_or_path is 3"),
    ],
)
def test_validate_adapter_rejects_bad_config_field(
    settings: Settings,
    lora_adapter_dir: Path,
    tmp_path: Path,
    changes: dict[str, Any],
    problem: str,
) -> None:
    directory = _copy_adapter(lora_adapter_dir, tmp_path / "a")
    _edit_config(directory, **changes)
    with pytest.raises(InvalidAdapter) as info:
        _validate(directory, settings)
    assert problem in info.value.message


def test_validate_adapter_accepts_regex_target_modules_and_missing_rslora(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = _copy_adapter(lora_adapter_dir, tmp_path / "a")
    _edit_config(directory, target_modules=r".*\.(q|v)_proj", use_rslora=_DELETE)
    metadata = _validate(directory, settings)
    assert metadata.target_modules == r".*\.(q|v)_proj"
    assert metadata.use_rslora is False


def _rewrite_tensors(
    directory: Path, edit: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]
) -> None:
    path = directory / "adapter_model.safetensors"
    save_file(edit(load_file(path)), path)


def test_validate_adapter_rejects_module_outside_target_modules(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = _copy_adapter(lora_adapter_dir, tmp_path / "a")
    _edit_config(directory, target_modules=["q_proj"])
    with pytest.raises(InvalidAdapter) as info:
        _validate(directory, settings)
    assert "'model.layers.0.self_attn.v_proj' has LoRA weights but target_modules" in (
        info.value.message
    )
    assert "add it to target_modules" in info.value.message


@pytest.mark.parametrize(
    ("targets", "accepted"),
    [("all-linear", True), (r".*layers\.\d\.self_attn\.(q|v)_proj", True), ("q_proj", False)],
)
def test_validate_adapter_matches_string_target_modules_as_full_regex(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path, targets: str, accepted: bool
) -> None:
    directory = _copy_adapter(lora_adapter_dir, tmp_path / "a")
    _edit_config(directory, target_modules=targets)
    if accepted:
        assert _validate(directory, settings).target_modules == targets
    else:
        with pytest.raises(InvalidAdapter, match="does not select it"):
            _validate(directory, settings)


def test_validate_adapter_rejects_rank_mismatch(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = _copy_adapter(lora_adapter_dir, tmp_path / "a")
    name = f"{PREFIX}.1.self_attn.v_proj"

    def shrink(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tensors[f"{name}.lora_A.weight"] = tensors[f"{name}.lora_A.weight"][:4].contiguous()
        tensors[f"{name}.lora_B.weight"] = tensors[f"{name}.lora_B.weight"][:, :4].contiguous()
        return tensors

    _rewrite_tensors(directory, shrink)
    with pytest.raises(InvalidAdapter) as info:
        _validate(directory, settings)
    message = info.value.message
    assert "'model.layers.1.self_attn.v_proj' has lora_A [4, 64] and lora_B [32, 4]" in message
    assert "rank 8 (from r)" in message


def test_validate_adapter_rejects_shapes_that_contradict_rank_pattern(
    settings: Settings, patterned_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = _copy_adapter(patterned_adapter_dir, tmp_path / "a")
    _edit_config(directory, rank_pattern={"down_proj": 3})
    with pytest.raises(InvalidAdapter) as info:
        _validate(directory, settings)
    assert "rank 3 (from rank_pattern['down_proj'])" in info.value.message
    assert "model.layers.0.mlp.down_proj" in info.value.message


def test_validate_adapter_rejects_inner_dimension_mismatch(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = _copy_adapter(lora_adapter_dir, tmp_path / "a")
    name = f"{PREFIX}.0.self_attn.q_proj.lora_B.weight"

    def widen(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tensors[name] = torch.zeros(64, 6)
        return tensors

    _rewrite_tensors(directory, widen)
    with pytest.raises(InvalidAdapter, match=r"lora_B \[64, 6\].*expected lora_A \[8, in\]"):
        _validate(directory, settings)


def test_validate_adapter_rejects_unpaired_lora_a(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = _copy_adapter(lora_adapter_dir, tmp_path / "a")

    def drop_b(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        del tensors[f"{PREFIX}.0.self_attn.q_proj.lora_B.weight"]
        return tensors

    _rewrite_tensors(directory, drop_b)
    with pytest.raises(
        InvalidAdapter, match=r"'model.layers.0.self_attn.q_proj' has lora_A but no lora_B"
    ):
        _validate(directory, settings)


@pytest.mark.parametrize(
    "name",
    [
        "base_model.model.lm_head.weight",
        f"{PREFIX}.0.self_attn.q_proj.lora_A.default.weight",
        f"{PREFIX}.0.self_attn.q_proj.lora_B.bias",
        "model.layers.0.self_attn.k_proj.lora_A.weight",
    ],
)
def test_validate_adapter_rejects_non_lora_tensor(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path, name: str
) -> None:
    directory = _copy_adapter(lora_adapter_dir, tmp_path / "a")

    def add(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tensors[name] = torch.zeros(2, 2)
        return tensors

    _rewrite_tensors(directory, add)
    with pytest.raises(InvalidAdapter) as info:
        _validate(directory, settings)
    assert f"tensor {name!r} is not a LoRA factor" in info.value.message
    assert "modules_to_save" in info.value.message


def test_validate_adapter_rejects_dora_vector_without_factors(
    settings: Settings, dora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = _copy_adapter(dora_adapter_dir, tmp_path / "a")
    name = f"{PREFIX}.1.self_attn.v_proj"

    def strip(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        del tensors[f"{name}.lora_A.weight"], tensors[f"{name}.lora_B.weight"]
        return tensors

    _rewrite_tensors(directory, strip)
    with pytest.raises(
        InvalidAdapter,
        match=r"'model.layers.1.self_attn.v_proj' has lora_magnitude_vector but no lora_A",
    ):
        _validate(directory, settings)


def test_validate_adapter_rejects_convolution_lora(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = _copy_adapter(lora_adapter_dir, tmp_path / "a")
    name = f"{PREFIX}.0.self_attn.q_proj"

    def conv(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tensors[f"{name}.lora_A.weight"] = torch.zeros(8, 64, 1, 1)
        return tensors

    _rewrite_tensors(directory, conv)
    with pytest.raises(InvalidAdapter, match=r"lora_A of module .* \[8, 64, 1, 1\].*2-D"):
        _validate(directory, settings)


def test_validate_adapter_rejects_dora_vector_without_use_dora(
    settings: Settings, dora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = _copy_adapter(dora_adapter_dir, tmp_path / "a")
    _edit_config(directory, use_dora=False)
    with pytest.raises(InvalidAdapter, match=r"lora_magnitude_vector but .* use_dora: true"):
        _validate(directory, settings)


def test_validate_adapter_rejects_dora_module_without_magnitude(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = _copy_adapter(lora_adapter_dir, tmp_path / "a")
    _edit_config(directory, use_dora=True)
    with pytest.raises(InvalidAdapter, match=r"needs lora_magnitude_vector of shape \[64\]"):
        _validate(directory, settings)


def test_validate_adapter_accepts_embedding_factors(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = _copy_adapter(lora_adapter_dir, tmp_path / "a")
    name = "base_model.model.model.embed_tokens"

    def embed(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tensors[f"{name}.lora_embedding_A"] = torch.zeros(8, 128)
        tensors[f"{name}.lora_embedding_B"] = torch.zeros(64, 8)
        return tensors

    _rewrite_tensors(directory, embed)
    _edit_config(directory, target_modules=["q_proj", "v_proj", "embed_tokens"])
    metadata = _validate(directory, settings)
    assert metadata.modules["model.embed_tokens"] == {"lora_A": [8, 128], "lora_B": [64, 8]}


def test_validate_adapter_rejects_empty_weights(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = _copy_adapter(lora_adapter_dir, tmp_path / "a")
    (directory / "adapter_model.safetensors").write_bytes(_safetensors({}))
    with pytest.raises(InvalidAdapter, match="holds no tensors"):
        _validate(directory, settings)


def test_validate_adapter_reports_corrupt_weights_as_invalid_safetensors(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = _copy_adapter(lora_adapter_dir, tmp_path / "a")
    (directory / "adapter_model.safetensors").write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(InvalidSafetensors, match="adapter_model.safetensors"):
        _validate(directory, settings)


# ---------------------------------------------------------------- model cards


def test_parse_model_card_reads_front_matter_of_peft_readme(lora_adapter_dir: Path) -> None:
    card = parse_model_card((lora_adapter_dir / "README.md").read_text())
    assert card["library_name"] == "peft"
    assert "lora" in card["tags"]


def test_parse_model_card_returns_json_ready_values() -> None:
    text = "---\nlicense: mit\ndate: 2024-03-03\n1: one\ntags: [a, b]\n---\n# Title\n"
    assert parse_model_card(text) == {
        "license": "mit",
        "date": "2024-03-03",
        "1": "one",
        "tags": ["a", "b"],
    }


def test_parse_model_card_accepts_windows_line_endings_and_bom() -> None:
    assert parse_model_card("\ufeff---\r\nlicense: mit\r\n---\r\n# T\r\n") == {"license": "mit"}


@pytest.mark.parametrize("text", ["# Just markdown\n", "", "---\n---\nbody", "\n---\na: 1\n---\n"])
def test_parse_model_card_without_front_matter_is_empty(text: str) -> None:
    assert parse_model_card(text) == {}


def test_parse_model_card_reports_malformed_yaml_with_line() -> None:
    text = "---\nlicense: mit\ntags: [a, b\n---\n"
    with pytest.raises(InvalidModelCard) as info:
        parse_model_card(text)
    assert "not valid YAML at line" in info.value.message
    assert "'---'" in info.value.message


def test_parse_model_card_reports_line_of_bad_indentation() -> None:
    with pytest.raises(InvalidModelCard, match="at line 3"):
        parse_model_card("---\na: 1\n b: 2\n---\n")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("---\n- a\n- b\n---\n", "must be a mapping"),
        ("---\nlicense: mit\n", "never closes it"),
        ("---\na: &x [1, 2]\nb: *x\n---\n", "aliases"),
        ("---\nblob: !!binary aGVsbG8=\n---\n", "binary"),
        ("---\nx: !!python/object:os.system {}\n---\n", "not valid YAML"),
    ],
)
def test_parse_model_card_rejects_unusable_front_matter(text: str, problem: str) -> None:
    with pytest.raises(InvalidModelCard, match=problem):
        parse_model_card(text)


def test_load_model_card_bounds_size_and_encoding(tmp_path: Path) -> None:
    blobs = Blobs()
    (tmp_path / "README.md").write_bytes(b"---\nlicense: mit\n---\n\xff\n")
    entry = blobs.add(tmp_path / "README.md")
    with pytest.raises(InvalidModelCard, match="not UTF-8"):
        load_model_card(entry, blobs.read, Settings(home=tmp_path))
    with pytest.raises(TooLarge, match="over the limit of 8"):
        load_model_card(entry, blobs.read, Settings(home=tmp_path, max_metadata_file_bytes=8))


def test_generate_model_card_follows_hub_conventions(
    settings: Settings, lora_adapter_dir: Path
) -> None:
    metadata = _validate(lora_adapter_dir, settings).to_dict()
    metadata["base_model_name_or_path"] = "meta-llama/Llama-3.2-1B"
    card = generate_model_card("acme/sql-gen", metadata)
    assert parse_model_card(card) == {
        "base_model": "meta-llama/Llama-3.2-1B",
        "library_name": "peft",
        "tags": ["base_model:adapter:meta-llama/Llama-3.2-1B", "lora", "peft"],
        "pipeline_tag": "text-generation",
    }
    assert "# acme/sql-gen" in card
    assert 'PeftModel.from_pretrained(base, "acme/sql-gen")' in card
    assert "| Rank (r) | 8 |" in card
    assert "| lora_alpha | 16 |" in card
    assert "| rsLoRA | no |" in card
    assert "| Target modules | q_proj, v_proj |" in card
    assert "| Parameters | 3,584 |" in card
    assert "| Dtypes | F32 |" in card


def test_generate_model_card_is_deterministic_and_keeps_local_paths_out_of_front_matter(
    settings: Settings, patterned_adapter_dir: Path
) -> None:
    metadata = _validate(patterned_adapter_dir, settings)
    card = generate_model_card("acme/patterned", metadata)
    assert card == generate_model_card("acme/patterned", metadata.to_dict())
    front = parse_model_card(card)
    assert "base_model" not in front
    assert front["tags"] == ["lora", "peft"]
    assert "| rsLoRA | yes |" in card
    assert "| Rank pattern | down_proj: 2, layers.1.self_attn.q_proj: 4 |" in card


def test_generate_model_card_omits_pipeline_tag_for_unknown_task() -> None:
    card = generate_model_card("a/b", {"r": 4, "lora_alpha": 8, "task_type": None})
    assert "pipeline_tag" not in parse_model_card(card)
    assert "AutoModelForCausalLM.from_pretrained" in card


def test_generate_model_card_loads_base_with_the_task_auto_class() -> None:
    card = generate_model_card("a/b", {"r": 4, "lora_alpha": 8, "task_type": "SEQ_CLS"})
    assert parse_model_card(card)["pipeline_tag"] == "text-classification"
    assert "AutoModelForSequenceClassification.from_pretrained" in card
