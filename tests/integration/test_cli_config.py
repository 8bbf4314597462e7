"""The three console scripts, run as real processes, load and validate their config files.

Every bad config exits 78 with exactly one stderr line naming the file and the
field; secrets work from the file, a ``*_file`` (also via
``$CREDENTIALS_DIRECTORY``) and the environment, and never show in any output.

The cases run as one batch of concurrent processes (each in its own directory
with its own HOME and XDG directories), then each test checks its result.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from relay import __version__

SECRET = "SeCrEt-7c1d0e9a4b3f2a6d8e5f"
JWT_SECRET = "JwT-SeCrEt-0123456789abcdef0123456789abcdef"
SHORT_JWT = "ShortJwtSecret-1"
BROKER_PASSWORD = "BrOkEr-PaSs-5e6f7a8b"
ALL_SECRETS = (SECRET, JWT_SECRET, SHORT_JWT, BROKER_PASSWORD)

PROGS = ("host", "guest", "relay")
CONFIG_NAME = {"host": "host.toml", "guest": "guest.toml", "relay": "relay.toml"}
HIDDEN_ENV = ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY", "CONFIGURATION_DIRECTORY")

RELAY_OK = '[relay]\nusername = "alice"\nsession = "friday"\n'
HOST_OK = RELAY_OK + f'app_client_secret = "{SECRET}"\n'
APPS_OK = (
    '[[apps]]\nclient_id = "streamer-app"\nclient_secret = "app-secret-1"\nhosts = ["streamer"]\n'
)


@dataclass(frozen=True)
class Case:
    prog: str
    config: str | None  # the config file's text; None = no file
    args: tuple[str, ...] = ("--check",)
    env: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)  # more files, relative to the case dir
    with_config_flag: bool = True


@dataclass(frozen=True)
class Result:
    case: Case
    root: Path
    returncode: int
    stdout: str
    stderr: str

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME[self.case.prog]

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _console_script(prog: str) -> list[str]:
    """The installed console script, or the module when the project is not installed."""
    script = Path(sys.executable).with_name(f"coplay-{prog}")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", f"{prog}.cli"]


def _run(root: Path, case: Case) -> Result:
    root.mkdir(parents=True)
    config_path = root / CONFIG_NAME[case.prog]
    if case.config is not None:
        config_path.write_text(case.config.replace("{root}", str(root)), encoding="utf-8")
    for name, text in case.files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COPLAY_", "XDG_")) and k not in HIDDEN_ENV
    }
    env.update(
        HOME=str(root / "home"),
        XDG_STATE_HOME=str(root / "state"),
        XDG_CONFIG_HOME=str(root / "config"),
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),  # only for the -m fallback
    )
    env.update({k: v.replace("{root}", str(root)) for k, v in case.env.items()})
    argv = list(case.args)
    if case.with_config_flag:
        argv = ["--config", str(config_path), *argv]
    done = subprocess.run(
        [*_console_script(case.prog), *argv],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    return Result(case, root, done.returncode, done.stdout, done.stderr)


# ---------------------------------------------------------------- the cases

# bad configs: (prog, file text, the field path the one stderr line must name).
# tests/unit/test_config.py runs a larger matrix in-process; these are the
# cases the contract names, through the real console scripts.
BAD: dict[str, tuple[str, str | None, str]] = {
    "host-missing-username": (
        "host",
        f'[relay]\nsession = "friday"\napp_client_secret = "{SECRET}"\n',
        "$.relay.username",
    ),
    "host-unknown-key": ("host", HOST_OK + "colour = 1\n", "$.relay.colour"),
    "host-seat-0": ("host", HOST_OK + "[host]\nseats = [0]\n", "$.host.seats[0]"),
    "host-session-slash": (
        "host",
        f'[relay]\nusername = "alice"\nsession = "a/b"\napp_client_secret = "{SECRET}"\n',
        "$.relay.session",
    ),
    "host-broker-url-with-password": (
        "host",
        HOST_OK + f'broker_url = "tcp://alice:{BROKER_PASSWORD}@127.0.0.1:1883"\n',
        "$.relay.broker_url",
    ),
    "host-allow-seat-not-in-seats": (
        "host",
        HOST_OK + '[host]\nseats = [2]\nallow = ["bob = 3"]\n',
        "$.host.allow[0]",
    ),
    "host-malformed-toml": ("host", HOST_OK + "[host\nseats = [2]\n", "TOML"),
    "host-missing-file": ("host", None, "no such config file"),
    "guest-rate-0": ("guest", HOST_OK + "[guest]\nrate_hz = 0\n", "$.guest.rate_hz"),
    "guest-unknown-key": ("guest", HOST_OK + "[guest]\nfps = 60\n", "$.guest.fps"),
    "guest-missing-file": ("guest", None, "no such config file"),
    "relay-missing-apps": ("relay", f'[server]\njwt_secret = "{JWT_SECRET}"\n', "$.apps"),
    "relay-unknown-key": (
        "relay",
        f'[server]\njwt_secret = "{JWT_SECRET}"\nport = 1\n' + APPS_OK,
        "$.server.port",
    ),
    "relay-short-jwt-secret": (
        "relay",
        f'[server]\njwt_secret = "{SHORT_JWT}"\n' + APPS_OK,
        "$.server.jwt_secret",
    ),
    "relay-malformed-toml": ("relay", "[server]\njwt_secret = \n", "TOML"),
}

# good configs: each must pass --check (exit 0) with the secret from where it says
GOOD: dict[str, Case] = {
    "host-secret-inline": Case("host", HOST_OK),
    "host-secret-file": Case(
        "host",
        RELAY_OK + 'app_client_secret_file = "app_secret"\n',  # beside the config
        files={"app_secret": SECRET + "\n"},
    ),
    "host-secret-credentials-directory": Case(
        "host",
        RELAY_OK + 'app_client_secret_file = "app_secret"\n',
        env={"CREDENTIALS_DIRECTORY": "{root}/creds"},
        files={"creds/app_secret": SECRET},  # not beside the config: only $CREDENTIALS_DIRECTORY
    ),
    "host-secret-env": Case("host", RELAY_OK, env={"COPLAY_APP_CLIENT_SECRET": SECRET}),
    "host-password-env": Case(
        "host", RELAY_OK + 'api_url = ""\n', env={"COPLAY_MQTT_PASSWORD": BROKER_PASSWORD}
    ),
    "guest-secret-inline": Case("guest", HOST_OK + '[guest]\nsource = "virtual"\n'),
    "guest-secret-file": Case(
        "guest",
        RELAY_OK + 'app_client_secret_file = "{root}/elsewhere/s"\n',  # absolute
        files={"elsewhere/s": SECRET},
    ),
    "guest-secret-env": Case("guest", RELAY_OK, env={"COPLAY_APP_CLIENT_SECRET": SECRET}),
    "guest-password-file": Case(
        "guest", RELAY_OK + 'api_url = ""\npassword_file = "pw"\n', files={"pw": BROKER_PASSWORD}
    ),
    "relay-jwt-inline": Case("relay", f'[server]\njwt_secret = "{JWT_SECRET}"\n' + APPS_OK),
    "relay-jwt-file": Case(
        "relay",
        '[server]\njwt_secret_file = "jwt"\n' + APPS_OK,
        files={"jwt": JWT_SECRET},
    ),
    "relay-jwt-credentials-directory": Case(
        "relay",
        '[server]\njwt_secret_file = "jwt"\n' + APPS_OK,
        env={"CREDENTIALS_DIRECTORY": "{root}/creds"},
        files={"creds/jwt": JWT_SECRET},
    ),
    "relay-jwt-env": Case("relay", APPS_OK, env={"COPLAY_JWT_SECRET": JWT_SECRET}),
    # no --config: the default location under XDG_CONFIG_HOME
    "host-default-location": Case(
        "host",
        None,
        with_config_flag=False,
        files={"config/coplay/host.toml": HOST_OK},
    ),
}

# a secret in the environment wins, so a broken *_file is not read ... but an
# error elsewhere must still not echo the secret that came from the environment
ENV_SECRET_ERROR = Case(
    "host", RELAY_OK + "[host]\nseats = [0]\n", env={"COPLAY_APP_CLIENT_SECRET": SECRET}
)

FLAGS: dict[str, Case] = {}
for _prog in PROGS:
    FLAGS[f"{_prog}-help"] = Case(_prog, None, args=("--help",), with_config_flag=False)
    FLAGS[f"{_prog}-version"] = Case(_prog, None, args=("--version",), with_config_flag=False)
    FLAGS[f"{_prog}-unknown-flag"] = Case(_prog, None, args=("--frobnicate",))
    FLAGS[f"{_prog}-secret-flag"] = Case(_prog, None, args=("--password", SECRET))


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """Run every case once, a few processes at a time."""
    cases: dict[str, Case] = {name: Case(prog, text) for name, (prog, text, _) in BAD.items()}
    cases.update(GOOD)
    cases.update(FLAGS)
    cases["env-secret-error"] = ENV_SECRET_ERROR
    base = tmp_path_factory.mktemp("cli")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(_run, base / name, case) for name, case in cases.items()}
        return {name: future.result() for name, future in futures.items()}


def _one_line(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _no_secret(result: Result) -> None:
    for secret in ALL_SECRETS:
        assert secret not in result.output, "a secret was printed"


# ---------------------------------------------------------------- bad configs


@pytest.mark.parametrize("name", list(BAD))
def test_bad_config_exits_78_with_one_line(name: str, results: dict[str, Result]) -> None:
    """Exit 78, nothing on stdout, one stderr line naming the file and the field."""
    result = results[name]
    _, _, where = BAD[name]
    assert result.returncode == 78, result.output
    assert result.stdout == ""
    line = _one_line(result)
    assert line.startswith(f"coplay-{result.case.prog}: {result.config_path}: "), line
    assert where in line, line
    assert "Traceback" not in result.stderr
    _no_secret(result)


def test_an_environment_secret_is_not_echoed_on_error(results: dict[str, Result]) -> None:
    result = results["env-secret-error"]
    assert result.returncode == 78
    assert "$.host.seats[0]" in _one_line(result)
    _no_secret(result)


def test_the_default_config_location_is_used(results: dict[str, Result]) -> None:
    """Without --config, host.toml is read from $XDG_CONFIG_HOME/coplay/."""
    result = results["host-default-location"]
    assert result.returncode == 0, result.output
    assert str(result.root / "config" / "coplay" / "host.toml") in result.stdout


# ---------------------------------------------------------------- good configs


@pytest.mark.parametrize("name", list(GOOD))
def test_secret_sources_work(name: str, results: dict[str, Result]) -> None:
    """--check loads and validates the config and exits 0; the secret is never printed."""
    result = results[name]
    assert result.returncode == 0, result.output
    assert "Traceback" not in result.stderr
    _no_secret(result)


def test_check_writes_no_state(results: dict[str, Result]) -> None:
    """``--check`` on a config without device_id validates it and writes nothing to disk."""
    result = results["host-secret-inline"]
    assert result.returncode == 0, result.output
    assert not (result.root / "state").exists()
    assert not (result.root / "home" / ".local").exists()


# ---------------------------------------------------------------- flags


@pytest.mark.parametrize("prog", PROGS)
def test_help(prog: str, results: dict[str, Result]) -> None:
    result = results[f"{prog}-help"]
    assert result.returncode == 0
    assert f"coplay-{prog}" in result.stdout
    for flag in ("--config", "--log-level", "--version"):
        assert flag in result.stdout
    # secrets never come from the command line: no flag offers one
    options = [w for w in result.stdout.split() if w.startswith("--")]
    assert not [o for o in options if "secret" in o or "password" in o or "token" in o]


@pytest.mark.parametrize("prog", PROGS)
def test_version(prog: str, results: dict[str, Result]) -> None:
    result = results[f"{prog}-version"]
    assert result.returncode == 0
    assert result.stdout.strip() == f"coplay-{prog} {__version__}"


@pytest.mark.parametrize("prog", PROGS)
def test_unknown_flag_is_a_usage_error(prog: str, results: dict[str, Result]) -> None:
    result = results[f"{prog}-unknown-flag"]
    assert result.returncode == 2
    assert "--frobnicate" in result.stderr


@pytest.mark.parametrize("prog", PROGS)
def test_a_secret_flag_is_refused_without_echo(prog: str, results: dict[str, Result]) -> None:
    """There is no --password; argparse refuses it, and must not print the value back."""
    result = results[f"{prog}-secret-flag"]
    assert result.returncode == 2
    assert "***" in result.stderr
    _no_secret(result)
