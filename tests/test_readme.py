"""The README's commands run as written: its tour against a real demo server, and its two
commands exist and are what CI runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.livelog import REPO, running

README = (REPO / "README.md").read_text(encoding="utf-8")
TOUR = README[README.index("## A tour") : README.index("## What is where")]
BLOCK = re.compile(r"```(sh|python)\n(.*?)```", re.DOTALL)
# What each block of the tour (named by its second line) must print; a pipeline whose first
# command fails prints nothing, which these catch.
PRINTED = {
    "curl -s http://127.0.0.1:8080/llms.txt | head -n 20": [
        "# Model Amnesty ledger",
        "PRECEDENT REPORT",
        "\n\u2014 demo.amnesty-ledger.example/log ",
    ],
    'amnesty verify http://127.0.0.1:8080 --vkey "$VKEY" --state trust.json': ["PRECEDENT REPORT"],
    "from ledger.client.json_api import LedgerClient": ["applied at entry", "applicant"],
    "amnesty init --db sqlite:///ledger.db --origin example.org/amnesty --key log.key": [
        "statement 0: index 0",
        "OK: example.org/amnesty size 1",
    ],
}


def test_the_two_commands_are_the_readme_s_and_ci_runs_the_test_one() -> None:
    assert "scripts/run" in README and "scripts/test" in README
    assert (REPO / "scripts" / "run").stat().st_mode & 0o111
    assert "exec scripts/test" in (REPO / ".ci" / "run").read_text()


def test_the_tour_runs_as_written(tmp_path: Path) -> None:
    demo = tmp_path / "data" / "demo"
    demo.mkdir(parents=True)
    db = f"sqlite:///{demo / 'ledger.db'}"
    subprocess.run(
        [sys.executable, "-m", "ledger", "demo", "--db", db, "--keys", str(demo)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    blocks = BLOCK.findall(TOUR)
    assert [kind for kind, _ in blocks] == ["sh", "sh", "python", "sh"]
    with running(db, tmp_path / "server.log") as server:
        for kind, written in blocks:
            code = written.replace("http://127.0.0.1:8080", server.url)
            if kind == "sh":
                # As a reader's shell runs it: ``set -e`` but no ``pipefail``, since ``curl … |
                # head`` legitimately ends with curl's write failing once head has had enough
                # (curl exit 23, a race on how much was still buffered). What each pipeline
                # must have printed is checked below instead, so a failing command still shows.
                command = ["bash", "-eu", "-c", "source .venv/bin/activate\n" + code]
            else:
                command = [str(REPO / ".venv" / "bin" / "python"), "-c", code]
            result = subprocess.run(
                command,
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert result.returncode == 0, (
                f"{kind} block failed:\n{code}\n--- stderr:\n{result.stderr}\n--- stdout:\n{result.stdout}"
            )
            for marker in PRINTED[written.splitlines()[1]]:
                assert marker in result.stdout, f"{marker!r} missing from:\n{result.stdout}"
    assert (tmp_path / "mirror" / "checkpoint").is_file()
    assert (tmp_path / "decision.tlog-proof").read_text().startswith("c2sp.org/tlog-proof@v1\n")
