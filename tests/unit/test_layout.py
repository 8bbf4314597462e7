"""The shape a newcomer relies on: small modules, small classes, and DESIGN's layering."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("relay", "host", "guest")
MAX_MODULE_LINES = 400  # "Keep modules small (a few hundred lines)" (CONVENTIONS)
MAX_CLASS_LINES = 200
MAY_IMPORT = {"relay": {"relay"}, "host": {"host", "relay"}, "guest": {"guest", "relay"}}


def modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_every_package_module_is_read() -> None:
    found = {p.relative_to(ROOT).parts[0] for p in modules()}
    assert found == set(PACKAGES)
    assert len(modules()) > 50


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_classes_stay_small(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_MODULE_LINES, "split the module by idea"
    big = [
        f"{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.ClassDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES
    ]
    assert big == []


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_host_and_guest_import_relay_and_never_each_other(path: Path) -> None:
    """DESIGN's layering: relay imports neither; host and guest never import each other."""
    home = path.relative_to(ROOT).parts[0]
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
    ours = imported & set(PACKAGES)
    assert ours <= MAY_IMPORT[home]
