"""Upload validation: manifest paths, names and limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.config import Settings
from registry.errors import InvalidInput, InvalidPath, PickleNotAllowed, TooLarge
from registry.validation import ManifestEntry, check_manifest
from tests.registry.uploads import SHA


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Plain settings: validation needs the limits only, not a database."""
    return Settings(home=tmp_path / "home")


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
