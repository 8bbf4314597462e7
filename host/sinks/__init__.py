"""Where applied pad states go: a virtual pad, a log, a JSON-lines file, or nowhere."""

from __future__ import annotations

from pathlib import Path

from host.sinks.base import FrameMeta, Sink
from host.sinks.uinput import RumbleCallback
from relay.config import check_sink

__all__ = ["FrameMeta", "Sink", "make_sink"]


def make_sink(
    spec: str, *, on_rumble: RumbleCallback, rumble_cap_ms: int, device_id: str = "host"
) -> Sink:
    """The sink a ``--sink``/``sink`` value names: ``uinput | log | jsonl:PATH | null``.

    ``device_id`` (the host's) gives each virtual pad a ``phys`` stable across restarts.
    """
    kind, _, arg = check_sink(spec).partition(":")
    if kind == "uinput":
        from host.sinks.uinput import UInputSink  # noqa: PLC0415

        return UInputSink(on_rumble, rumble_cap_ms, device_id)
    if kind == "log":
        from host.sinks.log import LogSink  # noqa: PLC0415

        return LogSink()
    if kind == "jsonl":
        from host.sinks.jsonl import JsonlSink  # noqa: PLC0415

        return JsonlSink(Path(arg).expanduser())
    from host.sinks.null import NullSink  # noqa: PLC0415

    return NullSink()
