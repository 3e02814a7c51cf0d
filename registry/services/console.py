"""What the web console reads that the rest of the API does not answer: the caller, a model
card rendered to safe HTML, and the values the audit filters offer."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from functools import cache
from typing import Any

from markdown_it import MarkdownIt
from sqlmodel import Session, col, select

from registry.config import Settings
from registry.errors import InvalidModelCard, TooLarge
from registry.schemas.console import AuditFacets, RenderedCard, WhoAmI
from registry.services.audit import AuditKind, kind_condition
from registry.services.names import repository_id
from registry.services.principals import SCOPES, Principal
from registry.services.refs import resolve_ref
from registry.services.repositories import find_repository
from registry.services.tokens import tokens_exist
from registry.services.visibility import Visibility
from registry.storage.base import BlobStore
from registry.tables import AuditEvent, VersionFile
from registry.validation import MODEL_CARD

MAX_FACETS = 500
"""Distinct values per audit filter; a log with more actors than this is searched by typing."""

_DELIMITER_LINE = re.compile(r"^---[^\S\n]*$", re.MULTILINE)
"""A line that is ``---`` followed by nothing but spaces (``\r`` included)."""
MAX_RENDERED_CHARS = 1_000_000
"""Characters of a card body that the console renders; the rest is left out with a note
saying to download the card (a body up to LORRY_MAX_METADATA_FILE_BYTES, 16 MiB, is
accepted, and rendering one that size takes seconds of server CPU)."""
RENDERED_CACHE_CHARS = 16_000_000
"""Rendered cards one process keeps, by the card's sha256 (its content never changes), in
characters of HTML."""


def who_am_i(session: Session, principal: Principal, settings: Settings) -> WhoAmI:
    """The caller and what it may read; ``mode`` says whether the console should ask for a
    token (closed) or not (open: no token was ever created)."""
    return WhoAmI(
        mode="closed" if tokens_exist(session) else "open",
        principal=principal.name,
        token_id=principal.token_id,
        scopes=[scope for scope in SCOPES if scope in principal.scopes],
        namespaces=list(principal.namespaces),
        anonymous_read=settings.anonymous_read,
    )


@cache
def _markdown() -> MarkdownIt:
    """CommonMark plus GFM tables and strikethrough; raw HTML is shown as text, never passed
    through, and markdown-it refuses ``javascript:``/``vbscript:``/``file:``/``data:`` links."""
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
        ["table", "strikethrough"]
    )


def card_body(text: str) -> str:
    """The Markdown after the YAML front matter (the block ``parse_model_card`` reads)."""
    text = text.removeprefix("\ufeff")
    opening = _DELIMITER_LINE.match(text)
    if opening is None:
        return text
    closing = _DELIMITER_LINE.search(text, opening.end() + 1)
    if closing is None or opening.end() >= len(text):
        return ""
    return text[closing.end() + 1 :]


def bounded_body(body: str) -> str:
    """``body`` up to ``MAX_RENDERED_CHARS`` (cut at a line end), with a note when cut."""
    if len(body) <= MAX_RENDERED_CHARS:
        return body
    cut = body.rfind("\n", 0, MAX_RENDERED_CHARS)
    shown = body[: cut if cut > 0 else MAX_RENDERED_CHARS]
    return (
        f"{shown}\n\n---\n\n*The console shows the first {len(shown):,} characters of this "
        f"card ({len(body):,} in all): download {MODEL_CARD} to read the rest.*\n"
    )


class _RenderedCards:
    """Rendered card bodies by the card's sha256, least recently used out first."""

    def __init__(self, capacity_chars: int) -> None:
        self.capacity_chars = capacity_chars
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def get(self, sha256: str) -> str | None:
        with self._lock:
            html = self._entries.get(sha256)
            if html is not None:
                self._entries.move_to_end(sha256)
            return html

    def put(self, sha256: str, html: str) -> None:
        with self._lock:
            if sha256 in self._entries or len(html) > self.capacity_chars:
                return
            self._entries[sha256] = html
            self._chars += len(html)
            while self._chars > self.capacity_chars:
                _, dropped = self._entries.popitem(last=False)
                self._chars -= len(dropped)


_RENDERED = _RenderedCards(RENDERED_CACHE_CHARS)


def render_markdown(body: str) -> str:
    html: str = _markdown().render(body)  # markdown-it types its renderers' output as Any
    return html


def rendered_card(
    session: Session,
    store: BlobStore,
    settings: Settings,
    namespace: str,
    name: str,
    ref: str,
) -> RenderedCard:
    """The model card of a version: its parsed front matter and its body as safe HTML."""
    repository = find_repository(session, namespace, name)
    version = resolve_ref(session, repository, ref)
    repo_id = repository_id(namespace, name)
    entry = session.get(VersionFile, (version.id, MODEL_CARD))
    if entry is None:
        return RenderedCard(
            repository=repo_id, version=version.number, path=None, front_matter={}, html=""
        )
    if entry.size > settings.max_metadata_file_bytes:
        raise TooLarge(
            f"the model card of {repo_id}@{version.number} has {entry.size} bytes, more than "
            f"LORRY_MAX_METADATA_FILE_BYTES ({settings.max_metadata_file_bytes}); download "
            f"{MODEL_CARD} instead"
        )
    html = _RENDERED.get(entry.sha256)
    if html is None:
        data = store.read_bytes(entry.sha256, 0, entry.size)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidModelCard(
                f"{MODEL_CARD} of {repo_id}@{version.number} is not UTF-8 text ({exc}); "
                "download it to read it"
            ) from None
        html = render_markdown(bounded_body(card_body(text)))
        _RENDERED.put(entry.sha256, html)
    return RenderedCard(
        repository=repo_id,
        version=version.number,
        path=MODEL_CARD,
        front_matter=version.card,
        html=html,
    )


def audit_facets(session: Session, visible: Visibility, kind: AuditKind = "all") -> AuditFacets:
    """Distinct actions and actors among the audit events of ``kind`` the caller may read."""
    conditions = [visible.where(col(AuditEvent.repository), repository=True)]
    if kind != "all":
        conditions.append(kind_condition(kind))

    def values(column: Any) -> list[str]:
        query = select(column).where(*conditions).distinct().order_by(column).limit(MAX_FACETS)
        return [str(value) for value in session.exec(query).all()]

    return AuditFacets(actions=values(col(AuditEvent.action)), actors=values(col(AuditEvent.actor)))
