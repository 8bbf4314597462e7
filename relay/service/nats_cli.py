"""The ``nats-config`` and ``nats-callout`` commands of ``coplay-relay``.

``nats-config --nodes N`` prints one NATS server config per node (or writes
``n1.conf``... into ``--out-dir``); ``nats-callout`` runs the auth callout
until SIGTERM. Both need the ``relay`` and ``nats`` extras
(``pip install 'coplay[relay,nats]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from relay.clock import SystemClock
from relay.commandline import json_logs
from relay.errors import ConfigError, UsageError, needs_extra
from relay.logs import Redactor, configure_logging
from relay.service.config import RelayServiceConfig

NATS_EXTRAS = "relay,nats"  # what to install for the nats commands


def add_nats_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """Register both commands through ``coplay-relay``'s subcommand factory."""
    cfg = command("nats-config", "Print NATS server configs for a cluster behind the auth callout.")
    cfg.add_argument("--nodes", type=int, default=3, help="how many nodes (default: 3)")
    cfg.add_argument(
        "--host",
        dest="hosts",
        action="append",
        metavar="HOST",
        help="address of the nodes: once (all on one host, ports counted up) or once per node "
        "(default: 127.0.0.1)",
    )
    cfg.add_argument("--client-port", type=int, default=4222, help="NATS client port (4222)")
    cfg.add_argument("--cluster-port", type=int, default=6222, help="cluster route port (6222)")
    cfg.add_argument("--mqtt-port", type=int, default=1883, help="MQTT port (1883)")
    cfg.add_argument(
        "--ws-port", type=int, default=8083, help="MQTT over WebSocket port, 0 for none (8083)"
    )
    cfg.add_argument(
        "--store-dir", default="/var/lib/nats", help="JetStream directory, one per node below it"
    )
    cfg.add_argument(
        "--out-dir", type=Path, default=None, help="write n1.conf ... here instead of printing"
    )
    command("nats-callout", "Run the NATS cluster's auth callout: admit MQTT clients by token.")


def run_nats_command(name: str, config: RelayServiceConfig, args: argparse.Namespace) -> int:
    if name == "nats-config":
        return print_configs(config, args)
    return run_callout(config, args)


def print_configs(config: RelayServiceConfig, args: argparse.Namespace) -> int:
    with needs_extra("nats-config", "nats", NATS_EXTRAS):
        from relay.service.nats_config import cluster_configs, plan_nodes  # noqa: PLC0415
    try:
        nodes = plan_nodes(
            args.nodes,
            args.hosts or ["127.0.0.1"],
            client_port=args.client_port,
            cluster_port=args.cluster_port,
            mqtt_port=args.mqtt_port,
            ws_port=args.ws_port,
            store_dir=args.store_dir,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    try:
        texts = cluster_configs(config, nodes)
    except ValueError as exc:
        raise ConfigError(f"{config.path}: $.server.jwt_secret: {exc}") from exc
    if args.out_dir is not None:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            path = args.out_dir / f"{name}.conf"
            path.write_text(text, encoding="utf-8")
            print(path)
        return 0
    servers = ", ".join(f'"{node.client_url}"' for node in nodes)
    clients = ", ".join(f'"{node.mqtt_url}"' for node in nodes)
    sys.stdout.write(
        f"# {len(nodes)} NATS nodes; start each with: nats-server -c nN.conf\n"
        f"# relay.toml for the callout: [nats] servers = [{servers}]\n"
        f"# clients: broker_url = [{clients}], subscribe_qos = 0\n"
    )
    for name, text in texts.items():
        sys.stdout.write(f"\n# ======== {name}.conf ========\n{text}")
    return 0


def run_callout(config: RelayServiceConfig, args: argparse.Namespace) -> int:
    redactor = Redactor(config.secrets)
    configure_logging(args.log_level, redactor=redactor, json=json_logs(args))
    with needs_extra("nats-callout", "nats", NATS_EXTRAS):
        import nats  # noqa: F401, PLC0415

        from relay.service.nats_callout import serve_callout  # noqa: PLC0415 (the nats extra)
    return asyncio.run(serve_callout(config, redactor, SystemClock()))
