"""``coplay-relay``: the self-hosted token API and embedded broker, and its exports.

::

    coplay-relay serve --config relay.toml          token API + embedded MQTT broker
    coplay-relay emqx-config --config relay.toml    EMQX 5 JWT authentication block
    coplay-relay mosquitto-acl --config relay.toml  Mosquitto ACL file with the same rules
    coplay-relay nats-config --config relay.toml --nodes 3   NATS cluster node configs
    coplay-relay nats-callout --config relay.toml   the NATS cluster's auth callout
    coplay-relay --check --config relay.toml        validate the config and exit

Without a command it serves. Secrets come only from relay.toml, ``*_file``
paths or ``COPLAY_JWT_SECRET``; ``emqx-config`` prints a ``file://``
reference to the secret unless ``--show-secret`` is given. ``serve`` needs the
``relay`` extra (``pip install 'coplay[relay]'``); the exports do not.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from relay.config import RelayServiceConfig, load_relay_config
from relay.entry import add_common, base_parser, config_path, json_logs, run
from relay.errors import ConfigError
from relay.logs import Redactor, configure_logging

PROG = "coplay-relay"
CONFIG_NAME = "relay.toml"


def build_parser() -> argparse.ArgumentParser:
    parser = base_parser(PROG, "The coplay relay: token API and embedded MQTT broker.", CONFIG_NAME)
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_common(sub, CONFIG_NAME)
        for action in sub._actions:  # a flag given before the command must survive
            if action.dest != "help":
                action.default = argparse.SUPPRESS
        return sub

    command("serve", "Run the token API and the embedded MQTT broker (the default).")
    emqx = command("emqx-config", "Print the EMQX 5 JWT authentication block for these tokens.")
    emqx.add_argument(
        "--show-secret",
        action="store_true",
        help="print the JWT secret itself instead of a file:// reference",
    )
    command("mosquitto-acl", "Print a Mosquitto ACL file with the relay's topic rules.")
    from relay.service.nats_cli import add_nats_commands  # noqa: PLC0415 (keeps this file's imports light)

    add_nats_commands(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def go() -> int:
        config = load_relay_config(config_path(args, CONFIG_NAME))
        if args.check:
            print(f"{config.path}: ok")
            return 0
        command = args.command or "serve"
        if command == "emqx-config":
            return print_emqx(config, show_secret=args.show_secret)
        if command == "mosquitto-acl":
            from relay.service.exports import mosquitto_acl_file  # noqa: PLC0415 (lazy)

            sys.stdout.write(mosquitto_acl_file(config))
            return 0
        if command.startswith("nats-"):
            from relay.service.nats_cli import run_nats_command  # noqa: PLC0415 (lazy)

            return run_nats_command(command, config, args)
        return serve(config, args)

    return run(PROG, go)


def print_emqx(config: RelayServiceConfig, *, show_secret: bool) -> int:
    from relay.service.exports import emqx_config  # noqa: PLC0415 (lazy)

    try:
        text = emqx_config(config, show_secret=show_secret)
    except ValueError as exc:
        raise ConfigError(f"{config.path}: $.server.jwt_secret: {exc}") from None
    sys.stdout.write(text)
    return 0


def serve(config: RelayServiceConfig, args: argparse.Namespace) -> int:
    redactor = Redactor(config.secrets)
    configure_logging(args.log_level, redactor=redactor, json=json_logs(args))
    try:
        from relay.service import serve as service  # noqa: PLC0415 (the optional extra)
    except ImportError as exc:
        raise ConfigError(
            f"the relay service needs the relay extra (missing {exc.name or exc}): "
            "pip install 'coplay[relay]'"
        ) from None
    return asyncio.run(service.serve(config, redactor, args.log_level))


if __name__ == "__main__":
    sys.exit(main())
