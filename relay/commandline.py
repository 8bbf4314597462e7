"""What the three console scripts share: the common flags and the error-to-exit-code rule."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from relay import __version__
from relay.errors import EXIT_FAILURE, CoplayError
from relay.locations import default_config_path
from relay.logs import LEVELS


class ArgumentParser(argparse.ArgumentParser):
    """argparse that never echoes the value given to an unknown option.

    Secrets never come from the command line, but someone will try
    ``--password X``; the usage error then names the option, not the value.
    """

    _argv: tuple[str, ...] = ()

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        self._argv = tuple(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        for value in _unknown_option_values(self._argv, self._option_string_actions):
            # whole tokens only: in "unrecognized arguments: ..." or "invalid choice: 'V'"
            message = re.sub(rf"(?<=[\s'=]){re.escape(value)}(?=[\s']|$)", "***", message)
        super().error(message)


def _unknown_option_values(argv: Sequence[str], known: Iterable[str]) -> list[str]:
    """Values that follow (``--x V``) or are attached to (``--x=V``) an unknown option."""
    known = set(known)
    values = []
    for i, token in enumerate(argv):
        name, eq, attached = token.partition("=")
        if not token.startswith("-") or name in known:
            continue
        if eq:
            values.append(attached)
        elif i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            values.append(argv[i + 1])
    return sorted((v for v in values if v), key=len, reverse=True)


def base_parser(prog: str, description: str, config_name: str) -> argparse.ArgumentParser:
    """A parser with ``--config``, ``--log-level``, ``--log-format`` and ``--version``."""
    parser = ArgumentParser(prog=prog, description=description)
    add_common(parser, config_name)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def add_common(parser: argparse.ArgumentParser, config_name: str) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"config file (default: {default_config_path(config_name)})",
    )
    parser.add_argument(
        "--log-level",
        choices=LEVELS,
        default="info",
        help="lowest level logged (default: info)",
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "console", "json"),
        default="auto",
        help="console on a terminal, JSON lines otherwise (default: auto)",
    )


def config_path(args: argparse.Namespace, config_name: str) -> Path:
    path: Path | None = args.config
    return path if path is not None else default_config_path(config_name)


def json_logs(args: argparse.Namespace) -> bool | None:
    fmt: str = args.log_format
    return None if fmt == "auto" else fmt == "json"


def run(prog: str, main: Callable[[], int]) -> int:
    """Run ``main``; a CoplayError becomes one line on stderr and its exit code."""
    try:
        return main()
    except CoplayError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_FAILURE
