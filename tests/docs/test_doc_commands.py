"""Every ``lorry`` command the README and the docs show exists, with the options shown.

Commands are read from fenced shell blocks (``bash``, ``console``, ``sh``) and from inline
code spans; each is resolved through the CLI's own command tree, and every ``--option`` it
uses must be one that command (or its group) declares. Placeholders such as ``[--wait]``
and ``set / rm`` are read as the options and commands they name.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

from cli.main import app
from tests.docs.sessions import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]

_FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```", re.M | re.S)
_INLINE = re.compile(r"`(lorry [^`]+)`")
_COMMAND = re.compile(r"(?:^|&&|\$ |\|\|)\s*(lorry\s[^\n]*)")


def _lines_of_blocks(text: str) -> list[str]:
    commands: list[str] = []
    for fence in _FENCE.finditer(text):
        if fence["lang"] not in {"bash", "sh", "console", "shell"}:
            continue
        body = fence["body"].replace("\\\n", " ")
        for line in body.splitlines():
            commands.extend(match[1] for match in _COMMAND.finditer(line.strip()))
    return commands


def documented_commands(page: Path) -> list[str]:
    text = page.read_text()
    outside_fences = _FENCE.sub("", text)
    inline = [span for span in _INLINE.findall(outside_fences)]
    return _lines_of_blocks(text) + inline


def _tokens(command: str) -> list[str]:
    command = command.split("&&")[0]
    try:
        tokens = shlex.split(command, comments=True)
    except ValueError:  # an unbalanced quote in prose: read the words as they stand
        tokens = command.split()
    return [token.strip("[]") for token in tokens[1:] if token not in {"/", "|", "..."}]


def _is_group(command: Any) -> bool:
    return hasattr(command, "commands")


def _subcommand(group: Any, name: str) -> Any:
    return group.get_command(group.context_class(group), name)


def _root() -> Any:
    root = typer.main.get_command(app)
    assert _is_group(root)
    return root


def check(command: str, root: Any) -> list[str]:
    """What is wrong with ``command`` (empty if nothing)."""
    tokens = _tokens(command)
    current = root
    chain = [root]
    path = ["lorry"]
    index = 0
    while _is_group(current) and index < len(tokens):
        token = tokens[index]
        if token.startswith("-") or token.isupper():  # an option, or a placeholder: COMMAND
            break
        sub = _subcommand(current, token)
        if sub is None:
            if current is root:
                return [f"`{command}`: lorry has no command {token!r}"]
            break
        current = sub
        chain.append(sub)
        path.append(token)
        index += 1
        # "alias set / rm / ls": further names of sibling commands, one of them checked
        while index < len(tokens):
            sibling = _subcommand(chain[-2], tokens[index])
            if sibling is None or sibling is current:
                break
            index += 1
    options = {opt for cmd in chain for param in cmd.params for opt in param.opts}
    options |= {opt for cmd in chain for param in cmd.params for opt in param.secondary_opts}
    options.add("--help")
    problems = []
    for token in tokens[index:]:
        if token.startswith("-") and not re.fullmatch(r"-\d.*", token):
            name = token.split("=", 1)[0]
            if name not in options:
                problems.append(f"`{command}`: `{' '.join(path)}` has no option {name}")
    return problems


def test_pages_show_commands() -> None:
    """The check below reads something: the README's session alone has a dozen."""
    assert len(documented_commands(REPO / "README.md")) >= 10
    assert sum(len(documented_commands(page)) for page in PAGES) >= 100


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_documented_lorry_commands_exist(page: Path) -> None:
    root = _root()
    problems = [
        problem for command in documented_commands(page) for problem in check(command, root)
    ]
    assert not problems, "\n".join(problems)


def test_check_names_unknown_commands_and_options() -> None:
    root = _root()
    assert check("lorry alias set acme/x production 2 --reason why", root) == []
    assert check("lorry audit --repo acme/x --since 7d", root) == []
    assert check("lorry job cancel 3f6c", root) == []
    assert check("lorry aliases set acme/x p 2", root) == [
        "`lorry aliases set acme/x p 2`: lorry has no command 'aliases'"
    ]
    assert check("lorry push ./out acme/x --tag v1", root) == [
        "`lorry push ./out acme/x --tag v1`: `lorry push` has no option --tag"
    ]
