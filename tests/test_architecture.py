"""The layout DESIGN.md §2 draws, checked on the source: floors and one-way imports, the store as the
only place with SQL, the vocabulary defined once, small modules, and a `--help` that stays instant."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sertool"

FLOORS: dict[str, int] = {
    "labels": 1, "metrics": 1, "errors": 1, "predictions": 1, "audio": 1, "launch": 1, "progress": 1,
    "store": 2, "tracking": 2, "model": 2,
    "corpus": 3, "encoders": 3, "train": 3, "ensemble": 3,
    "jobs": 4,
    "cli": 5,
}
"""Room (top-level module or package of sertool) -> floor. A room imports only from floors below it
and from itself; floor 1 is the shared vocabulary, whose modules may use each other."""


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _room(path: Path) -> str | None:
    rel = path.relative_to(PACKAGE)
    return None if rel.parts == ("__init__.py",) else rel.parts[0].removesuffix(".py")


def _imported_rooms(path: Path) -> set[str]:
    """sertool rooms a module imports (absolute or relative), wherever the import statement sits."""
    tree = ast.parse(path.read_text())
    depth = len(path.relative_to(PACKAGE).parts) - 1  # how many packages deep the module sits
    rooms: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = list(path.relative_to(PACKAGE).parts[:-1])
                up = node.level - 1
                base = parts[: len(parts) - up] if up <= depth else None
                if base is None:
                    continue
                target = [*base, *(node.module.split(".") if node.module else [])]
                if target:
                    rooms.add(target[0])
                else:  # `from .. import launch` at the package root
                    rooms.update(a.name for a in node.names)
            elif node.module and node.module.split(".")[0] == "sertool":
                rest = node.module.split(".")[1:]
                rooms.update([rest[0]] if rest else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("sertool."):
                    rooms.add(a.name.split(".")[1])
    return {r for r in rooms if r in FLOORS}


def test_every_room_has_a_floor():
    rooms = {_room(p) for p in _modules()} - {None}
    assert rooms <= set(FLOORS), rooms - set(FLOORS)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_one_way_down(path):
    room = _room(path)
    if room is None:
        return
    floor = FLOORS[room]
    for other in _imported_rooms(path) - {room}:
        if floor == 1 and FLOORS[other] == 1:
            continue
        assert FLOORS[other] < floor, f"{path.relative_to(PACKAGE)} (floor {floor}) imports {other} (floor {FLOORS[other]})"


SQL = re.compile(r"\b(SELECT|INSERT\s+INTO|DELETE\s+FROM|UPDATE\s+\w+\s+SET|CREATE\s+TABLE)\b")


def test_no_sql_outside_the_store():
    offenders = [str(p.relative_to(PACKAGE)) for p in _modules() if _room(p) != "store" and SQL.search(p.read_text())]
    assert offenders == []


def test_the_vocabulary_is_defined_once():
    """The class codes, the attribute names and the 1-7 range are written out in labels.py only."""
    patterns = {
        "classes": re.compile(r"\(\s*\"A\",\s*\"S\",\s*\"H\",\s*\"U\",\s*\"F\",\s*\"D\",\s*\"C\",\s*\"N\""),
        "attributes": re.compile(r"\(\s*\"arousal\",\s*\"valence\",\s*\"dominance\"\s*\)"),
    }
    for name, pattern in patterns.items():
        where = [str(p.relative_to(PACKAGE)) for p in _modules() if pattern.search(p.read_text())]
        assert where == ["labels.py"], (name, where)


def test_ensembles_do_not_import_training():
    assert all("train" not in _imported_rooms(p) for p in (PACKAGE / "ensemble").glob("*.py"))


def test_no_module_over_400_lines():
    big = {str(p.relative_to(PACKAGE)): n for p in _modules() if (n := len(p.read_text().splitlines())) > 400}
    assert big == {}


def test_help_imports_no_heavy_library():
    code = ("import sys; from sertool.cli import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in ('torch', 'transformers', 'mlflow', 'duckdb', 'pandas', 'zarr', 'optuna', 'submitit') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"
