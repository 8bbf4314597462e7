"""Real coplay-guest processes with their own virtual pads, through a real Mosquitto.

The fake host is a raw paho client logged in as ``streamer``. Each guest is
driven over stdin (see tests/support/guest_proc.py) and reports through its
JSON log.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.frames import (
    NEUTRAL,
    Button,
    Bye,
    FrameCodec,
    Hello,
    HostState,
    Input,
    Ping,
    Reject,
    RejectCode,
    Rumble,
    Welcome,
    button_mask,
)
from relay.serial32 import elapsed_us, now_us32
from relay.topics import Topics
from tests.support.guest_proc import GuestProcess, decoded, write_guest_config
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import RawClient, Received

pytestmark = pytest.mark.slow

SESSION = "s1"
codec = FrameCodec()
A = button_mask(Button.A)


class Host:
    """A fake host: subscribed to alice's in/ topic, able to answer on her out/ topic."""

    def __init__(self, client: RawClient, topics: Topics) -> None:
        self.client = client
        self.topics = topics
        client.wait_connected()
        client.subscribe(topics.input("alice"))

    def messages(self) -> list[Received]:
        return self.client.inbox.snapshot()

    def frames(self) -> list[Any]:
        return decoded(self.messages())

    def inputs(self) -> list[Input]:
        return [f for f in self.frames() if isinstance(f, Input)]

    def wait(self, predicate: Callable[[list[Any]], bool], timeout: float = 15.0) -> list[Any]:
        self.client.inbox.wait_for(lambda m: predicate(decoded(m)), timeout)
        return self.frames()

    def wait_inputs(self, n: int, timeout: float = 15.0) -> list[Input]:
        self.wait(lambda f: sum(isinstance(x, Input) for x in f) >= n, timeout)
        return self.inputs()

    def epoch(self) -> int:
        self.wait(lambda f: any(isinstance(x, Hello) for x in f))
        return next(f.epoch for f in self.frames() if isinstance(f, Hello))

    def answer(self, frame: Any, qos: int = 1) -> None:
        self.client.publish(self.topics.output("alice"), codec.encode(frame), qos=qos)


@pytest.fixture
def host(mqtt_client: Callable[..., RawClient], prefix: str) -> Host:
    return Host(mqtt_client("streamer"), Topics(prefix, SESSION))


@pytest.fixture
def start_guest(
    tmp_path: Path, mosquitto: Mosquitto, prefix: str
) -> Iterator[Callable[..., GuestProcess]]:
    started: list[GuestProcess] = []

    def start(
        broker: Mosquitto = mosquitto, password: str | None = None, **config: Any
    ) -> GuestProcess:
        path = write_guest_config(
            tmp_path / f"guest{len(started)}.toml", broker, prefix, session=SESSION, **config
        )
        guest = GuestProcess(
            path, broker.passwords["alice"] if password is None else password, tmp_path
        )
        started.append(guest)
        return guest

    yield start
    for guest in started:
        guest.close()


def status_has(**fields: Any) -> Callable[[dict[str, Any]], bool]:
    def check(event: dict[str, Any]) -> bool:
        return event.get("event") == "guest_status" and all(
            event.get(k) == v for k, v in fields.items()
        )

    return check


def after_next_keyframe(host: Host) -> Input:
    """Wait for a fresh keyframe and return it: the keyframe interval has just begun."""
    n = len(host.inputs())
    return host.wait_inputs(n + 1)[-1]


def test_press_a_is_sent_at_once_not_at_the_next_keyframe(
    host: Host, start_guest: Callable[..., GuestProcess]
) -> None:
    guest = start_guest(rate_hz=2)  # keyframes every 500 ms
    host.wait_inputs(2)
    keyframe = after_next_keyframe(host)
    pressed_at = now_us32()
    guest.send(press="A")
    inputs = host.wait(lambda f: any(isinstance(x, Input) and x.buttons & A for x in f))
    press = next(f for f in inputs if isinstance(f, Input) and f.buttons & A)
    sent_after = elapsed_us(press.t, pressed_at)
    assert sent_after is not None and sent_after < 250_000, sent_after
    since_keyframe = elapsed_us(press.t, keyframe.t)
    assert since_keyframe is not None and since_keyframe < 400_000  # not the 500 ms keyframe
    assert press.seq == keyframe.seq + 1


