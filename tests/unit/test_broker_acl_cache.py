"""The embedded broker's per-session cache of ACL decisions: bounded, and never outlives its ACL."""

from __future__ import annotations

from types import SimpleNamespace

from amqtt.contexts import Action

from relay.service.broker import _ACL_CACHE_ATTR, ACL_CACHE_MAX, allowed_cached
from relay.topics import acl


def test_cached_decisions_match_the_acl() -> None:
    session = SimpleNamespace()
    rules = acl("guest", "alice")
    for _ in range(2):  # the second round comes from the cache
        assert allowed_cached(session, rules, Action.PUBLISH, "coplay/s1/in/alice")
        assert not allowed_cached(session, rules, Action.PUBLISH, "coplay/s1/in/bob")
        assert allowed_cached(session, rules, Action.RECEIVE, "coplay/s1/out/alice")
        assert not allowed_cached(session, rules, Action.RECEIVE, "coplay/s1/out/bob")


def test_a_client_publishing_to_endless_topics_cannot_grow_the_cache() -> None:
    """A stranger may publish to as many denied topics as it likes: the cache stays bounded."""
    session = SimpleNamespace()
    rules = acl("guest", "mallory")
    for i in range(ACL_CACHE_MAX * 20):
        assert not allowed_cached(session, rules, Action.PUBLISH, f"coplay/s1/in/victim{i}")
        assert len(getattr(session, _ACL_CACHE_ATTR)[1]) <= ACL_CACHE_MAX
    assert allowed_cached(session, rules, Action.PUBLISH, "coplay/s1/in/mallory")


def test_a_new_acl_on_the_session_is_not_answered_from_the_old_cache() -> None:
    """A reconnect with another token pins a new ACL: what the old one allowed is asked again."""
    session = SimpleNamespace()
    host = acl("host", "streamer", session="friday")
    assert allowed_cached(session, host, Action.PUBLISH, "coplay/friday/out/alice")
    guest = acl("guest", "streamer")
    assert not allowed_cached(session, guest, Action.PUBLISH, "coplay/friday/out/alice")
