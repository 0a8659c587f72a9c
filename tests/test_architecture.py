"""The dependency direction is a check, not a hope.

Each package of ``ledger/`` is a layer, and :data:`MAY_IMPORT` says which other packages of the
project it may import; :data:`MAY_USE` says which frameworks, ORMs and HTTP clients it may use
(the pure core uses none). Every import counts, including those inside functions (the CLI
imports its adapters lazily). ``docs/ARCHITECTURE.md``'s package map is parsed and must say
exactly the same, and must list exactly the packages and top-level modules that ``ledger/`` has,
so the doc, the rule and the tree cannot drift apart.

Read bottom-up: ``errors`` → ``tlog`` → ``protocol`` → ``statements``, ``storage`` → ``server``
→ ``verifier`` → ``client`` → ``witness`` → ``api`` → ``cli``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARCHITECTURE_DOC = REPO / "docs" / "ARCHITECTURE.md"

PROJECT_ROOTS = ("ledger", "api", "schemas")

_PURE = {"ledger.errors", "ledger.atomic", "ledger.tlog", "ledger.protocol", "ledger.statements"}
_BELOW_API = _PURE | {
    "ledger.storage",
    "ledger.server",
    "ledger.verifier",
    "ledger.client",
    "ledger.witness",
    "schemas",
}
MAY_IMPORT: dict[str, set[str]] = {
    "ledger.errors": set(),
    "ledger.atomic": {"ledger.errors"},
    "ledger.tlog": {"ledger.errors"},
    "ledger.protocol": {"ledger.errors", "ledger.tlog"},
    "ledger.statements": {"ledger.errors", "ledger.tlog", "ledger.protocol"},
    "ledger.storage": {"ledger.errors", "ledger.tlog"},
    "ledger.server": _PURE | {"ledger.storage"},
    "ledger.verifier": set(_PURE),
    "ledger.client": _PURE - {"ledger.atomic"} | {"ledger.verifier"},
    "ledger.witness": {
        "ledger.errors",
        "ledger.atomic",
        "ledger.tlog",
        "ledger.server",
        "ledger.verifier",
        "ledger.client",
    },
    "schemas": {"ledger.errors", "ledger.tlog", "ledger.protocol", "ledger.statements"},
    "api": set(_BELOW_API),
    "ledger.cli": _BELOW_API | {"api"},
    "ledger.__main__": {"ledger.cli"},
}
"""Per package (or top-level module), the project packages it may import besides itself."""

FRAMEWORKS = {
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "httpx",
    "requests",
    "urllib3",
    "aiohttp",
    "typer",
    "rich",
    "mcp",
    "prometheus_client",
}
"""Web frameworks, servers, ORMs, HTTP clients and CLI toolkits: adapters only."""

MAY_USE: dict[str, set[str]] = {
    "ledger.storage": {"sqlalchemy", "alembic", "psycopg"},
    "ledger.client": {"httpx", "mcp"},
    "ledger.witness": {"httpx"},
    "api": {"fastapi", "starlette", "uvicorn", "prometheus_client"},
    "ledger.cli": {"typer", "rich", "uvicorn", "httpx"},
}
"""Per adapter package, the frameworks it may use; every other package may use none."""


@dataclass(frozen=True, slots=True)
class Import:
    """One import statement of a project file: who imports what, where."""

    file: str
    line: int
    module: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} imports {self.module}"


def module_name(path: Path) -> str:
    """``ledger/tlog/note.py`` → ``ledger.tlog.note``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    """The package (or top-level module) of ``ledger`` that a module belongs to; ``api`` and
    ``schemas`` are one layer each."""
    parts = module.split(".")
    if parts[0] == "ledger":
        return ".".join(parts[:2]) if len(parts) > 1 else "ledger"
    return parts[0]