def test_with_pad_wake_off_the_pad_is_polled_and_a_press_still_beats_the_keyframe(
    host: Host, start_guest: Callable[..., GuestProcess]
) -> None:
    """``pad_wake = false``: no descriptor to wait on, the loop polls the pad instead."""
    guest = start_guest(rate_hz=2, extra="pad_wake = false\n")  # keyframes every 500 ms
    guest.wait_log(lambda e: e.get("event") == "pad_opened" and e.get("wake") == "poll")
    host.wait_inputs(2)
    keyframe = after_next_keyframe(host)
    guest.send(press="A")
    inputs = host.wait(lambda f: any(isinstance(x, Input) and x.buttons & A for x in f))
    press = next(f for f in inputs if isinstance(f, Input) and f.buttons & A)
    since_keyframe = elapsed_us(press.t, keyframe.t)
    assert since_keyframe is not None and since_keyframe < 400_000  # not the 500 ms keyframe
    assert press.seq == keyframe.seq + 1


def test_a_tap_between_keyframes_sends_press_and_release(
    host: Host, start_guest: Callable[..., GuestProcess]
) -> None:
    guest = start_guest(rate_hz=2)
    host.wait_inputs(2)
    keyframe = after_next_keyframe(host)
    guest.send(tap="A", ms=30)
    host.wait(lambda f: any(isinstance(x, Input) and x.seq >= keyframe.seq + 2 for x in f))
    after = [f for f in host.inputs() if f.seq > keyframe.seq][:2]
    assert [f.buttons & A for f in after] == [A, 0]
    gap = elapsed_us(after[1].t, keyframe.t)
    assert gap is not None and gap < 400_000  # both before the next keyframe was due


def test_an_idle_pad_sends_keyframes_at_rate_hz(
    host: Host, start_guest: Callable[..., GuestProcess]
) -> None:
    start_guest(rate_hz=60)
    host.wait_inputs(10)
    time.sleep(0.5)
    begin = time.monotonic_ns()
    time.sleep(2.0)
    end = time.monotonic_ns()
    arrived = [
        m
        for m in host.messages()
        if begin <= m.at_ns < end and isinstance(codec.decode(m.payload), Input)
    ]
    assert 108 <= len(arrived) <= 132, len(arrived)  # 120 +- 10 %


def test_frames_decode_with_one_epoch_and_seq_stepping_by_one(
    host: Host, start_guest: Callable[..., GuestProcess]
) -> None:
    guest = start_guest(rate_hz=30)
    epoch = host.epoch()
    for command in (
        {"press": "B"},
        {"axis": "LEFTX", "value": -32768},
        {"axis": "TRIGGERRIGHT", "value": 32767},
        {"sleep": 0.05},
        {"state": {"buttons": 0}},
    ):
        guest.send(**command)
    host.wait(lambda f: any(isinstance(x, Ping) for x in f))
    host.wait_inputs(40)
    frames = host.frames()
    assert {type(f) for f in frames} <= {Input, Hello, Ping}
    inputs = [f for f in frames if isinstance(f, Input)]
    assert {f.epoch for f in inputs} == {epoch}
    assert {f.epoch for f in frames if isinstance(f, Ping)} == {epoch}
    assert [f.seq for f in inputs] == list(range(inputs[0].seq, inputs[0].seq + len(inputs)))
    states = [f.state for f in inputs]
    assert NEUTRAL._replace(buttons=button_mask(Button.B), lx=-32768, rt=32767) in states
    neutral = [
        m
        for m, f in zip(host.messages(), frames, strict=True)
        if f == Input.of(epoch, getattr(f, "seq", 0), getattr(f, "t", 0), NEUTRAL)
    ]
    assert neutral and all(len(m.payload) <= 24 for m in neutral)  # DESIGN's size budget


def test_unplug_sends_neutral_and_replug_resumes(
    host: Host, start_guest: Callable[..., GuestProcess]
) -> None:
    guest = start_guest(rate_hz=5)
    guest.wait_log(status_has(controller="coplay virtual pad"))
    guest.send(press="B")
    host.wait(lambda f: any(isinstance(x, Input) and x.buttons for x in f))
    mark = guest.mark()
    guest.send(detach=True)
    guest.wait_log(status_has(controller="none"), since=mark)
    frames = host.wait(lambda f: bool(f) and isinstance(f[-1], Input) and f[-1].state == NEUTRAL)
    inputs = [f for f in frames if isinstance(f, Input)]
    last_held = max(i for i, f in enumerate(inputs) if f.buttons)
    assert inputs[last_held + 1].state == NEUTRAL  # the pad went neutral, not just quiet
    mark = guest.mark()
    guest.send(attach=True)
    guest.wait_log(status_has(controller="coplay virtual pad"), since=mark)
    guest.send(press="Y")
    host.wait(lambda f: any(isinstance(x, Input) and x.buttons == button_mask(Button.Y) for x in f))


