"""The browser guest in Debian's headless Chromium against a real relay and a real host.

Each test gets its own relay (token API, embedded broker with its WebSocket
listener), its own host with a jsonl sink, and a tab in the module's one
browser. The page is opened with a join link, exactly as a friend would; the
only double is ``navigator.getGamepads`` (tests/support/gamepad_double.js).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.action_chains import ActionChains

from relay.frames import Button as B
from relay.frames import Bye, FrameCodec, Hello, Input, PadState, Ping, Rumble, button_mask
from tests.support.browser import INSECURE_HOST, Browser, Tab, browser_fixture  # noqa: F401
from tests.support.join import JoinLinks
from tests.support.mqtt import RawClient
from tests.support.relay_service import RelayService
from tests.support.stack import Stack, StackHost

pytestmark = pytest.mark.slow
SESSION = "s1"
KEPT_SECRETS = (
    "return Object.keys(localStorage).filter(k => k.startsWith('coplay.grant.'))"
    ".map(k => JSON.parse(localStorage.getItem(k)).grant.appClientSecret)"
)
SCREENSHOT_ENV = "COPLAY_SCREENSHOT_DIR"  # set it to keep the screenshot (README's is from here)

# W3C standard-mapping button index -> the SDL button DESIGN maps it to
STANDARD_TO_SDL = {
    0: B.A, 1: B.B, 2: B.X, 3: B.Y, 4: B.LEFTSHOULDER, 5: B.RIGHTSHOULDER, 8: B.BACK,
    9: B.START, 10: B.LEFTSTICK, 11: B.RIGHTSTICK, 12: B.DPAD_UP, 13: B.DPAD_DOWN,
    14: B.DPAD_LEFT, 15: B.DPAD_RIGHT, 16: B.GUIDE,
}  # fmt: skip


class Play:
    """One test's relay, host, join links and browser tab."""

    def __init__(self, stack: Stack, browser: Browser, host: bool = True) -> None:
        self.stack = stack
        self.browser = browser
        self.relay: RelayService = stack.relay()
        self.links = JoinLinks(self.relay, stack, SESSION)
        self.tabs: list[Tab] = []
        self.spies: list[RawClient] = []
        if host:
            self.start_host()

    def start_host(self, **fields: Any) -> StackHost:
        self.host: StackHost = self.stack.host(self.relay, session=SESSION, **fields)
        self.host.wait_ready()
        return self.host

    def open(self, user: str = "alice", link: str | None = None) -> Tab:
        tab = self.links.open(self.browser, link or self.links.create(user))
        self.tabs.append(tab)
        return tab

    def seated(self, user: str = "alice", plug: bool = True, link: str | None = None) -> Tab:
        tab = self.open(user, link)
        if plug:
            tab.js("window.__pad.plug()")
        tab.wait(lambda s: s.get("seat") == 2, what="seat 2")
        kept = tab.js(KEPT_SECRETS)  # the redeemed credential, kept by the page
        assert kept and all(kept)
        for secret in kept:  # for the log scan (test_zz_no_secrets_in_logs)
            self.stack.ledger.secret("a browser friend's credential", secret)
        return tab

    def spy(self, topic: str) -> RawClient:
        """A raw MQTT client (host role) on the relay's broker, subscribed to ``topic``."""
        device = f"spy{len(self.spies)}"
        client = RawClient(
            self.relay.mqtt_port,
            "streamer",
            self.relay.user_token("streamer", device),
            client_id=self.relay.cid(device),
        )
        self.spies.append(client)
        client.wait_connected()
        if topic:
            client.subscribe(topic, qos=0)
        return client

    def close(self) -> None:
        for client in self.spies:
            client.close()
        for tab in self.tabs:
            tab.close()


@pytest.fixture
def play(stack: Stack, browser: Browser, request: pytest.FixtureRequest) -> Iterator[Play]:
    made = Play(stack, browser, host="no_host" not in request.keywords)
    try:
        yield made
    finally:
        made.close()


def inputs(host: StackHost, after: int = 0, **match: Any) -> list[dict[str, Any]]:
    return host.wait_lines("input", after=after, **match)


# ------------------------------------------------------------------ pad -> host