def imports_of(path: Path) -> list[Import]:
    """Every import in ``path`` (module level or inside functions), relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = path.relative_to(REPO).as_posix()
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    )
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(Import(rel, node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # Each imported name may be a module (``from ledger import cli``): count it as one.
            found.extend(Import(rel, node.lineno, f"{target}.{a.name}") for a in node.names)
    return found


def project_files() -> list[Path]:
    return sorted(p for root in PROJECT_ROOTS for p in (REPO / root).rglob("*.py"))


def violations() -> list[str]:
    """Every import that breaks :data:`MAY_IMPORT` or :data:`MAY_USE`, as a readable line."""
    bad: list[str] = []
    for path in project_files():
        layer = layer_of(module_name(path))
        allowed = set() if layer == "ledger" else MAY_IMPORT.get(layer)
        if allowed is None:
            bad.append(f"{path.relative_to(REPO)}: layer {layer} has no rule in MAY_IMPORT")
            continue
        for imp in imports_of(path):
            top = imp.module.split(".")[0]
            if top in PROJECT_ROOTS:
                target = layer_of(imp.module)
                if target not in (layer, "ledger") and target not in allowed:
                    bad.append(f"{imp}: {layer} may not import {target}")
            elif top in FRAMEWORKS and top not in MAY_USE.get(layer, set()):
                bad.append(f"{imp}: {layer} may not use {top} (an adapter's framework)")
    return bad


def test_every_import_follows_the_package_map() -> None:
    bad = violations()
    assert bad == [], "imports against the layering:\n" + "\n".join(bad)


def test_the_core_uses_no_web_framework_orm_or_http_client() -> None:
    core = [
        "ledger.errors",
        "ledger.atomic",
        "ledger.tlog",
        "ledger.protocol",
        "ledger.statements",
        "ledger.server",
        "ledger.verifier",
    ]
    for layer in core:
        assert not MAY_USE.get(layer), layer
        assert not MAY_IMPORT[layer] & {"api", "ledger.cli", "ledger.client", "ledger.witness"}
        # Only the writing server reaches storage, and only through its contract.
        assert "ledger.storage" not in MAY_IMPORT[layer] or layer == "ledger.server", layer


def test_nothing_imports_cli_or_api_but_their_entry_points() -> None:
    for layer, allowed in MAY_IMPORT.items():
        if "ledger.cli" in allowed:
            assert layer == "ledger.__main__", layer
        if "api" in allowed:
            assert layer == "ledger.cli", layer


def test_the_layers_form_no_cycle() -> None:
    seen: dict[str, int] = {}

    def depth(layer: str, stack: tuple[str, ...] = ()) -> int:
        assert layer not in stack, f"cycle: {' → '.join((*stack, layer))}"
        if layer not in seen:
            seen[layer] = 1 + max((depth(d, (*stack, layer)) for d in MAY_IMPORT[layer]), default=0)
        return seen[layer]

    for layer in MAY_IMPORT:
        depth(layer)


def _ledger_layers_on_disk() -> set[str]:
    found = set()
    for child in (REPO / "ledger").iterdir():
        if child.is_dir() and (child / "__init__.py").exists():
            found.add(f"ledger.{child.name}")
        elif child.suffix == ".py" and child.name != "__init__.py":
            found.add(f"ledger.{child.stem}")
    return found


def test_every_ledger_package_has_a_rule() -> None:
    assert _ledger_layers_on_disk() == {k for k in MAY_IMPORT if k.startswith("ledger.")}


def test_every_package_says_what_it_is_in_its_docstring() -> None:
    for layer in MAY_IMPORT:
        if not layer.startswith("ledger.") or layer == "ledger.__main__":
            continue
        path = REPO / Path(*layer.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert docstring, f"{path.relative_to(REPO)} has no docstring"


_MAP_ROW = re.compile(
    r"^\|\s*`(?P<name>[^`]+)`\s*\|(?P<what>[^|]*)\|(?P<imports>[^|]*)\|(?P<uses>[^|]*)\|\s*$"
)


def documented_map() -> dict[str, tuple[set[str], set[str]]]:
    """The package map table of docs/ARCHITECTURE.md: name → (may import, may use)."""
    text = ARCHITECTURE_DOC.read_text(encoding="utf-8")
    start = text.index("## Package map")
    end = text.index("\n## ", start + 1)
    rows: dict[str, tuple[set[str], set[str]]] = {}
    for line in text[start:end].splitlines():
        match = _MAP_ROW.match(line)
        if not match or match["name"] == "package":
            continue
        name = match["name"].rstrip("/").removesuffix(".py").replace("/", ".")
        rows[name] = (
            set(re.findall(r"`([^`]+)`", match["imports"])),
            set(re.findall(r"`([^`]+)`", match["uses"])),
        )
    return rows


def test_the_documented_package_map_is_the_rule_and_the_tree() -> None:
    doc = documented_map()
    assert set(doc) == set(MAY_IMPORT), "docs/ARCHITECTURE.md lists other packages than the rule"
    for layer, (imports, uses) in doc.items():
        assert imports == MAY_IMPORT[layer], f"{layer}: the doc says it may import {imports}"
        assert uses == MAY_USE.get(layer, set()), f"{layer}: the doc says it may use {uses}"
    assert {k for k in doc if k.startswith("ledger.")} == _ledger_layers_on_disk()


MAX_LINES = 600
KEPT_WHOLE = "Kept whole"


def test_modules_a_reader_can_hold() -> None:
    """A module over ~600 lines must be one cohesive thing, and say so (and why) in its docstring,
    in a sentence starting with "Kept whole"."""
    long = []
    for path in project_files():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_LINES:
            docstring = ast.get_docstring(ast.parse(text)) or ""
            if KEPT_WHOLE not in docstring:
                long.append(f"{path.relative_to(REPO)} ({text.count(chr(10))} lines)")
    assert long == [], (
        "modules over 600 lines that don't say why they are kept whole: " + ", ".join(long)
    )


# -- the checker itself ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer", "source", "offence"),
    [
        ("ledger/tlog/bad.py", "import sqlalchemy\n", "ledger.tlog may not use sqlalchemy"),
        (
            "ledger/protocol/bad.py",
            "from ledger.statements import entry\n",
            "may not import ledger.statements",
        ),
        ("ledger/verifier/bad.py", "def f():\n    from api import app\n", "may not import api"),
        (
            "ledger/server/bad.py",
            "from ledger.client.source import X\n",
            "may not import ledger.client",
        ),
        (
            "ledger/statements/bad.py",
            "from ..server import sequencer\n",
            "may not import ledger.server",
        ),
        ("ledger/tlog/bad.py", "from ledger import cli\n", "may not import ledger.cli"),
        ("ledger/client/bad.py", "import fastapi\n", "may not use fastapi"),
    ],
)
def test_the_checker_names_a_forbidden_import(
    layer: str, source: str, offence: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / layer
    fake.parent.mkdir(parents=True)
    (fake.parent / "__init__.py").write_text('"""x"""\n', encoding="utf-8")
    fake.write_text(source, encoding="utf-8")
    monkeypatch.setitem(globals(), "REPO", tmp_path)
    bad = violations()
    assert any(offence in line and layer in line for line in bad), bad


def test_the_checker_accepts_an_allowed_import(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "ledger" / "server" / "ok.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(
        "from ledger.statements.entry import LogEntry\nfrom . import sequencer\nimport json\n",
        encoding="utf-8",
    )
    monkeypatch.setitem(globals(), "REPO", tmp_path)
    assert violations() == []
