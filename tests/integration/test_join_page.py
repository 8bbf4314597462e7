"""``GET /join`` and its assets from a real relay: headers, versioned URLs, no other origin."""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import resources

import httpx

from relay.service.joinpage import ASSET_MAX_AGE_S
from tests.support.relay_service import RelayService


def csp(reply: httpx.Response) -> dict[str, str]:
    parts = (p.strip() for p in reply.headers["content-security-policy"].split(";"))
    return {k: v for k, _, v in (p.partition(" ") for p in parts if p)}


def test_page_is_never_cached_and_allows_only_self_and_the_broker(
    relay_service: RelayService,
) -> None:
    reply = httpx.get(f"{relay_service.api_url}/join", timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/html")
    assert reply.headers["cache-control"] == "no-cache"
    policy = csp(reply)
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == policy["style-src"] == policy["img-src"] == "'self'"
    assert policy["connect-src"] == f"'self' {relay_service.ws_url}/mqtt"
    assert policy["frame-ancestors"] == "'none'"
    assert reply.headers["x-content-type-options"] == "nosniff"


def test_without_a_websocket_listener_only_self(
    relay_service_factory: Callable[..., RelayService],
) -> None:
    relay = relay_service_factory(ws=False)
    reply = httpx.get(f"{relay.api_url}/join", timeout=10)
    assert csp(reply)["connect-src"] == "'self'"


def test_assets_are_versioned_by_content_and_cached_long(relay_service: RelayService) -> None:
    page = httpx.get(f"{relay_service.api_url}/join", timeout=10).text
    urls = re.findall(r'(?:src|href)="([^"]+)"', page)
    web = resources.files("relay.service") / "web"
    names = set()
    for url in urls:
        assert url.startswith("/join/a/"), url  # same origin, versioned
        digest, name = url.removeprefix("/join/a/").split("/", 1)
        reply = httpx.get(relay_service.api_url + url, timeout=10)
        assert reply.status_code == 200, url
        assert reply.content == (web / name).read_bytes()
        assert reply.headers["cache-control"] == f"public, max-age={ASSET_MAX_AGE_S}, immutable"
        stale = httpx.get(f"{relay_service.api_url}/join/a/{'0' * len(digest)}/{name}", timeout=10)
        assert stale.status_code == 404  # an old URL never serves new content
        names.add(name)
    assert {"join.js", "vendor/mqtt.min.js", "vendor/msgpack.min.js", "pad.svg"} <= names


def test_only_the_listed_files_are_served(relay_service: RelayService) -> None:
    """No path escapes web/: the relay's own sources and config are not files of the page."""
    for name in ("../joinpage.py", "join.html", "vendor/manifest.json", "../../config.py"):
        reply = httpx.get(f"{relay_service.api_url}/join/a/0123456789abcdef/{name}", timeout=10)
        assert reply.status_code == 404, name
