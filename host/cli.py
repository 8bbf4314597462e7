"""``coplay-host``: the streamer's daemon.

Builds the collaborators (config, logging with redaction, credentials, link,
sink, notifier) and runs :class:`~host.daemon.HostDaemon` until SIGTERM/SIGINT.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

from host.daemon import HostDaemon, LinkLike
from host.notify import notifier_from_env
from host.sinks import make_sink
from host.sinks.base import Sink
from relay.clock import SystemClock
from relay.config import HostConfig, check_sink, load_host_config
from relay.entry import base_parser, config_path, json_logs, run
from relay.errors import ConfigError
from relay.link import Link, LinkStatus, Message, MessageHandler
from relay.logs import Redactor, configure_logging
from relay.permissions import permission_warnings
from relay.tokens import credential_source
from relay.topics import Topics

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
    topics = Topics(config.link.topic_prefix, config.link.session)
    credentials = credential_source(config.link, redactor)
    notifier = notifier_from_env(os.environ)
    daemon_box: list[HostDaemon] = []

    def forward_rumble(seat: int, frame: object) -> None:
        if daemon_box:
            daemon_box[0].on_rumble(seat, frame)  # type: ignore[arg-type]

    def make_link(
        *,
        on_message: MessageHandler,
        subscriptions: Sequence[tuple[str, int]],
        will: Message,
        on_connect: Callable[[], None],
        on_status: Callable[[LinkStatus], None],
    ) -> LinkLike:
        return Link(
            config.link,
            credentials,
            on_message=on_message,
            subscriptions=subscriptions,
            will=will,
            on_connect=on_connect,
            on_status=on_status,
        )

    sink: Sink = make_sink(
        sink_spec, on_rumble=forward_rumble, rumble_cap_ms=config.host.rumble_cap_ms
    )
    daemon = HostDaemon(config.host, topics, sink, make_link, SystemClock(), notifier)
    daemon_box.append(daemon)
    stop = threading.Event()
    try:
        with stop_on_signals(stop):
            return daemon.run(stop)
    finally:
        credentials.close()
        notifier.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(PROG, "Drive a virtual controller from a remote guest's pad.", "host.toml")
    parser.add_argument("--sink", metavar="SINK", help="uinput | log | jsonl:PATH | null")
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    args = parser.parse_args(argv)

    def go() -> int:
        config = load_host_config(config_path(args, "host.toml"))
        sink_spec = config.host.sink
        if args.sink is not None:
            try:
                sink_spec = check_sink(args.sink)
            except ValueError as exc:
                raise ConfigError(f"--sink: {exc}") from None
        if args.check:
            for warning in permission_warnings(config.path):
                print(warning, file=sys.stderr)
            print(f"{config.path}: ok")
            return 0
        redactor = Redactor(config.link.secrets)
        configure_logging(args.log_level, redactor=redactor, json=json_logs(args))
        return serve(config, sink_spec, redactor)

    return run(PROG, go)


if __name__ == "__main__":
    sys.exit(main())
