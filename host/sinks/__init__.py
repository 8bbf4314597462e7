"""Where applied pad states go: a virtual pad, a log, a JSON-lines file, or nowhere."""

from __future__ import annotations

from pathlib import Path

from host.faults import Faults
from host.sinks.base import FrameMeta, RumbleCallback, Sink
from relay.config import check_sink

__all__ = ["FrameMeta", "RumbleCallback", "Sink", "make_sink"]


def make_sink(
    spec: str, *, rumble_cap_ms: int, device_id: str = "host", faults: Faults | None = None
) -> Sink:
    """The sink a ``--sink``/``sink`` value names: ``uinput | log | jsonl:PATH | null``.

    ``device_id`` (the host's) gives each virtual pad a ``phys`` stable across restarts;
    ``faults`` counts exceptions on the uinput sink's force-feedback thread.
    """
    kind, _, arg = check_sink(spec).partition(":")
    if kind == "uinput":
        from host.sinks.uinput import UInputSink  # noqa: PLC0415

        return UInputSink(rumble_cap_ms, device_id, faults=faults)
    if kind == "log":
        from host.sinks.log import LogSink  # noqa: PLC0415

        return LogSink()
    if kind == "jsonl":
        from host.sinks.jsonl import JsonlSink  # noqa: PLC0415

        return JsonlSink(Path(arg).expanduser())
    from host.sinks.null import NullSink  # noqa: PLC0415

    return NullSink()
