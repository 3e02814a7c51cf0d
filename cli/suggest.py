""" "did you mean …?" for a mistyped repository or alias.

The registry answers ``repository_not_found`` or ``alias_not_found``; the CLI then asks
it for the names the caller may read (the repository listing, the repository's aliases:
both respect the token's namespaces) and offers the close ones.
"""

from __future__ import annotations

import difflib
import re
from urllib.parse import unquote

from cli.client import API_PREFIX, LorryClient, LorryClientError

__all__ = ["did_you_mean"]

_REPO_PATH = re.compile(
    rf"^{re.escape(API_PREFIX)}/repos/(?P<ns>[^/]+)/(?P<name>[^/]+)"
    r"(?:/(?:versions|aliases)/(?P<ref>[^/]+))?"
)
_LISTED = 1000
"""Repositories compared with a mistyped name: the first page the listing gives."""


def _close(word: str, names: list[str]) -> list[str]:
    return difflib.get_close_matches(word, names, n=3, cutoff=0.6)


def did_you_mean(client: LorryClient, error: LorryClientError) -> str | None:
    """``did you mean X?`` for ``error``, an answer to ``client``'s latest request; ``None``
    when nothing is close (or the registry cannot be asked)."""
    match = _REPO_PATH.match(client.last_path)
    if match is None:
        return None
    repository = f"{unquote(match['ns'])}/{unquote(match['name'])}"
    try:
        if error.code == "repository_not_found":
            page = client.list_repos(limit=_LISTED)
            close = _close(repository, [str(item["id"]) for item in page["items"]])
        elif error.code == "alias_not_found" and match["ref"] is not None:
            aliases = client.list_aliases(repository)["items"]
            ref = unquote(match["ref"])
            close = [
                f"{repository}@{name}"
                for name in _close(ref, [str(item["name"]) for item in aliases])
            ]
        else:
            return None
    except LorryClientError:
        return None
    return f"did you mean {' or '.join(close)}?" if close else None
