"""``coplay-relay``: the self-hosted token API and embedded broker, and its exports.

::

    coplay-relay serve --config relay.toml          token API + embedded MQTT broker
    coplay-relay emqx-config --config relay.toml    EMQX 5 JWT authentication block
    coplay-relay mosquitto-acl --config relay.toml  Mosquitto ACL file with the same rules
    coplay-relay invite --config relay.toml --app APP_ID --session S USER [--seat N]
                 [--ttl 24h] [--uses 1]             a join link, made locally by the operator
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

from relay.clock import SystemClock
from relay.commandline import add_common, base_parser, config_path, json_logs, run
from relay.errors import ConfigError, UsageError, needs_extra
from relay.invites import MAX_INVITE_USES, describe_duration, join_link, parse_duration
from relay.logs import Redactor, configure_logging
from relay.permissions import permission_warnings
from relay.service.config import RelayServiceConfig, load_relay_config
from relay.topics import is_valid_name

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
    invite = command("invite", "Create an invite in the relay's state_db; print its join link.")
    invite.add_argument("user", metavar="USER", help="the friend's username")
    invite.add_argument("--app", required=True, metavar="APP_ID", help="app_id (or client_id)")
    invite.add_argument("--session", required=True, metavar="S", help="the streamer's session")
    invite.add_argument("--seat", type=int, metavar="N", help="the seat meant for them")
    invite.add_argument("--ttl", default="24h", help="how long it lives (24h, 90m, 7d)")
    invite.add_argument("--uses", type=int, default=1, help="redeems allowed (1)")

    from relay.service.nats_cli import add_nats_commands  # noqa: PLC0415 (keeps this file's imports light)

    add_nats_commands(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def go() -> int:
        config = load_relay_config(config_path(args, CONFIG_NAME))
        if args.check:
            for warning in permission_warnings(config.path):
                print(warning, file=sys.stderr)
            print(f"{config.path}: ok")
            return 0
        command = args.command or "serve"
        if command == "emqx-config":
            return print_emqx(config, show_secret=args.show_secret)
        if command == "invite":
            return operator_invite(config, args)
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
        raise ConfigError(f"{config.path}: $.server.jwt_secret: {exc}") from exc
    sys.stdout.write(text)
    return 0


def operator_invite(config: RelayServiceConfig, args: argparse.Namespace) -> int:
    """``invite``: the same grant ``POST /openapi/rm/invite`` makes, written to state_db here."""
    from relay.service.invite_store import TooManyInvites, open_store  # noqa: PLC0415 (lazy)

    user: str = args.user
    apps = [app for app in config.apps if args.app in (app.app_id, app.client_id)]
    if len(apps) != 1:
        known = ", ".join(app.app_id for app in config.apps)
        why = "names several apps; use its client_id" if apps else f"is not an app here ({known})"
        raise UsageError(f"--app {args.app!r} {why}")
    app = apps[0]
    if not is_valid_name(user) or not is_valid_name(args.session):
        raise UsageError("USER and --session: 1-64 of A-Z a-z 0-9 _ -")
    if user in app.hosts:
        raise UsageError(f"{user!r} is a host of {app.app_id!r}; invite guests only")
    if not 1 <= args.uses <= MAX_INVITE_USES:
        raise UsageError(f"--uses: must be 1 to {MAX_INVITE_USES}")
    if args.seat is not None and not 1 <= args.seat <= 16:
        raise UsageError("--seat: must be 1 to 16")
    ttl_s = parse_duration(args.ttl)
    store = open_store(config, SystemClock())
    try:
        _, code = store.create(
            app=app.client_id,
            session=args.session,
            username=user,
            seat=args.seat,
            ttl_s=ttl_s,
            uses=args.uses,
        )
    except TooManyInvites as exc:
        raise UsageError(f"too many live invites for {app.app_id!r}; revoke some first") from exc
    finally:
        store.close()
    print(join_link(config.public_url, code), flush=True)
    print(
        f"invite for {user!r} in session {args.session!r} of {app.app_id!r}: {args.uses} use(s), "
        f"valid {describe_duration(ttl_s)}",
        file=sys.stderr,
    )
    return 0


def serve(config: RelayServiceConfig, args: argparse.Namespace) -> int:
    redactor = Redactor(config.secrets)
    configure_logging(args.log_level, redactor=redactor, json=json_logs(args))
    with needs_extra("the relay service", "relay"):
        from relay.service import serve as service  # noqa: PLC0415 (the optional extra)
    return asyncio.run(service.serve(config, redactor, args.log_level))


if __name__ == "__main__":
    sys.exit(main())
