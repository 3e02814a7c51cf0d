"""Results that a pushed version carries itself: its card's ``model-index`` and Hub-style
``.eval_results/*.yaml`` files, read before the publish transaction and recorded in it.

A structurally malformed ``model-index`` or ``.eval_results`` file refuses the push (422,
naming the field), as a malformed card does; a ``model-index`` value that is not a number
(the Hub allows ``"20.0 ± 1.2"``) is skipped, as it cannot be compared or gated on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from registry.config import Settings
from registry.errors import InvalidEvalResults, TooLarge
from registry.services.audit import Caller
from registry.services.evals import record_results
from registry.tables import Repository, Version
from registry.validation import MODEL_CARD, BlobReader, ManifestEntry
from registry.validation.eval_results import (
    EVAL_RESULTS,
    MODEL_INDEX,
    ParsedDocument,
    parse_eval_results,
    parse_model_index,
)
from registry.validation.model_card import load_yaml_file

EVAL_RESULTS_DIR = ".eval_results/"


@dataclass(frozen=True)
class CardEvidence:
    source: str
    path: str
    document: Any
    parsed: ParsedDocument


def _is_eval_results_file(path: str) -> bool:
    return path.startswith(EVAL_RESULTS_DIR) and path.endswith((".yaml", ".yml"))


def _read_text(entry: ManifestEntry, read: BlobReader, settings: Settings) -> str:
    if entry.size > settings.max_metadata_file_bytes:
        raise TooLarge(
            f"{entry.path} has {entry.size} bytes, more than LORRY_MAX_METADATA_FILE_BYTES "
            f"({settings.max_metadata_file_bytes}); split it into several files",
            path=entry.path,
        )
    try:
        return read(entry.sha256, 0, entry.size).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidEvalResults(
            f"{entry.path} is not UTF-8 text; save it as UTF-8 YAML", field=entry.path
        ) from None


def read_card_evidence(
    card: dict[str, Any],
    entries: Sequence[ManifestEntry],
    read: BlobReader,
    settings: Settings,
) -> list[CardEvidence]:
    found: list[CardEvidence] = []
    from_card = parse_model_index(card)
    if from_card.results:
        document = {"model-index": card["model-index"]}
        found.append(CardEvidence(MODEL_INDEX, MODEL_CARD, document, from_card))
    for entry in entries:
        if _is_eval_results_file(entry.path):
            data = load_yaml_file(_read_text(entry, read, settings), entry.path)
            parsed = parse_eval_results(data, entry.path)
            found.append(CardEvidence(EVAL_RESULTS, entry.path, data, parsed))
    return found


def record_card_evidence(
    session: Session,
    caller: Caller,
    repository: Repository,
    version: Version,
    evidence: Sequence[CardEvidence],
) -> None:
    """Inside the publish transaction, before its alias moves (a gate may rely on them)."""
    for item in evidence:
        record_results(
            session,
            caller,
            repository,
            version,
            item.document,
            source=item.source,
            path=item.path,
            parsed=item.parsed,
        )