def test_pad_press_stick_and_trigger_reach_the_host_as_design_maps_them(play: Play) -> None:
    """A pressed, left stick half right and up, RT pulled -> that state on the host's pad."""
    tab = play.seated()
    tab.pad((0,), [0.5, -1.0, 0, 0], b7=1.0)
    line = inputs(play.host, buttons=button_mask(B.A))[0]
    assert line["axes"] == [16384, -32768, 0, 0, 0, 32767]
    assert line["user"] == "alice"
    tab.wait(lambda s: s["sent"]["buttons"] == 1, what="the pad shown")
    deadline = time.monotonic() + 10  # the picture loads and redraws on animation frames
    lit: list[str] = []
    while "btn-0" not in lit and time.monotonic() < deadline:
        lit = tab.js("return [...document.querySelectorAll('#pad .lit')].map(e => e.id)")
        time.sleep(0.02)
    assert "btn-0" in lit
    if os.environ.get(SCREENSHOT_ENV):
        tab.wait(lambda s: s["stats"]["pongs"] >= 3, what="round trips")
        tab.screenshot(Path(os.environ[SCREENSHOT_ENV]) / "browser-guest.png")
    tab.pad((), [0, 0, 0, 0], b6=0.5)
    line = inputs(play.host, buttons=0, axes=[0, 0, 0, 0, 16384, 0])[0]
    assert line["reason"] == "input"


def test_every_standard_button_sets_its_sdl_bit(play: Play) -> None:
    """Buttons 0-16 of the standard mapping, one at a time, as DESIGN's table says."""
    tab = play.seated()
    for index, sdl in STANDARD_TO_SDL.items():
        tab.pad((index,))
        inputs(play.host, buttons=button_mask(sdl))
    tab.pad((), [-1.0, 1.0, 1.0, -0.5])
    inputs(play.host, buttons=0, axes=[-32768, 32767, 32767, -16384, 0, 0])


def test_no_pad_keyboard_plays(play: Play) -> None:
    """Without a pad the documented keys play: K is A, D pushes the left stick right, C is RT."""
    tab = play.seated(plug=False)
    assert tab.status()["controller"] == "keyboard"
    keys = ActionChains(play.browser.driver)
    keys.key_down("k").key_down("d").key_down("c").perform()
    inputs(play.host, buttons=button_mask(B.A), axes=[32767, 0, 0, 0, 0, 32767])
    keys = ActionChains(play.browser.driver)
    keys.key_up("k").key_up("d").key_up("c").key_down("\ue013").perform()  # arrow up
    inputs(play.host, buttons=button_mask(B.DPAD_UP), axes=[0, 0, 0, 0, 0, 0])
    ActionChains(play.browser.driver).key_up("\ue013").perform()


def test_pad_without_standard_mapping_is_named_on_the_page(play: Play) -> None:
    tab = play.open()
    tab.js("window.__pad.plug('')")
    tab.wait(lambda s: "coplay test pad" in s["controller"], what="the pad")
    notice = tab.text("notice")
    assert "coplay test pad" in notice and "no standard mapping" in notice


# ------------------------------------------------------------------ the bytes on the wire


def test_frames_are_the_python_guests_bytes(play: Play) -> None:
    """Hello, Input and Ping from the page, at a raw subscriber, are what relay.frames encodes."""
    spy = play.spy(f"{play.relay.topic_prefix}/{SESSION}/in/alice")
    tab = play.seated()
    tab.pad((0, 12), [0.25, -0.75, 1.0, -1.0], b6=0.01, b7=1.0)
    codec = FrameCodec()
    want = PadState(button_mask(B.A, B.DPAD_UP), 8192, -24576, 32767, -32768, 328, 32767)

    def has_state(received: list[Any]) -> bool:
        return any(
            isinstance(f := codec.decode(r.payload), Input) and f.state == want for r in received
        )

    spy.inbox.wait_for(has_state, timeout=10)
    kinds: set[type] = set()
    spy.inbox.wait_for(lambda rs: any(isinstance(codec.decode(r.payload), Ping) for r in rs), 5)
    for received in spy.inbox.snapshot():
        frame = codec.decode(received.payload)
        assert isinstance(frame, Input | Ping | Hello | Bye), received.payload
        kinds.add(type(frame))
        assert codec.encode(frame) == received.payload  # the smallest encoding, as msgspec's
        if isinstance(frame, Input) and frame.state == want:
            again = Input.of(frame.epoch, frame.seq, frame.t, want)
            assert codec.encode(again) == received.payload
    assert {Input, Ping, Hello} <= kinds


EDGES = (0, 1, 31, 127, 128, 255, 256, 32767, 65535, 65536, 2**31, 2**32 - 1)
SIGNED = (-32768, -32767, -129, -128, -33, -32, -1, 0, 1, 127, 128, 255, 256, 32767)


