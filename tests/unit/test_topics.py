"""Topic names, name validation, the ACL rules as data, and MQTT filter matching."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.topics import (
    Acl,
    Direction,
    ParsedTopic,
    Topics,
    acl,
    filter_covers,
    is_valid_name,
    is_valid_prefix,
    mosquitto_acl,
    parse,
    topic_matches,
)

BAD_NAMES = [
    "",
    "a/b",
    "+",
    "#",
    "a+",
    "a#",
    "al ice",
    "x" * 65,
    "é",
    "a.b",
    "$SYS",
    "a\n",
    "a\x00",
]
GOOD_NAMES = ["a", "alice", "A-Z_0-9", "x" * 64, "-", "_", "0"]

names = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z")


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_names(name: str) -> None:
    assert is_valid_name(name)


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_bad_names(name: str) -> None:
    assert not is_valid_name(name)


@pytest.mark.parametrize("prefix", ["coplay", "a/b", "a/b/c/d", "t0123abc"])
def test_good_prefixes(prefix: str) -> None:
    assert is_valid_prefix(prefix)


@pytest.mark.parametrize("prefix", ["", "/a", "a/", "a//b", "a/+", "#", "a/b/c/d/e", "a b"])
def test_bad_prefixes(prefix: str) -> None:
    assert not is_valid_prefix(prefix)


# ---------------------------------------------------------------- the three forms


def test_builds_the_three_forms() -> None:
    topics = Topics("coplay", "friday")
    assert topics.input("alice") == "coplay/friday/in/alice"
    assert topics.output("alice") == "coplay/friday/out/alice"
    assert topics.host == "coplay/friday/host"
    assert topics.inputs == "coplay/friday/in/+"


def test_multi_level_prefix() -> None:
    topics = Topics("org/coplay", "s1")
    assert topics.input("bob") == "org/coplay/s1/in/bob"
    assert parse("org/coplay", topics.input("bob")) == ParsedTopic("s1", Direction.IN, "bob")


@pytest.mark.parametrize("session", BAD_NAMES, ids=repr)
def test_invalid_session_is_rejected(session: str) -> None:
    with pytest.raises(ValueError, match="session"):
        Topics("coplay", session)


@pytest.mark.parametrize("prefix", ["", "a/+", "#", "a//b"])
def test_invalid_prefix_is_rejected(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        Topics(prefix, "friday")


@pytest.mark.parametrize("user", BAD_NAMES, ids=repr)
def test_invalid_user_is_rejected(user: str) -> None:
    topics = Topics("coplay", "friday")
    with pytest.raises(ValueError, match="user"):
        topics.input(user)
    with pytest.raises(ValueError, match="user"):
        topics.output(user)


@settings(max_examples=100, deadline=None)
@given(session=names, user=names)
def test_parse_inverts_build(session: str, user: str) -> None:
    topics = Topics("coplay", session)
    assert parse("coplay", topics.input(user)) == ParsedTopic(session, Direction.IN, user)
    assert parse("coplay", topics.output(user)) == ParsedTopic(session, Direction.OUT, user)
    assert parse("coplay", topics.host) == ParsedTopic(session, Direction.HOST, None)
    assert topics.input_user(topics.input(user)) == user


@pytest.mark.parametrize(
    "topic",
    [
        "other/friday/in/alice",  # another prefix
        "coplayx/friday/in/alice",
        "coplay/friday/in",  # no user
        "coplay/friday/in/",  # empty user
        "coplay/friday/in/alice/x",  # one level too many
        "coplay/friday/sideways/alice",
        "coplay/friday/host/x",
        "coplay/fri+day/in/alice",
        "coplay/friday/in/+",
        "coplay/friday/in/#",
        "coplay//in/alice",
        "coplay/friday",
        "coplay",
        "",
        "coplay/friday/in/" + "x" * 65,
    ],
)
def test_parse_rejects_what_is_not_ours(topic: str) -> None:
    assert parse("coplay", topic) is None


@pytest.mark.parametrize(
    ("topic", "user"),
    [
        ("coplay/friday/in/alice", "alice"),
        ("coplay/friday/in/bob", "bob"),
        ("coplay/friday/out/alice", None),  # not an in/ topic
        ("coplay/other/in/alice", None),  # another session
        ("coplay/friday/in/", None),
        ("coplay/friday/in/a/b", None),
        ("coplay/friday/in/a+", None),
        ("coplay/friday/in/" + "x" * 65, None),
        ("coplay/friday/in/" + "x" * 64, "x" * 64),
        ("other/friday/in/alice", None),
    ],
)
def test_input_user_trusts_only_this_sessions_in_topics(topic: str, user: str | None) -> None:
    assert Topics("coplay", "friday").input_user(topic) == user


# ---------------------------------------------------------------- ACL as data


def test_guest_acl_matches_design() -> None:
    rules = acl("guest", "alice")
    assert rules == Acl(
        pub=("coplay/+/in/alice",),
        sub=("coplay/+/out/alice", "coplay/+/host"),
    )
    assert rules.as_claim() == {
        "pub": ["coplay/+/in/alice"],
        "sub": ["coplay/+/out/alice", "coplay/+/host"],
    }


def test_guest_acl_of_an_invite_reaches_its_session_only() -> None:
    """Without a session a guest may use any; an invite's guest gets its one session."""
    assert acl("guest", "alice", "coplay", "+") == acl("guest", "alice")
    assert acl("guest", "alice", "coplay", "friday") == Acl(
        pub=("coplay/friday/in/alice",),
        sub=("coplay/friday/out/alice", "coplay/friday/host"),
    )


