"""A real GuestLoop on a thread, with every timer 100 s away: only a wake-up can make it send.

:func:`running_loop` wires a pad source to a real :class:`~guest.sender.Sender`,
:class:`~guest.session.Session` and :class:`~guest.status.StatusReporter` (a
link that is always connected and publishes nothing else) and runs the loop
until the block ends; :class:`Published` is the Input frames it sent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from guest.loop import GuestLoop
from guest.pad import PadSource
from guest.sender import Sender
from guest.session import Session
from guest.status import StatusReporter
from guest.wake import PipeWaker
from relay.errors import CoplayError
from relay.frames import FrameCodec, Input
from relay.linkstatus import LinkState, LinkStatus, Message
from relay.topics import Topics

FAR = 100.0  # seconds: no timer of the loop fires while a test runs
WAIT = 10.0


class FakeLink:
    @property
    def status(self) -> LinkStatus:
        return LinkStatus(LinkState.CONNECTED)

    @property
    def failure(self) -> CoplayError | None:
        return None

    def start(self) -> None:
        pass

    def stop(self, final: Sequence[Message] = (), timeout: float = 2.0) -> None:
        pass


class Published:
    """The Sender's publish: keeps every Input frame, and can be awaited."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.inputs: list[Input] = []
        self._codec = FrameCodec()

    def __call__(self, payload: bytes) -> bool:
        frame = self._codec.decode(payload)
        with self._cond:
            if isinstance(frame, Input):
                self.inputs.append(frame)
                self._cond.notify_all()
        return True

    def wait(self, n: int, timeout: float = WAIT) -> list[Input]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.inputs) >= n, timeout):
                raise TimeoutError(f"{n} inputs not sent in {timeout}s: {self.inputs}")
            return list(self.inputs)


@contextmanager
def running_loop(source: PadSource) -> Iterator[tuple[GuestLoop, Published]]:
    """The loop reading ``source`` on a thread of its own, stopped (and checked) at the end."""
    published = Published()
    wakeup = PipeWaker()
    session = Session(
        Topics("t", "s"),
        "alice",
        7,
        lambda topic, payload, qos: True,
        name="alice",
        controller=lambda: source.controller_name,
        hello_interval=FAR,
        ping_interval=FAR,
        on_news=wakeup.poke,
    )
    loop = GuestLoop(
        source=source,
        sender=Sender(published, epoch=7, rate_hz=1 / FAR, max_rate_hz=500),
        session=session,
        link=FakeLink(),
        status=StatusReporter(line=None, log=lambda *a, **k: None, plain_interval=FAR),
        active_poll_s=FAR,
        idle_poll_s=FAR,
        wakeup=wakeup,
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            loop.run()
        except BaseException as exc:  # re-raised on the test's thread below
            errors.append(exc)

    thread = threading.Thread(target=run, name="guest-loop", daemon=True)
    thread.start()
    try:
        yield loop, published
    finally:
        loop.stop()  # pokes the wake-up pipe: the loop ends now, not at its 100 s timer
        thread.join(WAIT)
        wakeup.close()
    assert not thread.is_alive(), "the loop did not stop"
    if errors:
        raise errors[0]
