"""Command sequences of the documentation, as a user would type them, and a runner.

A fenced block that the docs mean to be run as written is marked by an HTML comment on
the line before its fence, invisible on GitHub and in the built site::

    <!-- runnable: first-session -->
    ```bash
    lorry push ./out acme/sql-gen
    ```

A ``bash`` block runs command by command: comment and blank lines dropped, backslash
continuations and here-documents kept with the command they belong to. A ``python``
block runs whole, as a script, in the same working directory.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_MARKER = re.compile(
    r"^<!-- runnable: (?P<name>[\w-]+) -->\n```(?P<lang>bash|python)\n(?P<body>.*?)^```",
    re.M | re.S,
)
_HEREDOC = re.compile(r"<<-?\s*['\"]?(?P<word>\w+)['\"]?")


@dataclass(frozen=True)
class Step:
    """One thing to run: a shell command, or a whole Python script."""

    text: str
    python: bool = False


def runnable_names(markdown: str) -> list[str]:
    return [match["name"] for match in _MARKER.finditer(markdown)]


def _block(markdown: str, name: str) -> re.Match[str]:
    matches = [match for match in _MARKER.finditer(markdown) if match["name"] == name]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} blocks are marked `runnable: {name}`, not 1")
    return matches[0]


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


def runnable_steps(path: Path, name: str) -> list[Step]:
    block = _block(path.read_text(), name)
    if block["lang"] == "python":
        return [Step(block["body"], python=True)]
    return [Step(command) for command in split_commands(block["body"])]


def runnable_commands(path: Path, name: str) -> list[str]:
    return [step.text for step in runnable_steps(path, name)]


def session_env(url: str | None, home: Path) -> dict[str, str]:
    """The user's shell: the project's environment activated, ``LORRY_URL`` set when a
    registry runs, no other ``LORRY_`` setting."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LORRY_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if url is not None:
        env["LORRY_URL"] = url
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    env["COLUMNS"] = "200"
    return env


def clone_dir(tmp_path: Path) -> Path:
    """An empty working directory standing for a clone: the docs' scripts are where the
    pages say (``docs/examples/...``), and nothing a session writes lands in the repo."""
    workdir = tmp_path / "clone"
    workdir.mkdir()
    (workdir / "docs").symlink_to(REPO / "docs", target_is_directory=True)
    return workdir


def expectations_for(steps: list[Step], expected: dict[str, list[str]]) -> list[list[str]]:
    """For each step, the texts it must print: ``expected`` is keyed by the start of a
    command (the longest matching key counts; a Python step's key is ``"python:"``). Every
    step needs a key, and every key a step, so that a changed page changes its test too."""
    matched: list[list[str]] = []
    used: set[str] = set()
    for step in steps:
        text = "python:" if step.python else step.text + " "
        keys = sorted((key for key in expected if text.startswith(key)), key=len)
        assert keys, f"no expectation names the step {step.text!r}"
        matched.append(expected[keys[-1]])
        used.add(keys[-1])
    unused = sorted(set(expected) - used)
    assert not unused, f"the expectations name steps the page no longer has: {unused}"
    return matched


def run_session(
    steps: list[Step], expected: dict[str, list[str]], workdir: Path, env: dict[str, str]
) -> list[str]:
    """Run each step in order; each must exit 0 and print what ``expected`` says. Returns
    what each step printed."""
    outputs: list[str] = []
    for step, texts in zip(steps, expectations_for(steps, expected), strict=True):
        if step.python:
            script = workdir / "snippet.py"
            script.write_text(step.text)
            argv = [sys.executable, str(script)]
        else:
            argv = ["bash", "-c", step.text]
        done = subprocess.run(
            argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=300
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"`{step.text}` exited {done.returncode}:\n{output}"
        for text in texts:
            assert text in output, f"`{step.text}` did not print {text!r}:\n{output}"
        outputs.append(output)
    return outputs
