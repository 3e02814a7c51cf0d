"""Command sequences of the documentation, as a user would type them.

A fenced ``bash`` block that the docs mean to be run as written is marked by an HTML
comment on the line before its fence, invisible on GitHub and in the built site::

    <!-- runnable: first-session -->
    ```bash
    lorry push ./out acme/sql-gen
    ```

``runnable_commands`` returns that block's commands in order: comment and blank lines
dropped, backslash continuations and here-documents kept with the command they belong to.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_MARKER = re.compile(r"^<!-- runnable: (?P<name>[\w-]+) -->\n```(?:bash|sh|console)\n", re.M)
_HEREDOC = re.compile(r"<<-?\s*'?\"?(?P<word>\w+)'?\"?")


def runnable_names(markdown: str) -> list[str]:
    return [match["name"] for match in _MARKER.finditer(markdown)]


def runnable_block(markdown: str, name: str) -> str:
    """The text of the fenced block marked ``runnable: name`` (exactly one must exist)."""
    matches = [match for match in _MARKER.finditer(markdown) if match["name"] == name]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} blocks are marked `runnable: {name}`, not 1")
    start = matches[0].end()
    end = markdown.index("\n```", start - 1)
    return markdown[start : end + 1]


def split_commands(block: str) -> list[str]:
    """One string per shell command of ``block``, as bash would read them."""
    commands: list[str] = []
    lines = block.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        command = [line]
        while command[-1].rstrip().endswith("\\") and index < len(lines):
            command.append(lines[index])
            index += 1
        heredoc = _HEREDOC.search(" ".join(command))
        if heredoc:
            while index < len(lines):
                command.append(lines[index])
                index += 1
                if command[-1].strip() == heredoc["word"]:
                    break
        commands.append("\n".join(command))
    return commands


def runnable_commands(path: Path, name: str) -> list[str]:
    return split_commands(runnable_block(path.read_text(), name))
