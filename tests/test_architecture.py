"""The dependency direction is a check, not a hope: the core imports no web framework, ORM or
HTTP client, and api/ is the only place FastAPI appears."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

FORBIDDEN_IN_CORE = {
    "fastapi",
    "starlette",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "httpx",
    "requests",
    "urllib3",
    "aiohttp",
    "uvicorn",
    "typer",
    "rich",
    "mcp",
    "api",
}
ADAPTERS = {
    "ledger/cli/common.py",
    "ledger/cli/demo.py",
    "ledger/cli/statements.py",
    "ledger/cli/service.py",
    "ledger/cli/verifier.py",
    "ledger/client/json_api.py",
    "ledger/client/mcp_server.py",
    "ledger/cli/witness.py",
    "ledger/witness/client.py",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def core_files() -> list[Path]:
    files = []
    for path in sorted((REPO / "ledger").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel in ADAPTERS or rel.startswith("ledger/storage/"):
            continue
        files.append(path)
    return files


def test_core_imports_no_web_framework_orm_or_http_client() -> None:
    offenders = {
        path.relative_to(REPO).as_posix(): sorted(_imports(path) & FORBIDDEN_IN_CORE)
        for path in core_files()
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}, f"core modules import adapters: {offenders}"


def test_core_list_is_not_empty() -> None:
    names = {p.relative_to(REPO).as_posix() for p in core_files()}
    for required in (
        "ledger/tlog/merkle.py",
        "ledger/tlog/note.py",
        "ledger/tlog/tiles.py",
        "ledger/verifier/verify.py",
    ):
        assert required in names


def test_storage_adapter_imports_no_web_framework() -> None:
    for path in sorted((REPO / "ledger" / "storage").rglob("*.py")):
        assert not (_imports(path) & {"fastapi", "starlette", "httpx", "typer", "api"}), path


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import sqlalchemy\nfrom fastapi import FastAPI\n", encoding="utf-8")
    assert _imports(bad) & FORBIDDEN_IN_CORE == {"sqlalchemy", "fastapi"}
