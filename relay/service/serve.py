"""``coplay-relay serve``: the token API (uvicorn) and the broker (amqtt) in one asyncio loop.

Start-up binds the broker's listeners and the API socket first, so a port in
use is one clear error (exit 78) rather than a traceback; then logs
``relay_ready`` with the listen addresses. SIGTERM or SIGINT stops the API,
then the broker, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import socket
from collections.abc import Generator
from typing import Any

import structlog
import uvicorn
from amqtt.errors import BrokerError

from relay.clock import SystemClock
from relay.configfile import parse_listen
from relay.errors import ConfigError
from relay.logs import Redactor
from relay.secrets import Secret
from relay.service.api import create_app
from relay.service.broker import create_broker, disconnect_revoked
from relay.service.claims import TokenIssuer
from relay.service.config import RelayServiceConfig
from relay.service.invite_store import open_store
from relay.service.invites import InviteService, invite_routes, public_addresses
from relay.service.joinpage import JoinPage
from relay.service.limits import ensure_open_files, report_status
from relay.service.ratelimit import RateLimiter, proxy_networks
from relay.service.token_service import TokenService


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling (we own SIGTERM/SIGINT) and with a ready event."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


def jwt_secret(config: RelayServiceConfig, log: Any) -> Secret:
    """The configured secret, or a throwaway one when ``ephemeral_secret = true``."""
    if config.jwt_secret:
        return config.jwt_secret
    log.warning(
        "ephemeral_jwt_secret",
        note="tokens stop working when this process exits; set jwt_secret for a real relay",
    )
    return Secret(secrets.token_urlsafe(48))


def quiet_libraries(level: str) -> None:
    """amqtt and uvicorn are chatty at INFO; keep them to warnings unless debugging."""
    noisy = logging.DEBUG if level == "debug" else logging.ERROR
    for name in ("amqtt", "transitions", "websockets"):
        logging.getLogger(name).setLevel(noisy)
    logging.getLogger("uvicorn").setLevel(logging.WARNING)


def _bind(listen: str, field: str, config: RelayServiceConfig) -> socket.socket:
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"{config.path}: $.server.{field}: cannot listen on {listen}: {exc.strerror or exc}"
        ) from exc
    sock.set_inheritable(True)
    return sock


async def serve(config: RelayServiceConfig, redactor: Redactor, log_level: str = "info") -> int:
    """Run until SIGTERM/SIGINT; returns the exit code (0)."""
    log = structlog.get_logger("relay")
    quiet_libraries(log_level)
    server = config.server
    secret = jwt_secret(config, log)
    redactor.add(secret)
    clock = SystemClock()
    issuer = TokenIssuer(secret, clock=clock, prefix=config.apps[0].topic_prefix)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    ensure_open_files(server.max_connections, log)
    api_sock = _bind(server.api_listen, "api_listen", config)
    store = open_store(config, clock)
    broker = create_broker(server, issuer, log, grants=store)
    try:
        await broker.start()
    except BrokerError as exc:
        api_sock.close()
        store.close()
        cause = exc.__cause__
        why = (cause.strerror if isinstance(cause, OSError) else None) or str(cause or exc)
        raise ConfigError(
            f"{config.path}: $.server: the broker cannot listen on "
            f"{server.mqtt_listen}{' / ' + server.ws_listen if server.ws_listen else ''}: {why}"
        ) from exc

    service = TokenService(
        config.apps,
        issuer,
        server.max_token_s,
        log,
        invites=store,
        guest_token_s=server.guest_token_s,
        min_token_s=server.min_token_s,
    )
    broker_url, ws_url = public_addresses(config)
    wildcard = ("0.0.0.0", "::", "")  # noqa: S104 (compared with, not bound to)
    if not server.public_url and parse_listen(server.api_listen)[0] in wildcard:
        log.warning(
            "public_url_unset",
            note="join links will point at a wildcard address; set [server] public_url "
            "to the address friends reach",
        )
    page = JoinPage(ws_url)
    invites = InviteService(
        config.apps,
        issuer,
        store,
        public_url=config.public_url,
        broker_url=broker_url,
        ws_url=ws_url,
        log=log,
        redact=redactor.add,
        on_revoke=lambda grants: disconnect_revoked(broker, tuple(grants)),
    )
    app = create_app(
        service,
        RateLimiter(server.rate_limit_per_min),
        log,
        proxy_networks(server.trusted_proxies),
        extra_routes=lambda strict: [*invite_routes(invites, strict), *page.handlers()],
    )
    uv_config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
        proxy_headers=False,  # X-Forwarded-For only from trusted_proxies (relay.service.ratelimit)
        ssl_certfile=server.tls_cert or None,
        ssl_keyfile=server.tls_key or None,
        timeout_graceful_shutdown=3,
    )
    api = _Uvicorn(uv_config)
    api_task = asyncio.create_task(api.serve(sockets=[api_sock]))
    status_task = asyncio.create_task(
        report_status(broker.coplay_stats, server.status_interval_s, log)
    )
    ready_task = asyncio.create_task(api.ready.wait())
    stop_task = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({api_task, ready_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if api.ready.is_set() and not api_task.done():
            scheme = "https" if server.tls_cert else "http"
            mqtt_scheme = "mqtts" if server.tls_cert else "mqtt"
            ws_scheme = "wss" if server.tls_cert else "ws"
            log.info(
                "relay_ready",
                api=f"{scheme}://{server.api_listen}",
                mqtt=f"{mqtt_scheme}://{server.mqtt_listen}",
                ws=f"{ws_scheme}://{server.ws_listen}" if server.ws_listen else None,
                join=f"{config.public_url}/join",
                apps=len(config.apps),
            )
            await asyncio.wait({api_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        log.info("relay_stopping", **broker.coplay_stats.snapshot())
        status_task.cancel()
        api.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(api_task, timeout=5)
        for task in (ready_task, stop_task):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(broker.shutdown(), timeout=5)
        api_sock.close()
        store.close()
        log.info("relay_stopped")
    if api_task.done() and not api_task.cancelled() and api_task.exception() is not None:
        raise ConfigError(f"{config.path}: the token API stopped: {api_task.exception()}")
    return 0