def test_welcome_shows_the_seat_and_host_state_the_host(
    host: Host, start_guest: Callable[..., GuestProcess]
) -> None:
    """Welcome alone seats the guest and ends its Hellos; HostState then shows the host."""
    guest = start_guest(rate_hz=5)
    epoch = host.epoch()
    host.answer(Welcome(epoch, 2))
    welcomed_ns = time.monotonic_ns()
    seated = guest.wait_log(status_has(seat=2, state="connected"))
    assert seated["host"] == "unknown"  # the seat came from the Welcome, no HostState yet

    def pings_after_welcome(frames: list[Any]) -> bool:
        later = [m for m in host.messages() if m.at_ns > welcomed_ns]
        return sum(isinstance(codec.decode(m.payload), Ping) for m in later) >= 2

    host.wait(pings_after_welcome)  # two Ping periods: a Hello would have repeated by now
    late_hellos = [
        m
        for m in host.messages()
        if m.at_ns > welcomed_ns + 300_000_000 and isinstance(codec.decode(m.payload), Hello)
    ]
    assert late_hellos == []
    host.client.publish(
        host.topics.host, codec.encode(HostState(True, [(2, "alice")])), qos=1, retain=True
    )
    guest.wait_log(status_has(seat=2, host="online", state="connected"))
    host.client.publish(host.topics.host, b"", qos=1, retain=True)  # clear the retained state


def test_hello_repeats_every_second_until_welcome(
    host: Host, start_guest: Callable[..., GuestProcess]
) -> None:
    start_guest(rate_hz=5)
    host.wait(lambda f: sum(isinstance(x, Hello) for x in f) >= 3, timeout=20)
    hellos = [m for m in host.messages() if isinstance(codec.decode(m.payload), Hello)]
    assert all(m.qos == 1 for m in hellos)
    gaps = [(b.at_ns - a.at_ns) / 1e9 for a, b in itertools.pairwise(hellos)]
    assert all(0.7 < g < 2.0 for g in gaps), gaps


def test_a_final_reject_ends_the_guest_with_exit_75_and_the_reason(
    host: Host, start_guest: Callable[..., GuestProcess]
) -> None:
    guest = start_guest(rate_hz=5)
    epoch = host.epoch()
    host.answer(Reject(epoch, RejectCode.NOT_ALLOWED, "not on the list"))
    assert guest.wait_exit(15) == 75
    text = guest.log_text()
    assert "coplay-guest: the host rejected 'alice' (not_allowed: not on the list)" in text


def test_a_full_house_is_waited_out(host: Host, start_guest: Callable[..., GuestProcess]) -> None:
    guest = start_guest(rate_hz=5)
    epoch = host.epoch()
    host.answer(Reject(epoch, RejectCode.FULL, "all seats taken"))
    guest.wait_log(lambda e: "waiting for a seat" in str(e.get("note", "")))
    host.answer(Welcome(epoch, 3))
    guest.wait_log(status_has(seat=3, note=""))
    assert guest.proc.poll() is None


def test_rumble_from_the_host_reaches_the_virtual_pad(
    host: Host, start_guest: Callable[..., GuestProcess]
) -> None:
    guest = start_guest(rate_hz=5)
    host.epoch()
    host.answer(Rumble(1000, 40000, 100), qos=0)
    event = guest.wait_log(lambda e: e.get("event") == "virtual_rumble" and e.get("low") == 1000)
    assert event["high"] == 40000
    guest.wait_log(lambda e: e.get("event") == "virtual_rumble" and e.get("low") == 0)  # stopped


def test_sigint_sends_bye_last_and_exits_0(
    host: Host, start_guest: Callable[..., GuestProcess]
) -> None:
    guest = start_guest(rate_hz=30)
    epoch = host.epoch()
    host.wait_inputs(5)
    guest.signal(signal.SIGINT)
    assert guest.wait_exit(15) == 0
    host.wait(lambda f: any(isinstance(x, Bye) for x in f))
    time.sleep(0.3)  # anything after it would have arrived by now
    frames = host.frames()
    assert frames[-1] == Bye(epoch)
    assert sum(isinstance(f, Bye) for f in frames) == 1  # a clean leave: no Last Will too
    assert guest.password not in guest.log_text()  # secrets never in a log line


def test_sigterm_also_leaves_cleanly(host: Host, start_guest: Callable[..., GuestProcess]) -> None:
    guest = start_guest(rate_hz=30)
    epoch = host.epoch()
    guest.signal(signal.SIGTERM)
    assert guest.wait_exit(15) == 0
    assert host.wait(lambda f: any(isinstance(x, Bye) for x in f))[-1] == Bye(epoch)


def test_a_killed_guest_gets_its_last_will_bye(
    host: Host, start_guest: Callable[..., GuestProcess]
) -> None:
    guest = start_guest(rate_hz=30)
    epoch = host.epoch()
    host.wait_inputs(3)
    assert not any(isinstance(f, Bye) for f in host.frames())
    guest.signal(signal.SIGKILL)
    guest.wait_exit(10)
    frames = host.wait(lambda f: any(isinstance(x, Bye) for x in f))
    assert Bye(epoch) in frames


