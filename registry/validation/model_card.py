"""Model cards in the Hugging Face convention: YAML front matter, then Markdown.

``parse_model_card`` returns the front matter as JSON-ready data (dates become
ISO strings, keys strings, sets sorted lists). Its cost is bounded: the front
matter is at most ``max_front_matter_bytes`` (found without splitting the whole
card into lines), and its parser events are checked before anything is
constructed: YAML anchors, aliases and merge keys are refused (a small card
cannot expand into a huge document) and so is nesting deeper than ``MAX_DEPTH``.
libyaml's C parser is used where PyYAML has it. ``generate_model_card`` writes
the card of an adapter pushed without one; the same metadata gives the same
bytes.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping
from typing import Any, NoReturn

import yaml

from registry.config import Settings
from registry.errors import InvalidModelCard, TooLarge
from registry.validation.adapter import AdapterMetadata
from registry.validation.manifest import BlobReader, ManifestEntry
from registry.validation.safetensors_header import read_exact

__all__ = ["MODEL_CARD", "generate_model_card", "load_model_card", "parse_model_card"]

MODEL_CARD = "README.md"

_DELIMITER = "---"
_FIX = "fix the YAML between the two '---' lines at the top of README.md"
# PEFT task types whose Hugging Face pipeline is unambiguous.
_PIPELINE_TAGS = {
    "CAUSAL_LM": "text-generation",
    "SEQ_2_SEQ_LM": "text2text-generation",
    "SEQ_CLS": "text-classification",
    "TOKEN_CLS": "token-classification",
    "QUESTION_ANS": "question-answering",
    "FEATURE_EXTRACTION": "feature-extraction",
}
# The transformers auto class that loads the base model of each PEFT task type.
_AUTO_CLASSES = {
    "CAUSAL_LM": "AutoModelForCausalLM",
    "SEQ_2_SEQ_LM": "AutoModelForSeq2SeqLM",
    "SEQ_CLS": "AutoModelForSequenceClassification",
    "TOKEN_CLS": "AutoModelForTokenClassification",
    "QUESTION_ANS": "AutoModelForQuestionAnswering",
    "FEATURE_EXTRACTION": "AutoModel",
}
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")


_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's loader where PyYAML was built with it (5-10x faster), else the pure-Python one."""
MAX_DEPTH = 32
"""Deepest nesting of mappings and sequences in front matter (real cards nest 4-6 levels)."""
_MERGE_TAG = "tag:yaml.org,2002:merge"
_COLLECTION_START = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_COLLECTION_END = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _refuse(event: yaml.Event, problem: str) -> NoReturn:
    mark: Any = event.start_mark  # libyaml's Mark is not PyYAML's type, but reads the same
    raise yaml.MarkedYAMLError(problem=problem, problem_mark=mark)


def _check_events(block: str) -> None:
    """Refuse anchors, aliases, merge keys and deep nesting, from the parser's events alone.

    Runs before anything is constructed, so the cost is one pass of the (C) parser over
    at most ``max_front_matter_bytes``: no alias can expand a small card into a huge
    document, and no nesting can exhaust the constructor's stack. A plain ``<<`` is the
    merge key wherever it stands (PyYAML resolves it so even as a value).
    """
    depth = 0
    for event in yaml.parse(block, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            _refuse(event, "YAML anchors (&name) and aliases (*name) are not allowed in a card")
        if isinstance(event, yaml.ScalarEvent) and (
            (event.value == "<<" and event.implicit[0]) or event.tag == _MERGE_TAG
        ):
            _refuse(
                event, "YAML merge keys (<<) are not allowed in a model card; quote a literal '<<'"
            )
        if isinstance(event, _COLLECTION_START):
            depth += 1
            if depth > MAX_DEPTH:
                _refuse(event, f"the front matter nests deeper than {MAX_DEPTH} levels")
        elif isinstance(event, _COLLECTION_END):
            depth -= 1


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, set):
        return sorted(str(item) for item in value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes):
        raise InvalidModelCard(
            f"README.md front matter holds binary data (!!binary); {_FIX}: use text values"
        )
    return value


