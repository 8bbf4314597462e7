"""Secret values: read from a config value, a ``*_file`` path or a ``COPLAY_*`` variable.

A :class:`Secret` never shows its value in ``repr``/``str``, so it cannot leak
through a log line, an exception or a test failure by accident; code that
needs the value calls :meth:`Secret.reveal`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from relay.errors import ConfigError


class Secret:
    """A string that hides itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def resolve_secret(
    *,
    source: Path,
    field: str,
    inline: str,
    file: str,
    env_var: str | None,
    env: Mapping[str, str],
) -> Secret | None:
    """The secret for ``field`` from (in order) the environment, a ``*_file``, or the inline value.

    A relative ``*_file`` path is looked up in ``$CREDENTIALS_DIRECTORY`` (systemd
    ``LoadCredential=``) when that is set, else beside the config file. Setting
    both the inline value and the file is an error, as is an empty file.
    """
    if env_var and env.get(env_var):
        return Secret(env[env_var].strip())
    if inline and file:
        raise ConfigError(f"{source}: $.{field} and $.{field}_file are both set; keep one")
    if file:
        path = Path(file).expanduser()
        if not path.is_absolute():
            base = env.get("CREDENTIALS_DIRECTORY")
            path = (Path(base) if base else source.parent) / path
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"{source}: $.{field}_file: cannot read {path}: {exc.strerror or exc}"
            ) from exc
        if not value:
            raise ConfigError(f"{source}: $.{field}_file: {path} is empty")
        return Secret(value)
    if inline:
        return Secret(inline)
    return None


def section_secret(
    source: Path, section: object, where: str, key: str, env_var: str | None, env: Mapping[str, str]
) -> Secret | None:
    """:func:`resolve_secret` for the ``key`` / ``key_file`` pair of a decoded config section.

    ``where`` is the section's path in the file (``"relay"``, ``"apps[0]"``), so
    errors name ``$.relay.app_client_secret`` and ``$.relay.app_client_secret_file``.
    """
    return resolve_secret(
        source=source,
        field=f"{where}.{key}",
        inline=getattr(section, key),
        file=getattr(section, f"{key}_file"),
        env_var=env_var,
        env=env,
    )