def test_host_acl_matches_design() -> None:
    assert acl("host", "streamer", "coplay", "friday") == Acl(
        pub=("coplay/friday/out/+", "coplay/friday/host"),
        sub=("coplay/friday/in/+",),
    )
    # tokens are issued before the session is known: any session by default
    assert acl("host", "streamer").as_claim() == {
        "pub": ["coplay/+/out/+", "coplay/+/host"],
        "sub": ["coplay/+/in/+"],
    }


def test_acl_uses_the_prefix() -> None:
    assert acl("guest", "bob", "org/x").pub == ("org/x/+/in/bob",)


@pytest.mark.parametrize("user", BAD_NAMES, ids=repr)
def test_acl_rejects_bad_usernames(user: str) -> None:
    """A username with a wildcard would widen the rule to other users' topics."""
    with pytest.raises(ValueError, match="username"):
        acl("guest", user)


@pytest.mark.parametrize("session", ["a/b", "#", "", "a+"])
def test_acl_rejects_bad_sessions(session: str) -> None:
    with pytest.raises(ValueError, match="session"):
        acl("host", "streamer", "coplay", session)


def _may_publish(rules: Acl, topic: str) -> bool:
    return any(topic_matches(f, topic) for f in rules.pub)


def _may_read(rules: Acl, topic: str) -> bool:
    return any(topic_matches(f, topic) for f in rules.sub)


def test_guest_rules_in_effect() -> None:
    """What the rules mean: a guest writes only its own in/, reads its out/ and host state."""
    alice = acl("guest", "alice")
    topics = Topics("coplay", "friday")
    assert _may_publish(alice, topics.input("alice"))
    assert not _may_publish(alice, topics.input("bob"))
    assert not _may_publish(alice, topics.output("alice"))
    assert not _may_publish(alice, topics.host)
    assert _may_read(alice, topics.output("alice"))
    assert _may_read(alice, topics.host)
    assert not _may_read(alice, topics.output("bob"))
    assert not _may_read(alice, topics.input("bob"))
    assert not any(filter_covers(f, "coplay/friday/out/+") for f in alice.sub)
    assert not any(filter_covers(f, "coplay/#") for f in alice.sub)


def test_host_rules_in_effect() -> None:
    host = acl("host", "streamer", "coplay", "friday")
    topics = Topics("coplay", "friday")
    assert any(filter_covers(f, topics.inputs) for f in host.sub)
    assert _may_publish(host, topics.output("alice"))
    assert _may_publish(host, topics.host)
    assert not _may_publish(host, topics.input("alice"))  # cannot pose as a guest
    assert not _may_publish(host, Topics("coplay", "other").host)


