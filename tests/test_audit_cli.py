"""``amnesty audit``: the exit code carries the verdict, ``--at`` audits history, and the
parallel full-verification path and the ``--at`` replay path give the same report."""

from __future__ import annotations

import json
from pathlib import Path

from tests.livelog import make_demo_log
from tests.test_cli_workflow import amnesty

BEFORE_ANY_DEADLINE = 1_800_000_000_000  # 2027-01-15: the demo's open application is not overdue
LONG_AFTER = 1_900_000_000_000  # 2030: it is


def test_audit_verdicts_history_and_both_paths_agree(tmp_path: Path) -> None:
    db = make_demo_log(tmp_path)
    honoured = amnesty("audit", db, "-q", "--json", "--time-ms", str(BEFORE_ANY_DEADLINE))
    report = json.loads(honoured.stdout)
    assert report["all_commitments_honoured"] is True
    size = report["checkpoint"]["size"]
    late = amnesty("audit", db, "-q", "--json", "--time-ms", str(LONG_AFTER), check=False)
    assert late.returncode == 1
    late_report = json.loads(late.stdout)
    assert late_report["all_commitments_honoured"] is False
    broken = [c["id"] for c in late_report["commitments"] if c["status"] == "broken"]
    assert broken == ["decision_within_promised_time"]
    replayed = amnesty(
        "audit", db, "-q", "--json", "--time-ms", str(LONG_AFTER), "--at", str(size), check=False
    )
    assert replayed.stdout == late.stdout
    early = json.loads(amnesty("audit", db, "-q", "--json", "--at", "2").stdout)
    assert early["checkpoint"]["size"] == 2
    assert early["counts"]["entries"] == 2
    assert early["counts"]["applications"] == 0  # the keyset and the offer only
    too_far = amnesty("audit", db, "-q", "--at", str(size + 1), check=False)
    assert too_far.returncode != 0 and f"has {size} entries" in too_far.stderr
