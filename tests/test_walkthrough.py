"""docs/WALKTHROUGH.md runs: every ``$ command`` of its ``console`` blocks is run in order, in
one fresh folder, with ``amnesty`` on the PATH, and must exit 0 and print the output the doc
shows under it — line for line, after the values that differ from run to run are replaced by
placeholders in both (keys, hashes, statement ids, times, time left)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "WALKTHROUGH.md"

_VARYING: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"([A-Za-z0-9._-]+)\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*"), r"\1+KEYID+KEY"),
    (re.compile(r"[A-Za-z0-9+/]{43}="), "HASH"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "ID"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"), "TIME"),
    (re.compile(r"\b\d{13}\b"), "MS"),
    (re.compile(r"\((?:\d+ d ?)?(?:\d+ h ?)?(?:\d+ min)? left\)"), "(SPAN left)"),
)


def normalized(text: str) -> list[str]:
    """``text``'s lines with every value that varies between runs replaced by a placeholder."""
    lines = []
    for line in text.splitlines():
        plain = line
        for pattern, placeholder in _VARYING:
            plain = pattern.sub(placeholder, plain)
        lines.append(plain.rstrip())
    return lines


def steps(doc: str) -> list[tuple[str, str]]:
    """Each ``$ command`` of the doc's console blocks, with the output shown under it."""
    out: list[tuple[str, str]] = []
    for block in re.findall(r"```console\n(.*?)```", doc, re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                out.append((line[2:], ""))
            else:
                assert out, f"output before any command in a console block: {line!r}"
                command, shown = out[-1]
                out[-1] = (command, shown + line + "\n")
    return out


def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    commands = steps(DOC.read_text(encoding="utf-8"))
    assert len(commands) > 30
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "COLUMNS": "200",
        "PYTHONIOENCODING": "utf-8",
    }
    for command, shown in commands:
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command + " 2>&1"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            encoding="utf-8",
            timeout=120,
            check=False,
        )
        # `head` closing the pipe early is fine; any other failure is not.
        assert result.returncode in (0, 141), (command, result.stdout)
        assert normalized(result.stdout) == normalized(shown), command