_CLOSING = re.compile(r"^---[^\S\n]*$", re.MULTILINE)
_OPENING = re.compile(r"---[^\S\n]*(?:\n|$)")
DEFAULT_FRONT_MATTER_BYTES = 64 * 1024


def _front_matter(text: str, max_bytes: int) -> str | None:
    """The text between the opening and closing ``---`` lines; None without front matter."""
    start = 1 if text.startswith("\ufeff") else 0
    opening = _OPENING.match(text, start)
    if opening is None:
        return None
    begin = opening.end()
    # The closing line can only start within max_bytes (+ the newline) of the opening: the
    # scan stops there, so a card of millions of lines costs what its first 64 KiB cost.
    window = begin + max_bytes + 1
    closing = _CLOSING.search(text, begin, window + 8)
    if closing is not None and _CLOSING.match(text, closing.start()) is None:
        closing = None  # "---" cut off by the window, e.g. a "----" line
    if closing is None and len(text) > window:
        raise TooLarge(
            f"README.md's YAML front matter is not closed within {max_bytes} bytes, the limit "
            "(LORRY_MAX_FRONT_MATTER_BYTES); close it with a line '---' after the metadata and "
            "keep long content (tables, examples) below that line",
            path=MODEL_CARD,
        )
    if closing is None:
        raise InvalidModelCard(
            "README.md opens its YAML front matter with '---' on line 1 but never closes it; "
            "add a line '---' after the metadata"
        )
    end = max(begin, closing.start() - 1)
    # More characters than bytes allowed is over the limit: no copy of it is made.
    block = text[begin:end] if end - begin <= max_bytes else ""
    size = len(block.encode("utf-8", "surrogatepass")) if block else end - begin
    if size > max_bytes:
        raise TooLarge(
            f"README.md's YAML front matter is {size} bytes or more, over the limit of "
            f"{max_bytes} (LORRY_MAX_FRONT_MATTER_BYTES); keep the metadata short and move "
            "long content (tables, examples) below the closing '---'",
            path=MODEL_CARD,
        )
    return block


