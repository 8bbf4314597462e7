"""A real host and real guests whose ``broker_url`` is a list of a cluster's nodes.

They are the e2e suite's :class:`~tests.support.stack.StackHost` and
:class:`~tests.support.stack.StackGuest` (token flow against a relay), with the
``broker_url`` of their config's ``[relay]`` table a TOML list, and
``subscribe_qos = 0`` as README advises for a NATS cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.relay_service import RelayService
from tests.support.stack import LOG_LEVEL, StackGuest, StackHost, guest_config


def listed(urls: Sequence[str]) -> dict[str, Any]:
    """The ``[relay]`` keys of a client of a cluster: every node, QoS 0 subscriptions."""
    return {"broker_url": list(urls), "subscribe_qos": 0}


@dataclass
class ClusterHost(StackHost):
    """A token-flow host whose config lists ``broker_urls``."""

    broker_urls: tuple[str, ...] = ()

    def relay_table(self) -> dict[str, Any]:
        return {**super().relay_table(), **listed(self.broker_urls)}


def cluster_host(
    workdir: Path, relay: RelayService, urls: Sequence[str], **fields: object
) -> ClusterHost:
    """A started host (as ``streamer``) on the relay's tokens and these broker URLs."""
    host = ClusterHost(
        workdir,
        broker_port=0,
        password="",
        prefix=relay.topic_prefix,
        api_url=relay.api_url,
        broker_url=urls[0],
        broker_urls=tuple(urls),
        app_client_id=relay.client_id,
        log_level=LOG_LEVEL,
        extra_env={"COPLAY_APP_CLIENT_SECRET": relay.client_secret},
        **fields,  # type: ignore[arg-type]
    )
    host.start()
    return host


def cluster_guest(
    workdir: Path, relay: RelayService, urls: Sequence[str], user: str = "alice", **fields: object
) -> StackGuest:
    """A started ``coplay-guest --source virtual`` on the relay's tokens and these broker URLs."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = guest_config(
        workdir / "guest.toml",
        relay,
        user=user,
        prefix=relay.topic_prefix,
        relay_extra=listed(urls),
        **fields,  # type: ignore[arg-type]
    )
    return StackGuest(
        config,
        "",
        workdir,
        args=("--log-level", LOG_LEVEL),
        env={"COPLAY_APP_CLIENT_SECRET": relay.client_secret},
    )
