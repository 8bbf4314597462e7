"""The browser guest: ``GET /join`` and its assets, served from the package.

``GET /join``
    The page (``web/join.html``), never cached, with a Content-Security-Policy
    that allows scripts, styles, images and requests only from the relay itself
    plus the broker's WebSocket URL (``ws_url``), and nothing else: no
    third-party origin, no inline script, no framing.
``GET /join/a/{digest}/{name}``
    The page's assets (its script, style, pad picture and the two vendored npm
    libraries under ``web/vendor/``). ``digest`` is the first 16 hex digits of
    the file's sha256, so an asset URL names one content forever and is cached
    for a year (``immutable``); a new release changes the URL.

Everything is read once at start-up and held in memory (a few hundred kB), so
a request costs no disk access. The invite code is in the link's fragment,
which a browser never sends, so no request line or log holds it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

from litestar import Response, get
from litestar.exceptions import NotFoundException

JOIN_PATH: Final = "/join"
ASSET_PREFIX: Final = "/join/a"
DIGEST_CHARS: Final = 16
ASSET_MAX_AGE_S: Final = 365 * 86400

# files under web/ that the page may load, and their content types
ASSETS: Final = {
    "join.js": "text/javascript; charset=utf-8",
    "frames.js": "text/javascript; charset=utf-8",
    "gamepad.js": "text/javascript; charset=utf-8",
    "join.css": "text/css; charset=utf-8",
    "pad.svg": "image/svg+xml",
    "vendor/mqtt.min.js": "text/javascript; charset=utf-8",
    "vendor/msgpack.min.js": "text/javascript; charset=utf-8",
}
_PLACEHOLDER = re.compile(r"\{\{asset:([A-Za-z0-9_./-]+)\}\}")


def content_security_policy(ws_url: str) -> str:
    """Only this origin, plus the broker's WebSocket URL for connections."""
    connect = "'self'" + (f" {ws_url}" if ws_url else "")
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    digest: str


class JoinPage:
    """The page and its assets, loaded from the package once."""

    def __init__(self, ws_url: str) -> None:
        root = resources.files("relay.service") / "web"
        self.assets: dict[str, Asset] = {}
        for name, media_type in ASSETS.items():
            body = (root / name).read_bytes()
            digest = hashlib.sha256(body).hexdigest()[:DIGEST_CHARS]
            self.assets[name] = Asset(body, media_type, digest)
        template = (root / "join.html").read_text(encoding="utf-8")
        self.html = _PLACEHOLDER.sub(lambda m: self.url(m[1]), template).encode()
        self.headers = {
            "Content-Security-Policy": content_security_policy(ws_url),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cross-Origin-Opener-Policy": "same-origin",
            "Cross-Origin-Resource-Policy": "same-origin",
            "Permissions-Policy": "gamepad=(self)",
        }

    def url(self, name: str) -> str:
        """The versioned URL of asset ``name`` (KeyError for a file the page may not load)."""
        return f"{ASSET_PREFIX}/{self.assets[name].digest}/{name}"

    def handlers(self) -> list[Any]:
        """The Litestar route handlers for the page and its assets."""
        page = self

        @get(JOIN_PATH, include_in_schema=False, sync_to_thread=False)
        def join() -> Response[bytes]:
            return Response(
                page.html,
                media_type="text/html; charset=utf-8",
                headers={**page.headers, "Cache-Control": "no-cache"},
            )

        @get(f"{ASSET_PREFIX}/{{digest:str}}/{{name:path}}", include_in_schema=False,
             sync_to_thread=False)  # fmt: skip
        def asset(digest: str, name: str) -> Response[bytes]:
            found = page.assets.get(name.lstrip("/"))
            if found is None or found.digest != digest:
                raise NotFoundException("no such file")
            return Response(
                found.body,
                media_type=found.media_type,
                headers={
                    **page.headers,
                    "Cache-Control": f"public, max-age={ASSET_MAX_AGE_S}, immutable",
                },
            )

        return [join, asset]
