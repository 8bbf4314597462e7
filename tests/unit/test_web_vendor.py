"""The join page's vendored JavaScript is exactly what web/package-lock.json pins, and ships."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "relay" / "service" / "web"
VENDOR = WEB / "vendor"


def manifest() -> dict[str, dict[str, str]]:
    return json.loads((VENDOR / "manifest.json").read_text())  # type: ignore[no-any-return]


def test_shipped_files_match_their_recorded_sha256() -> None:
    """A vendored file edited or replaced by hand no longer matches the manifest."""
    entries = manifest()
    assert set(entries) == {"mqtt.min.js", "msgpack.min.js"}
    for name, entry in entries.items():
        digest = hashlib.sha256((VENDOR / name).read_bytes()).hexdigest()
        assert digest == entry["sha256"], f"{name} differs from manifest.json; run web/refresh"


def test_manifest_matches_the_lock_file_version_and_integrity() -> None:
    """Bumping a version in the lock without running web/refresh fails here."""
    lock = json.loads((ROOT / "web" / "package-lock.json").read_text())
    wanted = json.loads((ROOT / "web" / "package.json").read_text())["dependencies"]
    for name, entry in manifest().items():
        locked = lock["packages"][f"node_modules/{entry['package']}"]
        assert entry["version"] == locked["version"] == wanted[entry["package"]], name
        assert entry["integrity"] == locked["integrity"], name


def test_installed_node_modules_if_present_match_the_shipped_files() -> None:
    """Where web/node_modules exists (after web/refresh), its build is the shipped one."""
    for name, entry in manifest().items():
        source = ROOT / "web" / "node_modules" / entry["package"] / entry["source"]
        if source.exists():
            assert source.read_bytes() == (VENDOR / name).read_bytes(), name


def test_every_vendored_file_has_its_licence_and_a_manifest_entry() -> None:
    entries = manifest()
    for path in VENDOR.glob("*.js"):
        assert path.name in entries, path.name
        assert (VENDOR / f"{path.name}.LICENSE").read_text().strip(), path.name


def test_package_data_ships_every_page_file() -> None:
    """setuptools' package-data globs cover each file under relay/service/web."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["relay.service"]
    files = [p.relative_to(WEB.parent).as_posix() for p in WEB.rglob("*") if p.is_file()]
    assert files
    missed = [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)]
    assert not missed


def test_the_page_names_no_other_origin_and_has_no_inline_code() -> None:
    """No third-party origin, no inline script or style (the CSP would refuse them)."""
    html = (WEB / "join.html").read_text()
    assert not re.search(r"https?://", html)
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert not re.search(r"\sstyle=|\son[a-z]+=", html)
    svg = (WEB / "pad.svg").read_text()
    assert not re.search(r"\sstyle=|<script|\son[a-z]+=", svg)
    for js in ("join.js", "frames.js", "gamepad.js"):
        text = (WEB / js).read_text()
        assert not re.search(r"https?://(?!w3c\.github\.io)[A-Za-z0-9]", text), js
        assert "eval(" not in text and "innerHTML" not in text, js