# ---------------------------------------------------------------- filter matching


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("a/b/c", "a/b", False),
        ("a/+", "a/b", True),
        ("a/+", "a/", True),  # + matches an empty level
        ("a/+", "a", False),
        ("a/+", "a/b/c", False),
        ("+/+", "a/b", True),
        ("+", "a", True),
        ("+", "a/b", False),
        ("a/#", "a", True),  # # also matches the parent level
        ("a/#", "a/b/c", True),
        ("a/#", "b/c", False),
        ("#", "a/b/c", True),
        ("#", "", True),
        ("a/+/c", "a//c", True),
        ("#", "$SYS/broker", False),  # wildcards never match $ topics at the first level
        ("+/broker", "$SYS/broker", False),
        ("$SYS/#", "$SYS/broker", True),
        ("A/b", "a/b", False),  # case matters
        ("a/b/", "a/b", False),
        ("/a", "/a", True),
        ("+/a", "/a", True),
    ],
)
def test_topic_matches(topic_filter: str, topic: str, matches: bool) -> None:
    assert topic_matches(topic_filter, topic) is matches


@pytest.mark.parametrize(
    ("allowed", "requested", "covers"),
    [
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/+/c", True),
        ("a/b/c", "a/+/c", False),  # asks for more than allowed
        ("a/+", "a/#", False),
        ("a/#", "a/#", True),
        ("a/#", "a/b/#", True),
        ("a/#", "a", True),
        ("a/#", "a/+/+", True),
        ("#", "#", True),
        ("#", "a/#", True),
        ("a/+", "a/b/c", False),
        ("a/+/c", "a/b", False),
        ("a/b", "a/b/c", False),
        ("coplay/+/out/alice", "coplay/+/out/+", False),
        ("coplay/+/out/alice", "coplay/friday/out/alice", True),
        ("+/x", "$SYS/x", False),
        ("#", "$SYS/#", False),
    ],
)
def test_filter_covers(allowed: str, requested: str, covers: bool) -> None:
    assert filter_covers(allowed, requested) is covers


topic_levels = st.lists(st.sampled_from(["a", "b", "c", ""]), min_size=1, max_size=4)
filter_levels = st.lists(st.sampled_from(["a", "b", "+", ""]), min_size=1, max_size=4)


@settings(max_examples=200, deadline=None)
@given(allowed=filter_levels, requested=filter_levels, topic=topic_levels)
def test_covers_implies_matching(
    allowed: list[str], requested: list[str], topic: list[str]
) -> None:
    """If allowed covers requested, every topic requested matches is matched by allowed."""
    a, r, t = "/".join(allowed), "/".join(requested), "/".join(topic)
    if filter_covers(a, r) and topic_matches(r, t):
        assert topic_matches(a, t)


# ---------------------------------------------------------------- Mosquitto ACL file


def test_mosquitto_acl_file() -> None:
    text = mosquitto_acl(["streamer", "tv"], prefix="coplay")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines == [
        "pattern write coplay/+/in/%u",
        "pattern read coplay/+/out/%u",
        "pattern read coplay/+/host",
        "user streamer",
        "topic write coplay/+/out/+",
        "topic write coplay/+/host",
        "topic read coplay/+/in/+",
        "user tv",
        "topic write coplay/+/out/+",
        "topic write coplay/+/host",
        "topic read coplay/+/in/+",
    ]
    assert text.endswith("\n")


def test_mosquitto_acl_agrees_with_acl() -> None:
    """The pattern lines are the guest rules with %u for the user."""
    text = mosquitto_acl([], prefix="p")
    guest = acl("guest", "USER", "p")
    for topic in guest.pub:
        assert f"pattern write {topic.replace('USER', '%u')}" in text
    for topic in guest.sub:
        assert f"pattern read {topic.replace('USER', '%u')}" in text
    assert "user " not in text


def test_mosquitto_acl_rejects_bad_host_names() -> None:
    with pytest.raises(ValueError, match="username"):
        mosquitto_acl(["stream er"])
