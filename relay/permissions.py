"""``--check``: warn when a config with an inline secret, or a secret file, is readable by others.

The secrets a config can point at are its ``*secret*`` / ``password`` values and
their ``*_file`` twins (plus ``invite_file``). A relative ``*_file`` path resolves
as :func:`relay.secrets.resolve_secret` does: in ``$CREDENTIALS_DIRECTORY`` when set,
else beside the config file. Only the mode bits are looked at (group or other may
read); the files are not read here.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

_SECRET_WORDS = ("secret", "password", "invite")


def _is_secret_key(key: str) -> bool:
    base = key.removesuffix("_file")
    return any(word in base for word in _SECRET_WORDS)


def _walk(table: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    for key, value in table.items():
        if isinstance(value, Mapping):
            yield from _walk(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, Mapping):
                    yield from _walk(item)
        else:
            yield key, value


def _loose(path: Path) -> int | None:
    """The file's mode when group or others may read it, else None."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    return stat.S_IMODE(mode) if mode & (stat.S_IRGRP | stat.S_IROTH) else None


def permission_warnings(config: Path, env: Mapping[str, str] | None = None) -> list[str]:
    """One sentence per file that holds a secret and is readable by group or others."""
    env = os.environ if env is None else env
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []  # the loader has already said what is wrong
    inline = False
    files: list[Path] = []
    for key, value in _walk(data):
        if not isinstance(value, str) or not value or not _is_secret_key(key):
            continue
        if key.endswith("_file"):
            path = Path(value).expanduser()
            if not path.is_absolute():
                base = env.get("CREDENTIALS_DIRECTORY")
                path = (Path(base) if base else config.parent) / path
            files.append(path)
        else:
            inline = True
    warnings = []
    for path in ([config] if inline else []) + files:
        mode = _loose(path)
        if mode is not None:
            what = "holds a secret inline" if path == config else "holds a secret"
            warnings.append(
                f"warning: {path} {what} and is readable by group or others "
                f"(mode {mode:04o}); run: chmod 600 {path}"
            )
    return warnings
