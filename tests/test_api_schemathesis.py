"""Property-based API testing with schemathesis against the live server's OpenAPI schema: over
at least 1,000 generated requests (valid and invalid: positive and negative generation for
every operation), no 5xx, and every response conforms to the schema (status code documented,
content type documented, body valid)."""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ledger.tlog.note import Signer
from tests.api_support import live_server, make_log

MIN_REQUESTS = 1000
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def exercise(
    operation: APIOperation, mode: GenerationMode, base: str, examples: int
) -> tuple[int, list[str]]:
    """Send up to ``examples`` generated requests to ``operation``; return how many were sent
    and the failures of the checks (all of them, not just the first)."""
    strategy = operation.as_strategy(generation_mode=mode)
    sent = 0
    failures: list[str] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        nonlocal sent
        case = data.draw(strategy)
        response = case.call(base_url=base)
        sent += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as exc:
            failures.append(f"{operation.label} ({mode.value}): {exc}")

    try:
        run()
    except Unsatisfiable:
        # No way to make a request invalid: the operation takes no input at all.
        assert mode is GenerationMode.NEGATIVE, operation.label
    return sent, failures


def test_no_5xx_and_no_schema_violation_over_a_thousand_requests(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    for n in range(3):
        ai = Signer.generate(f"ai{n}.example")
        log.append(f"app{n}", log.application(ai, f"AI {n}"))
    log.append("grant", log.decision("app0"))
    with live_server(log.settings()) as base:
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 15
        per_operation = MIN_REQUESTS // len(operations) + 10
        sent = 0
        failures: list[str] = []
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                count, found = exercise(operation, mode, base, per_operation)
                sent += count
                failures += found
        distinct = sorted(set(failures))
        assert not distinct, f"{len(distinct)} distinct failures:\n" + "\n\n".join(distinct[:5])
        print(f"schemathesis: {sent} requests over {len(operations)} operations")
        assert sent >= MIN_REQUESTS, sent