def parse_model_card(text: str, *, max_bytes: int = DEFAULT_FRONT_MATTER_BYTES) -> dict[str, Any]:
    """The YAML front matter of a model card as a dict; ``{}`` when it has none.

    The front matter starts at a first line ``---`` and ends at the next ``---`` line.
    Raises ``InvalidModelCard`` (with the README.md line) for malformed YAML, an unclosed
    block, anchors, aliases, merge keys, nesting deeper than ``MAX_DEPTH`` or front
    matter that is not a mapping, and ``TooLarge`` for front matter over ``max_bytes``.
    """
    block = _front_matter(text, max_bytes)
    if block is None:
        return {}
    try:
        _check_events(block)
        data = yaml.load(block, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 2}, column {mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "malformed YAML"
        raise InvalidModelCard(
            f"README.md front matter is not valid YAML{where}: {problem}; {_FIX}"
        ) from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise InvalidModelCard(
            f"README.md front matter is not valid YAML ({exc}); {_FIX}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidModelCard(
            f"README.md front matter must be a mapping such as 'library_name: peft', "
            f"found a {type(data).__name__}; {_FIX}"
        )
    result: dict[str, Any] = _jsonable(data)
    return result


def load_model_card(entry: ManifestEntry, read: BlobReader, settings: Settings) -> dict[str, Any]:
    """Read a model card blob (bounded by ``max_metadata_file_bytes``) and parse its front
    matter (bounded by ``max_front_matter_bytes``)."""
    if entry.size > settings.max_metadata_file_bytes:
        raise TooLarge(
            f"{entry.path} is {entry.size} bytes, over the limit of "
            f"{settings.max_metadata_file_bytes} for a model card (LORRY_MAX_METADATA_FILE_BYTES)",
            path=entry.path,
        )
    raw = read_exact(read, entry.sha256, 0, entry.size, what=entry.path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidModelCard(
            f"{entry.path} is not UTF-8 text ({exc}); save the model card as UTF-8"
        ) from None
    return parse_model_card(text, max_bytes=settings.max_front_matter_bytes)


def _hub_base_model(base: object) -> str | None:
    """``base`` when it reads as a Hub id (``org/name``); local paths stay out of the card."""
    if isinstance(base, str) and _HUB_ID.fullmatch(base) and ".." not in base:
        return base
    return None


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def generate_model_card(repository: str, metadata: AdapterMetadata | Mapping[str, Any]) -> str:
    """A README.md for an adapter pushed without one, from its metadata."""
    data = metadata.to_dict() if isinstance(metadata, AdapterMetadata) else dict(metadata)
    base = data.get("base_model_name_or_path")
    hub_base = _hub_base_model(base)
    front: dict[str, Any] = {}
    if hub_base is not None:
        front["base_model"] = hub_base
    front["library_name"] = "peft"
    tags = ["lora", "peft"]
    if hub_base is not None:
        tags.insert(0, f"base_model:adapter:{hub_base}")
    front["tags"] = tags
    pipeline = _PIPELINE_TAGS.get(str(data.get("task_type")))
    if pipeline is not None:
        front["pipeline_tag"] = pipeline
    targets = data.get("target_modules")
    shown_targets = ", ".join(targets) if isinstance(targets, list) else str(targets)
    rank_pattern = data.get("rank_pattern") or {}
    alpha_pattern = data.get("alpha_pattern") or {}
    rows = [
        ("PEFT type", data.get("peft_type", "LORA")),
        ("Base model", base if base else "unknown"),
        ("Rank (r)", data.get("r")),
        ("lora_alpha", data.get("lora_alpha")),
        ("rsLoRA", "yes" if data.get("use_rslora") else "no"),
        ("DoRA", "yes" if data.get("use_dora") else "no"),
        ("Target modules", shown_targets),
        ("Rank pattern", ", ".join(f"{k}: {v}" for k, v in rank_pattern.items()) or "none"),
        ("Alpha pattern", ", ".join(f"{k}: {v}" for k, v in alpha_pattern.items()) or "none"),
        ("LoRA modules", len(data.get("modules") or {})),
        ("Parameters", f"{int(data.get('parameter_count') or 0):,}"),
        ("Dtypes", ", ".join(data.get("dtypes") or []) or "unknown"),
    ]
    load_base = hub_base or "<base model>"
    auto_class = _AUTO_CLASSES.get(str(data.get("task_type")), "AutoModelForCausalLM")
    lines = [
        _DELIMITER,
        yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip("\n"),
        _DELIMITER,
        "",
        f"# {repository}",
        "",
        f"A LoRA adapter published on Lorry as `{repository}`. This card was generated from the "
        "adapter's configuration because none was pushed with it.",
        "",
        "## How to load it",
        "",
        "With `HF_ENDPOINT` set to the Lorry server (a revision may be a version number, an "
        "alias or a digest):",
        "",
        "```python",
        "from peft import PeftModel",
        f"from transformers import {auto_class}",
        "",
        f'base = {auto_class}.from_pretrained("{load_base}")',
        f'model = PeftModel.from_pretrained(base, "{repository}")',
        "```",
        "",
        "## Adapter",
        "",
        "| Setting | Value |",
        "| --- | --- |",
        *(f"| {name} | {_cell(value)} |" for name, value in rows),
        "",
    ]
    return "\n".join(lines)


def load_yaml_file(text: str, path: str) -> Any:
    """A whole YAML file (an ``.eval_results/*.yaml``) under the front matter's rules: no
    anchors, aliases or merge keys, nesting at most ``MAX_DEPTH``; JSON-ready data."""
    try:
        _check_events(text)
        data = yaml.load(text, Loader=_Loader)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise InvalidModelCard(f"{path} is not valid YAML ({exc}); fix it and push again") from None
    try:
        return _jsonable(data)
    except InvalidModelCard:
        raise InvalidModelCard(f"{path} holds binary data (!!binary); use text values") from None
