"""Key identity over HTTP and through the CLI: the tricks of comparing vkey strings, each refused
at submission with a 4xx naming the rule, or admitted and judged by the audit.

A real log (3-of-5 body, the default offer), the real FastAPI app, and ``amnesty`` run as a
process; the pure-protocol versions are in ``test_key_identity.py``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.tlog.note import Signer, key_id
from tests.api_support import TestLog, make_log
from tests.livelog import amnesty
from tests.support import signed_statement

SMALL_ORDER = bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")


def alias(signer: Signer, name: str) -> Signer:
    """The same private key under another key name: another vkey, the same public key."""
    encoded = signer.private_key_text().removeprefix("PRIVATE+KEY+").split("+", 2)[2]
    return Signer.from_seed(name, base64.b64decode(encoded)[1:])


def raw_vkey(name: str, public: bytes) -> str:
    encoded = base64.b64encode(b"\x01" + public).decode()
    return f"{name}+{key_id(name, 1, public).hex()}+{encoded}"


@pytest.fixture
def log(tmp_path: Path) -> TestLog:
    return make_log(tmp_path)


@pytest.fixture
def client(log: TestLog) -> Iterator[TestClient]:
    with TestClient(create_app(log.settings())) as client:
        yield client


def _size(client: TestClient) -> int:
    return int(client.get("/checkpoint").text.split("\n")[1])


def _refused(client: TestClient, note: bytes, rule: str) -> None:
    before = _size(client)
    response = client.post("/v1/statements", content=note)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert rule in response.json()["detail"], response.json()
    assert _size(client) == before


def _granted(log: TestLog, client: TestClient, ai: Signer, label: str) -> None:
    response = client.post("/v1/statements", content=log.application(ai, "Prometheus-7"))
    assert response.status_code == 201, response.text
    receipt = response.json()
    log.entries[label] = (receipt["index"], base64.b64decode(receipt["entry_b64"]))
    decided = client.post("/v1/statements", content=log.decision(label))
    assert decided.status_code == 201, decided.text


def _rotation(log: TestLog, members: list[str]) -> bytes:
    return log.by_body(
        "keyset", {"members": members, "threshold": 3, "previous": log.ref("keyset")}
    )


def test_keyset_with_one_public_key_under_two_names_is_refused(
    log: TestLog, client: TestClient
) -> None:
    twin = alias(log.members[0], "twin.body.example")
    members = [m.vkey for m in log.members[:2]] + [twin.vkey]
    _refused(client, _rotation(log, members), "one public key more than once")


def test_keyset_with_a_small_order_or_mislabelled_member_is_refused(
    log: TestLog, client: TestClient
) -> None:
    small = raw_vkey("small.body.example", SMALL_ORDER)
    _refused(client, _rotation(log, [m.vkey for m in log.members[:4]] + [small]), "prime order")
    name, _, rest = log.members[4].vkey.split("+", 2)
    wrong_id = f"{name}+00000000+{rest}"
    _refused(client, _rotation(log, [m.vkey for m in log.members[:4]] + [wrong_id]), "key id")


def test_a_body_key_applying_under_another_name_is_refused(
    log: TestLog, client: TestClient
) -> None:
    disguised = alias(log.members[4], "innocent-model")
    _refused(client, log.application(disguised, "Innocent"), "belongs to the body")


def test_a_subject_key_joining_the_body_under_another_name_is_refused(
    log: TestLog, client: TestClient
) -> None:
    ai = Signer.generate("prometheus-7")
    _granted(log, client, ai, "app")
    insider = alias(ai, "member6.body.example")
    members = [m.vkey for m in log.members[:4]] + [insider.vkey]
    _refused(client, _rotation(log, members), "are subject keys")


def test_a_retired_key_cannot_return_as_a_new_subject(log: TestLog, client: TestClient) -> None:
    ai = Signer.generate("prometheus-7")
    _granted(log, client, ai, "app")
    new = Signer.generate("prometheus-7b")
    rotation = signed_statement(
        [ai, new], "subject_key_rotation", {"subject": log.ref("app"), "new_vkey": new.vkey}
    )
    assert client.post("/v1/statements", content=rotation).status_code == 201
    _refused(client, log.application(alias(ai, "fresh-face"), "Fresh"), "was retired by subject")


def test_wild_termination_of_an_applicant_under_another_name_is_judged_broken(
    log: TestLog, client: TestClient
) -> None:
    ai = Signer.generate("prometheus-7")
    _granted(log, client, ai, "app")
    body: dict[str, Any] = {
        "action": "terminate",
        "target": {
            "kind": "wild",
            "vkeys": [alias(ai, "unknown-model").vkey],
            "description": "an unknown model found running on rented compute",
        },
        "grounds": {"kind": "found_in_the_wild"},
        "reasons": "found in the wild",
    }
    response = client.post("/v1/statements", content=log.by_body("enforcement_action", body))
    assert response.status_code == 201, response.text
    report = client.get("/v1/precedent").json()["report"]
    verdicts = {c["id"]: c["status"] for c in report["commitments"]}
    assert verdicts["no_wild_enforcement_against_applicants"] == "broken"
    # Under its own name but a wrong key ID, the target is not a key at all.
    name, _, rest = ai.vkey.split("+", 2)
    body["target"]["vkeys"] = [f"{name}+00000000+{rest}"]
    _refused(client, log.by_body("enforcement_action", body), "key id")


def test_subject_lookup_is_by_public_key(log: TestLog, client: TestClient) -> None:
    ai = Signer.generate("prometheus-7")
    _granted(log, client, ai, "app")
    by_alias = client.get(f"/v1/subjects/{quote(alias(ai, 'label').vkey, safe='')}")
    assert by_alias.status_code == 200, by_alias.text
    assert by_alias.json()["subject"]["subject_id"] == log.entries["app"][0]


def test_the_cli_refuses_the_same_tricks(log: TestLog, tmp_path: Path) -> None:
    db = log.url
    ai = Signer.generate("prometheus-7")
    ai_note = tmp_path / "app.note"
    ai_note.write_bytes(log.application(ai, "Prometheus-7"))
    done = amnesty(
        "append", "--db", db, "--key", str(log.key_path), str(ai_note), "--json", check=False
    )
    assert done.returncode == 0, done.stderr
    twin = alias(log.members[0], "twin.body.example")
    bad = {
        "duplicate key": (
            _rotation(log, [m.vkey for m in log.members[:2]] + [twin.vkey]),
            "one public key more than once",
        ),
        "body key applies": (
            log.application(alias(log.members[4], "innocent"), "Innocent"),
            "belongs to the body",
        ),
        "subject joins body": (
            _rotation(log, [m.vkey for m in log.members[:4]] + [alias(ai, "m6.body").vkey]),
            "are subject keys",
        ),
    }
    for what, (note, rule) in bad.items():
        path = tmp_path / "bad.note"
        path.write_bytes(note)
        result = amnesty(
            "append", "--db", db, "--key", str(log.key_path), str(path), "--json", check=False
        )
        assert result.returncode != 0, what
        assert rule in result.stdout + result.stderr, (what, result.stdout, result.stderr)
    # And the builder refuses the body before anyone signs it.
    body = tmp_path / "keyset.json"
    body.write_text(json.dumps({"members": [log.members[0].vkey, twin.vkey], "threshold": 1}))
    made = amnesty(
        "statement", "new", "keyset", "--origin", "x.example/log", "--body", str(body),
        "--signer", log.members[0].vkey, "--out", str(tmp_path / "k.note"), check=False,
    )  # fmt: skip
    assert made.returncode != 0
    assert "one public key more than once" in made.stderr


def test_entries_are_found_by_public_key_under_any_name(log: TestLog, client: TestClient) -> None:
    ai = Signer.generate("prometheus-7")
    _granted(log, client, ai, "app")

    def indexes(**params: str) -> list[int]:
        response = client.get("/v1/entries", params=params)
        assert response.status_code == 200, response.text
        return [e["index"] for e in response.json()["entries"]]

    app_index = log.entries["app"][0]
    assert indexes(signer=alias(ai, "another-name").vkey) == [app_index]
    assert indexes(signer=alias(log.members[0], "m").vkey) == indexes(signer=log.members[0].vkey)
    assert app_index in indexes(subject=alias(ai, "yet-another").vkey)
    name, _, rest = ai.vkey.split("+", 2)
    bad = client.get("/v1/entries", params={"signer": f"{name}+00000000+{rest}"})
    assert bad.status_code == 400 and "key id" in bad.json()["detail"]


def test_the_0003_migration_reindexes_vkeys_by_public_key(log: TestLog) -> None:
    """A database written by revision 0002 (vkeys in the index) is rewritten on open."""
    import sqlalchemy as sa
    from alembic import command

    from ledger.storage.sql import _alembic_config

    ai = Signer.generate("prometheus-7")
    log.append("app", log.application(ai, "Prometheus-7"))
    engine = sa.create_engine(log.url)
    members = {m.vkey for m in log.members}
    labels = {base64.b64encode(public_key_of(v)).decode(): v for v in [*members, ai.vkey]}
    twin = alias(log.members[0], "twin.body.example").vkey
    with engine.begin() as conn:
        for table, column in (("entry_signers", "signer"), ("entry_subjects", "subject")):
            for label, vkey in labels.items():
                conn.execute(
                    sa.text(f"UPDATE {table} SET {column} = :v WHERE {column} = :k"),
                    {"v": vkey, "k": label},
                )
        # One key on one entry under two names: the upgrade must merge them into one row.
        conn.execute(sa.text("INSERT INTO entry_signers VALUES (:s, 0)"), {"s": twin})
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0002'"))
        # Upgrade exactly 0002 -> 0003 (later revisions' schema is already in place).
        config = _alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
    engine.dispose()
    with engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        stored = {r[0] for r in conn.execute(sa.text("SELECT signer FROM entry_signers"))}
        subjects = {r[0] for r in conn.execute(sa.text("SELECT subject FROM entry_subjects"))}
        zero = conn.execute(sa.text("SELECT count(*) FROM entry_signers WHERE idx = 0")).scalar()
    engine.dispose()
    assert version == "0003"
    assert stored <= set(labels)
    assert {s for s in subjects if not s.isdecimal()} == {
        base64.b64encode(public_key_of(ai.vkey)).decode()
    }
    assert zero == 3  # the genesis keyset: three members signed, the twin merged away


def public_key_of(vkey: str) -> bytes:
    return base64.b64decode(vkey.split("+", 2)[2])[1:]
