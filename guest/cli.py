"""``coplay-guest``: the friend's client."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from relay.config import load_guest_config
from relay.entry import base_parser, config_path, run

PROG = "coplay-guest"


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(
        PROG, "Send your gamepad to a friend's stream PC as player 2.", "guest.toml"
    )
    parser.add_argument("--source", metavar="SRC", help="auto | virtual | INDEX | NAME | GUID")
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    args = parser.parse_args(argv)

    def go() -> int:
        config = load_guest_config(config_path(args, "guest.toml"))
        if args.check:
            print(f"{config.path}: ok")
        return 0

    return run(PROG, go)


if __name__ == "__main__":
    sys.exit(main())
