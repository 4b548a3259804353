"""Imports go one way (docs/ARCHITECTURE.md, section 2): cli -> coordinator / fleet / report ->
model / data -> wire / transport / strategy -> base helpers, nothing imports cli, and no two
packages import each other (lazy imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "host" / "tinyfl"
FLOOR = {
    "cli": 6, "report": 5, "coordinator": 4, "fleet": 4, "provision": 4, "model": 3, "data": 3,
    "wire": 2, "transport": 2, "strategy": 2, "quant": 2, "dsp": 2,
    "errors": 1, "files": 1, "aio": 1, "rng": 1, "crypto": 1, "__init__": 1,
}


def _unit(path: Path) -> str:
    """The package (or top-level module) a file belongs to: cli, model, errors, ..."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports() -> dict[tuple[str, str], list[str]]:
    """{(importer unit, imported unit): [files]} for every `tinyfl.*` import in the package."""
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] != "tinyfl" or len(parts) < 2 or parts[1] not in FLOOR:
                    continue
                key = (_unit(path), parts[1])
                if key[0] != key[1]:
                    found.setdefault(key, []).append(str(path.relative_to(PACKAGE)))
    return found


def test_every_unit_has_a_floor() -> None:
    units = {_unit(p) for p in PACKAGE.rglob("*.py")}
    assert units <= set(FLOOR), f"add {sorted(units - set(FLOOR))} to FLOOR (and ARCHITECTURE.md)"


def test_imports_only_go_down_or_sideways_and_never_into_cli() -> None:
    upward = {f"{a} -> {b}": files for (a, b), files in _imports().items()
              if FLOOR[b] > FLOOR[a] or (b == "cli" and a != "cli")}
    assert not upward, upward


def test_no_two_packages_import_each_other() -> None:
    edges = set(_imports())
    cycles = sorted(f"{a} <-> {b}" for a, b in edges if (b, a) in edges and a < b)
    assert not cycles, cycles
