"""Where coplay keeps its files on this platform: config and state directories, the device id.

Linux follows XDG (and systemd's ``ConfigurationDirectory=``/``StateDirectory=``
when a unit sets them), Windows ``%APPDATA%``/``%LOCALAPPDATA%``, macOS
``~/Library/Application Support``. The default MQTT ``device_id`` is derived
from a random machine id kept in the state directory.
"""

from __future__ import annotations

import hashlib
import os
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path

from relay.topics import is_valid_name


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where config files live by default on this platform."""
    env = os.environ if env is None else env
    if env.get("COPLAY_CONFIG_DIR"):
        return Path(env["COPLAY_CONFIG_DIR"])
    if sys.platform == "win32":
        return Path(env.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "coplay"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "coplay"
    if env.get("CONFIGURATION_DIRECTORY"):  # systemd ConfigurationDirectory=
        return Path(env["CONFIGURATION_DIRECTORY"])
    return Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "coplay"


def default_config_path(name: str, env: Mapping[str, str] | None = None) -> Path:
    """``<config dir>/<name>``, falling back to ``/etc/coplay/<name>`` when only that exists."""
    user = config_dir(env) / name
    system = Path("/etc/coplay") / name
    if not user.exists() and system.exists():
        return system
    return user


def state_dir(env: Mapping[str, str] | None = None, *, relay: bool = False) -> Path:
    """Where coplay keeps small state (the device id, invites) on this platform.

    ``relay=True``: the relay service's own directory (``coplay-relay`` beside
    ``coplay``), which is where its systemd unit's ``StateDirectory=`` points.
    """
    env = os.environ if env is None else env
    if env.get("STATE_DIRECTORY"):  # systemd StateDirectory=
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    if relay:
        return state_dir(env).with_name("coplay-relay")
    if sys.platform == "win32":
        return Path(env.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "coplay"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "coplay"
    return Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "coplay"


def machine_id(env: Mapping[str, str] | None = None, *, persist: bool = True) -> str:
    """A random id for this machine (this state directory), kept in ``<state dir>/device_id``.

    Made on first use. When the state directory cannot be written, or with
    ``persist=False``, a fresh id is used for this run and nothing is written.
    """
    path = state_dir(env) / "device_id"
    try:
        value = path.read_text(encoding="utf-8").strip()
        if is_valid_name(value):
            return value
    except OSError:
        pass
    value = "d" + uuid.uuid4().hex[:16]
    if persist:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(value + "\n", encoding="utf-8")
        except OSError:
            pass
    return value


def stable_device_id(
    program: str, username: str, env: Mapping[str, str] | None = None, *, persist: bool = True
) -> str:
    """The default ``device_id``: stable per machine, program and username (DESIGN, identity).

    A host, a guest for alice and a guest for bob on one PC get three different
    MQTT client ids, so they never take each other's broker session.
    """
    machine = machine_id(env, persist=persist)
    digest = hashlib.sha256(f"{machine}\0{program}\0{username}".encode()).hexdigest()
    return f"{program}-{digest[:16]}"