def test_page_encoder_uses_msgspec_integer_widths(play: Play) -> None:
    """Every integer width boundary encodes to the same bytes msgspec writes."""
    tab = play.open()
    codec = FrameCodec()
    cases = []
    for u in EDGES:
        for s in SIGNED:
            trig = max(0, min(s, 32767))
            cases.append([u, u, u, u & 0x1FFFFF, s, s, -s if s > -32768 else 0, s, trig, trig])
    got = tab.js(
        "return arguments[0].map(c => Array.from(CoplayFrames.encodeInput(c[0], c[1], c[2],"
        " {buttons: c[3], lx: c[4], ly: c[5], rx: c[6], ry: c[7], lt: c[8], rt: c[9]})))",
        cases,
    )
    for case, payload in zip(cases, got, strict=True):
        assert bytes(payload) == codec.encode(Input(*case)), case
    names = ["", "a", "é" * 31, "x" * 32, "ü" * 64, "y" * 200]
    got = tab.js(
        "return arguments[0].map(n => Array.from(CoplayFrames.encodeHello(4294967295, n, n)))",
        names,
    )
    for name, payload in zip(names, got, strict=True):
        cut = name[:64]
        assert bytes(payload) == codec.encode(Hello(2**32 - 1, 1, cut, cut)), name
    for value in EDGES:
        got = tab.js("return Array.from(CoplayFrames.encodePing(arguments[0], 7))", value)
        assert bytes(got) == codec.encode(Ping(value, 7))
        got = tab.js("return Array.from(CoplayFrames.encodeBye(arguments[0]))", value)
        assert bytes(got) == codec.encode(Bye(value))


# ------------------------------------------------------------------ host -> page


def test_rumble_reaches_the_vibration_actuator_capped(play: Play) -> None:
    """A Rumble for 60 s on the guest's out/ topic plays for at most 2 s, strong = low."""
    tab = play.seated()
    host = play.spy("")
    topic = f"{play.relay.topic_prefix}/{SESSION}/out/alice"
    host.publish(topic, b"\x9f" + b"\x00" * 600)  # over 512 bytes: dropped unread
    host.publish(topic, b"\xc1")  # not msgpack
    host.publish(topic, FrameCodec().encode(Rumble(65535, 32768, 60000)))
    tab.wait(lambda s: (s.get("lastRumble") or {}).get("played"), what="a rumble")
    effects = tab.js("return window.__pad.effects")
    assert len(effects) == 1
    assert effects[0]["type"] == "dual-rumble"
    assert effects[0]["duration"] == 2000
    assert effects[0]["strongMagnitude"] == 1
    assert effects[0]["weakMagnitude"] == pytest.approx(0.5, abs=0.001)
    status = tab.status()
    assert status["stats"]["dropped"] == 2 and status["connected"]


# ------------------------------------------------------------------ leaving, hiding, freezing


def test_closing_the_tab_says_bye_and_the_pad_goes_neutral(play: Play) -> None:
    tab = play.seated()
    tab.pad((0,))
    seen = len(inputs(play.host, buttons=1))
    count = len(play.host.lines())
    tab.close()
    line = play.host.wait_lines("bye", after=count - 1)[0]
    assert line["buttons"] == 0 and line["axes"] == [0, 0, 0, 0, 0, 0]
    assert seen


def test_hidden_tab_sends_neutral_at_once(play: Play) -> None:
    """A held A, then the friend switches tabs: an Input with nothing held (not a stale)."""
    tab = play.seated()
    tab.pad((0,), [1.0, 0, 0, 0])
    inputs(play.host, buttons=1)
    after = len(play.host.lines())
    play.browser.driver.minimize_window()
    line = play.host.wait_lines("input", after=after, buttons=0)[0]
    assert line["axes"] == [0, 0, 0, 0, 0, 0]
    assert not play.host.lines("stale")[after:]
    assert tab.status()["hidden"] is True
    play.browser.driver.set_window_size(520, 900)  # visible again: the pad plays again
    tab.wait(lambda s: not s["hidden"], what="visible")
    inputs(play.host, after=after, buttons=1)


def test_frozen_tab_goes_neutral(play: Play) -> None:
    """A tab whose scripts stall (frozen) leaves nothing held on the host's pad."""
    tab = play.seated()
    tab.pad((0,))
    inputs(play.host, buttons=1)
    after = len(play.host.lines())
    tab.cdp("Page.setWebLifecycleState", {"state": "frozen"})
    try:
        lines = play.host.jsonl.wait_for(
            lambda ls: any(x["buttons"] == 0 for x in ls[after:]), 10, play.host.alive
        )
        assert all(x["buttons"] == 0 for x in lines[after:][-1:])
    finally:
        tab.cdp("Page.setWebLifecycleState", {"state": "active"})


# ------------------------------------------------------------------ what the friend is told


def test_missing_code_says_so(play: Play) -> None:
    tab = play.open(link=f"{play.relay.api_url}/join")
    tab.wait(lambda s: s["state"] == "Stopped", what="stopped")
    assert "part after # is missing" in tab.text("problem")


def test_host_offline_is_said_in_words(play: Play) -> None:
    tab = play.seated()
    play.host.stop()
    tab.wait(lambda s: s["host"] == "offline", what="host offline")
    assert "host is offline" in tab.text("problem")
    assert tab.text("host") == "offline"