def test_after_a_reconnect_the_current_state_goes_out_at_once(
    tmp_path: Path,
    start_guest: Callable[..., GuestProcess],
    private_mosquitto: Mosquitto,
    prefix: str,
) -> None:
    guest = start_guest(broker=private_mosquitto, rate_hz=1)  # keyframes only every second
    first = RawClient(private_mosquitto.port, "streamer", private_mosquitto.passwords["streamer"])
    try:
        Host(first, Topics(prefix, SESSION)).wait_inputs(1)
    finally:
        first.close()
    guest.send(press="A")
    private_mosquitto.restart()
    client = RawClient(private_mosquitto.port, "streamer", private_mosquitto.passwords["streamer"])
    try:
        host = Host(client, Topics(prefix, SESSION))
        host.wait(lambda f: any(isinstance(x, Input) for x in f), timeout=30)
        messages = host.messages()
        frames = decoded(messages)
        hello = next(i for i, f in enumerate(frames) if isinstance(f, Hello))
        resent = next(f for f in frames if isinstance(f, Input))
        first_input = frames.index(resent)
        assert resent.state == NEUTRAL._replace(buttons=A)  # the held button, at once
        delay = (messages[first_input].at_ns - messages[hello].at_ns) / 1e9
        assert delay < 0.5, delay  # well before the next 1 s keyframe
    finally:
        client.close()


def test_refused_credentials_exit_77(start_guest: Callable[..., GuestProcess]) -> None:
    guest = start_guest(password="wrong-password-123")
    assert guest.wait_exit(40) == 77
    assert "wrong-password-123" not in guest.log_text()


# ---------------------------------------------------------------- scripted play (--script)


def scripted_guest(
    tmp_path: Path, mosquitto: Mosquitto, prefix: str, *args: str, source: str = "virtual"
) -> GuestProcess:
    """A guest started as a user would: ``--source ... --script ...``, no script variable."""
    path = write_guest_config(tmp_path / "scripted.toml", mosquitto, prefix, session=SESSION)
    return GuestProcess(
        path,
        mosquitto.passwords["alice"],
        tmp_path,
        args=("--source", source, *args),
        env={"COPLAY_VIRTUAL_SCRIPT": ""},
    )


def test_script_from_stdin_plays_each_line_as_it_comes_and_skips_a_bad_one(
    host: Host, tmp_path: Path, mosquitto: Mosquitto, prefix: str
) -> None:
    """``--script -``: another program plays through the guest, one JSON line at a time."""
    guest = scripted_guest(tmp_path, mosquitto, prefix, "--script", "-")
    try:
        guest.wait_log(status_has(controller="coplay virtual pad"))
        guest.send(press="NOT_A_BUTTON")
        guest.wait_log(lambda e: e.get("event") == "script_line_bad")
        guest.send(press="A")
        host.wait(lambda f: any(isinstance(x, Input) and x.buttons == A for x in f))
        guest.send(release="A")
        host.wait(lambda f: any(isinstance(x, Input) and x.buttons == 0 for x in f[-3:]))
    finally:
        guest.close()


def test_script_file_plays_once_and_the_pad_keeps_its_last_state(
    host: Host, tmp_path: Path, mosquitto: Mosquitto, prefix: str
) -> None:
    script = tmp_path / "play.jsonl"
    script.write_text(
        '# hold B and push the stick\n{"press": "B"}\n{"axis": "LEFTX", "value": 1234}\n'
    )
    guest = scripted_guest(tmp_path, mosquitto, prefix, "--script", str(script))
    try:
        want = (button_mask(Button.B), 1234)
        host.wait(lambda f: sum(isinstance(x, Input) and (x.buttons, x.lx) == want for x in f) >= 3)
        assert all((i.buttons, i.lx) == want for i in host.inputs()[-3:])  # keyframes hold it
    finally:
        guest.close()


def test_a_bad_script_file_is_a_config_error_naming_the_line(
    tmp_path: Path, mosquitto: Mosquitto, prefix: str
) -> None:
    script = tmp_path / "bad.jsonl"
    script.write_text('{"press": "A"}\n{"tap": "NOPE"}\n')
    guest = scripted_guest(tmp_path, mosquitto, prefix, "--script", str(script))
    try:
        assert guest.wait_exit() == 78
        assert f"{script}:2" in guest.log_text()
    finally:
        guest.close()


def test_script_without_the_virtual_source_is_a_usage_error(
    tmp_path: Path, mosquitto: Mosquitto, prefix: str
) -> None:
    guest = scripted_guest(tmp_path, mosquitto, prefix, "--script", "-", source="auto")
    try:
        assert guest.wait_exit() == 2
        assert "--source virtual" in guest.log_text()
    finally:
        guest.close()
