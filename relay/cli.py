"""``coplay-relay``: the self-hosted token API and embedded broker."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from relay.config import load_relay_config
from relay.entry import base_parser, config_path, run

PROG = "coplay-relay"


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(
        PROG, "The coplay relay: token API and embedded MQTT broker.", "relay.toml"
    )
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    args = parser.parse_args(argv)

    def go() -> int:
        config = load_relay_config(config_path(args, "relay.toml"))
        if args.check:
            print(f"{config.path}: ok")
        return 0

    return run(PROG, go)


if __name__ == "__main__":
    sys.exit(main())
