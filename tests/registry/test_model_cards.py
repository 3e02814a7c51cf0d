"""Upload validation: model cards read (front matter, bounds) and generated."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.config import Settings
from registry.errors import InvalidModelCard, TooLarge
from registry.validation import generate_model_card, load_model_card, parse_model_card
from tests.registry.uploads import Blobs, validate_directory


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Plain settings: validation needs the limits only, not a database."""
    return Settings(home=tmp_path / "home")


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
    metadata = validate_directory(lora_adapter_dir, settings).to_dict()
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
    metadata = validate_directory(patterned_adapter_dir, settings)
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
