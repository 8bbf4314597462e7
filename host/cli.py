"""``coplay-host``: the streamer's daemon, and its friends' join links.

::

    coplay-host --config host.toml [--sink SINK]             run the host daemon
    coplay-host invite --config host.toml USER [--seat N] [--ttl 24h] [--uses 1]
    coplay-host revoke --config host.toml USER
    coplay-host invites --config host.toml

The daemon: :func:`serve` builds the collaborators (credentials, notifier,
clock, fault counter, sink, seat table, pad writer, link factory, intake) and
hands them to :class:`~host.daemon.HostDaemon`, which runs until SIGTERM/SIGINT.
The invite commands live in :mod:`host.invites`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

from host.daemon import HostDaemon
from host.faults import Faults
from host.intake import Intake
from host.notify import notifier_from_env
from host.parts import HostParts
from host.seats import SeatTable
from host.sinks import make_sink
from host.writer import PadWriter
from relay.clock import SystemClock
from relay.commandline import base_parser, config_path, json_logs, run
from relay.config import HostConfig, check_sink, load_host_config
from relay.errors import ConfigError, UsageError
from relay.invites import MAX_INVITE_USES, parse_duration
from relay.link import Link
from relay.linkstatus import LinkLike, Message, MessageHandler
from relay.logs import Redactor, configure_logging
from relay.permissions import permission_warnings
from relay.tokens import credential_source
from relay.topics import Topics, is_valid_name

PROG = "coplay-host"


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (the daemon then shuts down cleanly)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def serve(config: HostConfig, sink_spec: str, redactor: Redactor) -> int:
    """Build the daemon's collaborators, run it until SIGTERM/SIGINT, release them."""
    settings = config.host
    topics = Topics(config.link.topic_prefix, config.link.session)
    credentials = credential_source(config.link, redactor)
    notifier = notifier_from_env(os.environ)
    clock = SystemClock()
    faults = Faults()
    sink = make_sink(
        sink_spec,
        rumble_cap_ms=settings.rumble_cap_ms,
        device_id=config.link.device_id,
        faults=faults,
    )
    table = SeatTable(
        settings.seats,
        settings.allowed(),
        stale_s=settings.stale_ms / 1000,
        idle_s=settings.idle_s,
    )
    writer = PadWriter(table, sink, clock, faults)

    def make_link(
        *,
        on_message: MessageHandler,
        subscriptions: Sequence[tuple[str, int]],
        will: Message,
        on_connect: Callable[[], None],
    ) -> LinkLike:
        return Link(
            config.link,
            credentials,
            on_message=on_message,
            subscriptions=subscriptions,
            will=will,
            on_connect=on_connect,
        )

    parts = HostParts(writer, sink, make_link, clock, notifier, Intake(), faults)
    daemon = HostDaemon(settings, topics, parts)
    stop = threading.Event()
    try:
        with stop_on_signals(stop):
            return daemon.run(stop)
    finally:
        credentials.close()
        notifier.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(PROG, "Drive a virtual controller from a remote guest's pad.", "host.toml")
    parser.add_argument(
        "command",
        nargs="?",
        choices=("run", *INVITE_COMMANDS),
        default="run",
        help="run (default); invite USER: print a join link; revoke USER; invites: list them",
    )
    parser.add_argument("user", nargs="?", metavar="USER", help="invite/revoke: the friend")
    parser.add_argument("--sink", metavar="SINK", help="uinput | log | jsonl:PATH | null")
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    parser.add_argument("--seat", type=int, metavar="N", help="invite: the seat meant for them")
    parser.add_argument("--ttl", default="24h", help="invite: how long it lives (24h, 90m, 7d)")
    parser.add_argument("--uses", type=int, default=1, help="invite: redeems allowed (1)")
    args = parser.parse_intermixed_args(argv)

    def go() -> int:
        config = load_host_config(config_path(args, "host.toml"), persist=not args.check)
        if args.command in INVITE_COMMANDS:
            return invite_command(config, args)
        if args.user is not None:
            raise UsageError(f"unexpected argument {args.user!r}; did you mean: invite USER?")
        sink_spec = config.host.sink
        if args.sink is not None:
            try:
                sink_spec = check_sink(args.sink)
            except ValueError as exc:
                raise ConfigError(f"--sink: {exc}") from exc
        if args.check:
            for warning in permission_warnings(config.path):
                print(warning, file=sys.stderr)
            print(f"{config.path}: ok")
            return 0
        redactor = Redactor(config.link.secrets)
        configure_logging(args.log_level, redactor=redactor, json=json_logs(args))
        return serve(config, sink_spec, redactor)

    return run(PROG, go)


INVITE_COMMANDS = ("invite", "revoke", "invites")


def invite_command(config: HostConfig, args: argparse.Namespace) -> int:
    from host import invites  # noqa: PLC0415 (only these commands need it)

    command: str = args.command
    user: str | None = args.user
    if command != "invites" and (user is None or not is_valid_name(user)):
        raise UsageError(f"{command} needs USER: 1-64 of A-Z a-z 0-9 _ -")
    if command == "invites" and user is not None:
        raise UsageError("invites takes no USER")
    redactor = Redactor(config.link.secrets)
    level = args.log_level if args.log_level == "debug" else "warning"
    configure_logging(level, redactor=redactor, json=json_logs(args))
    assert user is not None or command == "invites"
    if command == "invite":
        assert user is not None
        if not 1 <= args.uses <= MAX_INVITE_USES:
            raise UsageError(f"--uses: must be 1 to {MAX_INVITE_USES}")
        if args.seat is not None and not 1 <= args.seat <= 16:
            raise UsageError("--seat: must be 1 to 16")
        return invites.invite(
            config,
            redactor,
            user,
            seat=args.seat,
            ttl_s=parse_duration(args.ttl),
            uses=args.uses,
            out=sys.stdout,
            err=sys.stderr,
        )
    if command == "revoke":
        assert user is not None
        return invites.revoke(config, redactor, user, err=sys.stderr)
    return invites.list_invites(config, redactor, out=sys.stdout, err=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
