"""``coplay-host``: the streamer's daemon."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from relay.config import check_sink, load_host_config
from relay.entry import base_parser, config_path, run
from relay.errors import ConfigError

PROG = "coplay-host"


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(PROG, "Drive a virtual controller from a remote guest's pad.", "host.toml")
    parser.add_argument("--sink", metavar="SINK", help="uinput | log | jsonl:PATH | null")
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    args = parser.parse_args(argv)

    def go() -> int:
        config = load_host_config(config_path(args, "host.toml"))
        if args.sink is not None:
            try:
                check_sink(args.sink)
            except ValueError as exc:
                raise ConfigError(f"--sink: {exc}") from None
        if args.check:
            print(f"{config.path}: ok")
            return 0
        return 0

    return run(PROG, go)


if __name__ == "__main__":
    sys.exit(main())
