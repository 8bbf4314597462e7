"""Who is asking the token API: forwarded headers count only from trusted proxies."""

from __future__ import annotations

import msgspec
import pytest

from relay.service.config import ServerSection
from relay.service.ratelimit import client_address, failure_keys, proxy_networks

PROXIES = proxy_networks(["127.0.0.1", "10.0.0.0/8"])


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address("127.0.0.1", "203.0.113.9", ()) == "127.0.0.1"
    assert client_address("198.51.100.1", "203.0.113.9", PROXIES) == "198.51.100.1"


def test_behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() -> None:
    assert client_address("127.0.0.1", "203.0.113.9", PROXIES) == "203.0.113.9"
    assert client_address("127.0.0.1", "1.2.3.4, 203.0.113.9, 10.1.2.3", PROXIES) == "203.0.113.9"
    assert client_address("127.0.0.1", "10.9.9.9", PROXIES) == "10.9.9.9"
    assert client_address("127.0.0.1", None, PROXIES) == "127.0.0.1"


def test_failures_are_keyed_per_address_and_per_address_and_app() -> None:
    assert failure_keys("1.2.3.4", "app") == ("fail:1.2.3.4", "fail:1.2.3.4:app")
    assert failure_keys("1.2.3.4", None) == ("fail:1.2.3.4",)


def test_a_bad_trusted_proxy_is_a_config_error_naming_the_entry() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"trusted_proxies\[1\]"):
        msgspec.convert({"trusted_proxies": ["::1", "nginx"]}, ServerSection)