def test_secure_context_is_required(play: Play) -> None:
    """The same page on a non-local http:// name is not a secure context: one sentence."""
    link = play.links.create("alice").replace("127.0.0.1", INSECURE_HOST)
    tab = play.open(link=link)
    tab.wait(lambda s: s["state"] == "Stopped", what="stopped")
    assert "not in a secure context" in tab.text("problem")


def test_crashed_tab_leaves_by_its_last_will(play: Play) -> None:
    """A renderer that dies without a word: the broker's Last Will (Bye) frees the pad at once."""
    tab = play.seated()
    tab.pad((0,))
    inputs(play.host, buttons=1)
    count = len(play.host.lines())
    with contextlib.suppress(WebDriverException):  # the page is gone before it can answer
        tab.cdp("Page.crash")
    line = play.host.wait_lines("bye", after=count - 1)[0]
    assert line["buttons"] == 0


# ------------------------------------------------------------------ invites


def test_used_up_link_says_so(play: Play) -> None:
    link = play.links.create("alice", uses=1)
    assert play.relay.redeem(link.partition("#")[2]).status_code == 200  # someone else used it
    tab = play.open(link=link)
    tab.wait(lambda s: s["state"] == "Stopped", what="stopped")
    assert tab.text("problem") == (
        "This join link is used up, expired or revoked: ask the streamer for a new one."
    )


def test_reload_keeps_the_redeemed_grant(play: Play) -> None:
    """A one-use link still plays after a reload: the page kept what it redeemed."""
    tab = play.seated(link=play.links.create("alice", uses=1))
    before = tab.status()
    assert before["clientId"].startswith("web-") and before["clientId"].endswith("@coplay")
    play.browser.driver.refresh()
    tab.js("window.__pad.plug()")
    after = tab.wait(lambda s: s.get("seat") == 2, what="seat 2 again")
    assert after["clientId"] == before["clientId"]  # the same device: a stable MQTT client id
    assert after["epoch"] != before["epoch"]  # a new guest process, as far as the host knows
    tab.pad((1,))
    inputs(play.host, buttons=button_mask(B.B))


def test_revoked_link_page_says_so(play: Play) -> None:
    """The streamer revokes the friend: the broker drops the page, which says why and stops."""
    tab = play.seated()
    play.links.revoke("alice")
    tab.wait(lambda s: s["state"] == "Stopped", what="stopped", timeout=30)
    assert "revoked" in tab.text("problem")
    assert not tab.status()["connected"]


def test_broker_gone_is_said_and_the_page_comes_back(play: Play) -> None:
    """The relay restarts: the page says it cannot reach the broker, then plays again."""
    tab = play.seated()
    play.relay.stop()
    tab.wait(lambda s: not s["connected"] and "retrying" in s["problem"], what="unreachable")
    assert "Cannot reach the relay" in tab.text("problem")
    play.relay.start()
    tab.wait(lambda s: s.get("seat") == 2, timeout=40, what="seated again")
    tab.pad((3,))
    inputs(play.host, buttons=button_mask(B.Y), timeout=20)


@pytest.mark.no_host
def test_hello_until_welcome(play: Play) -> None:
    """No host yet: Hello again every second; a host comes: Welcome, and the Hellos stop."""
    spy = play.spy(f"{play.relay.topic_prefix}/{SESSION}/in/alice")
    codec = FrameCodec()

    def hellos() -> list[Hello]:
        found = (codec.decode(r.payload) for r in spy.inbox.snapshot())
        return [f for f in found if isinstance(f, Hello)]

    tab = play.open()
    spy.inbox.wait_for(lambda _: len(hellos()) >= 2, timeout=10)
    assert tab.status()["seat"] is None
    assert {h.epoch for h in hellos()} == {tab.status()["epoch"]}
    assert hellos()[0].name == "alice" and hellos()[0].proto == 1
    play.start_host()
    tab.wait(lambda s: s.get("seat") == 2, what="seat 2")
    seated_with = len(hellos())

    def pings(received: list[Any]) -> int:
        return sum(isinstance(codec.decode(r.payload), Ping) for r in received)

    then = pings(spy.inbox.snapshot())
    spy.inbox.wait_for(lambda rs: pings(rs) >= then + 3, timeout=10)  # three seconds on
    assert len(hellos()) <= seated_with + 1  # one may have crossed the Welcome


@pytest.mark.no_host
def test_not_allowed_is_said_and_nothing_reaches_the_pad(play: Play) -> None:
    play.start_host(allow=("bob",))
    tab = play.open("alice")
    tab.js("window.__pad.plug()")
    tab.wait(lambda s: s["state"] == "Stopped", what="stopped")
    assert tab.text("problem").startswith("The host does not let alice play")
    assert not play.host.lines("input")
