"""Config files for the processes the tests start: a dict -> TOML text, nothing more.

``dumps({"relay": {...}, "host": {...}})`` writes a table per dict and an array
of tables (``[[apps]]``) per list of dicts, in the order given; a key whose
value is None is left out (the program's default applies). Strings are written
as JSON strings, which TOML reads as the same basic strings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Table = Mapping[str, Any]


def value(item: object) -> str:
    """One TOML value: a string, bool, int, float or a list of them."""
    match item:
        case bool():
            return "true" if item else "false"
        case str():
            return json.dumps(item)
        case int() | float():
            return repr(item)
        case Sequence():
            return "[" + ", ".join(value(x) for x in item) + "]"
    raise TypeError(f"no TOML value for {item!r}")


def _is_tables(item: object) -> bool:
    return (
        isinstance(item, Sequence)
        and not isinstance(item, str)
        and bool(item)
        and all(isinstance(x, Mapping) for x in item)
    )


def _pairs(table: Table) -> str:
    return "".join(
        f"{key} = {value(item)}\n"
        for key, item in table.items()
        if item is not None and not isinstance(item, Mapping) and not _is_tables(item)
    )


def dumps(data: Table) -> str:
    """TOML for ``data``: its plain keys, then its tables and arrays of tables, in order."""
    parts = [_pairs(data)] if _pairs(data) else []
    for key, item in data.items():
        if isinstance(item, Mapping):
            parts.append(f"[{key}]\n{_pairs(item)}")
        elif _is_tables(item):
            parts.extend(f"[[{key}]]\n{_pairs(table)}" for table in item)
    return "\n".join(parts)


def write_toml(path: Path, data: Table, extra: str = "") -> Path:
    """Write ``dumps(data)`` to ``path``, then ``extra`` (verbatim lines for the last table)."""
    path.write_text(dumps(data) + extra)
    return path
