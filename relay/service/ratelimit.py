"""Per-client rate limiting for the token API: one token bucket per key.

A bucket holds ``per_min`` requests and refills at ``per_min / 60`` per
second, so a client may burst up to its minute's budget and then gets one
request per refill interval. :meth:`RateLimiter.take` answers how long to wait
(for ``Retry-After``) when the bucket is empty. Keys are whatever the API
chooses (client address, app client id); idle full buckets are forgotten so
memory stays bounded.

The token API spends a request only when it *failed* (a wrong secret, a bad app
token, a malformed body), keyed per client address and per address and app
(:func:`failure_keys`), so a stranger hammering wrong secrets, even from the
app's own address, runs out of their failures without locking out the right
secret: a request with valid credentials is never counted nor refused. (A
correct secret therefore still works while wrong ones get 429; the secrets are
random and long, so that answer tells a guesser nothing they can use.)

The client address is the socket's peer, unless that peer is one of
``[server] trusted_proxies`` (default none): then it is the right-most address
in ``X-Forwarded-For`` that is not a trusted proxy (:func:`client_address`).
A forwarded header from anyone else is ignored, so rotating it gains nothing.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Final

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_KEYS: Final = 10_000


class RateLimiter:
    """Token buckets keyed by client; not thread-safe (one asyncio loop uses it)."""

    def __init__(self, per_min: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_min < 1:
            raise ValueError("per_min must be at least 1")
        self._capacity = float(per_min)
        self._rate = per_min / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last update)

    def take(self, key: str) -> int | None:
        """Spend one request for ``key``: None if allowed, else whole seconds to wait."""
        now = self._clock()
        tokens, last = self._buckets.get(key, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - last) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / self._rate))
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > MAX_KEYS:
            self._prune(now)
        return None

    def _prune(self, now: float) -> None:
        full_after = self._capacity / self._rate
        for key, (_, last) in list(self._buckets.items()):
            if now - last >= full_after:
                del self._buckets[key]
        if len(self._buckets) > MAX_KEYS:  # still too many busy keys: forget the oldest half
            ordered = sorted(self._buckets.items(), key=lambda item: item[1][1])
            for key, _ in ordered[: len(ordered) // 2]:
                del self._buckets[key]


def proxy_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """``trusted_proxies`` entries (addresses or CIDR networks); ValueError names a bad one."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not an IP address or network") from exc
    return tuple(networks)


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def client_address(peer: str | None, forwarded_for: str | None, proxies: Sequence[Network]) -> str:
    """Who is asking: the peer, or behind trusted proxies the first untrusted hop."""
    address = peer or "unknown"
    if not forwarded_for or not proxies or not _trusted(address, proxies):
        return address
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop[:64]
        address = hop
    return address[:64]


def failure_keys(address: str, app: str | None) -> tuple[str, ...]:
    """The buckets a failed request spends from: its address, and its address and app."""
    keys = [f"fail:{address}"]
    if app:
        keys.append(f"fail:{address}:{app[:128]}")
    return tuple(keys)
