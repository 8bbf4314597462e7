"""``coplay-guest``: the friend's client.

::

    coplay-guest --config guest.toml [--source auto|virtual|INDEX|NAME|GUID] [--window]
    coplay-guest join [LINK] [--source ...] [--name NAME]  play with a join link (no config;
                                            without LINK: the one invite kept from before)
    coplay-guest devices [--virtual]        list controllers (no config needed)
    coplay-guest --check --config guest.toml

The entry point builds every collaborator (pygame, the pad source, the link,
the session, the sender, the status display) and hands them to
:class:`guest.loop.GuestLoop`. SIGINT/SIGTERM end the loop: Bye is the last
frame and the exit code is 0. The broker refusing the credentials exits 77,
the host rejecting this user for good exits 75. A join link that no longer
works (used up, expired, revoked) exits 77 with the relay's reason
(:mod:`guest.join`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, ModuleType
from typing import Annotated, Any, TextIO, cast

import msgspec
import structlog

from guest.callbacks import CallbackErrors
from guest.devices import Selection, list_devices
from guest.join import explain, join, join_kept, link_settings
from guest.loop import GuestLoop
from guest.pad import PygamePadSource
from guest.script import (
    ENV_SCRIPT,
    ENV_STAMPS,
    ScriptRunner,
    StampLog,
    demo_pattern,
    load_script,
    stdin_commands,
)
from guest.sdl import SDL, init_pygame, load_sdl
from guest.sender import Sender
from guest.session import Session
from guest.status import LineStream, StatusReporter
from guest.virtual import NAME, RumbleEvent, VirtualPad
from guest.wake import WAKE_SUPPORTED, PipeWaker, Waker, node_waker
from guest.window import PadWindow
from relay.commandline import base_parser, config_path, json_logs, run
from relay.config import (
    GuestConfig,
    GuestSection,
    RelaySection,
    load_guest_config,
    load_guest_invite,
)
from relay.errors import CoplayError, UsageError
from relay.invites import parse_link
from relay.link import Link
from relay.logs import Redactor, configure_logging
from relay.permissions import permission_warnings
from relay.tokens import credential_source, retry_text
from relay.topics import Topics

PROG = "coplay-guest"


class StopRequest:
    """Set by SIGINT/SIGTERM (only a flag: safe inside a signal handler)."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def install(self) -> None:
        signal.signal(signal.SIGINT, self)
        signal.signal(signal.SIGTERM, self)


def build_parser() -> argparse.ArgumentParser:
    parser = base_parser(
        PROG, "Send your gamepad to a friend's stream PC as player 2.", "guest.toml"
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=("run", "join", "devices"),
        default="run",
        help="run (default); join LINK: play with the streamer's join link; devices: list pads",
    )
    parser.add_argument("link", nargs="?", metavar="LINK", help="join: the join link")
    parser.add_argument("--name", metavar="NAME", help="the name the host shows (64 at most)")
    parser.add_argument("--source", metavar="SRC", help="auto | virtual | INDEX | NAME | GUID")
    parser.add_argument("--window", action="store_true", help="show a small status window")
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    parser.add_argument(
        "--virtual",
        action="store_true",
        help="devices: attach a virtual pad first (checks that SDL virtual pads work here)",
    )
    parser.add_argument(
        "--script",
        metavar="FILE|-",
        help=f"with --source virtual: play FILE on the virtual pad once, or read commands from "
        f"stdin as they come with '-' (default: ${ENV_SCRIPT}, else a demo pattern on a loop)",
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = SCRIPT_HELP
    return parser


SCRIPT_HELP = f"""\
scripted play (--source virtual --script FILE|-): one JSON object per line,
  {{"press": "A"}}  {{"release": "A"}}  {{"tap": "A", "ms": 40}}  {{"sleep": 0.25}}
  {{"axis": "LEFTX", "value": -32768}}  {{"state": {{"buttons": 1, "lx": 100}}}}
  {{"detach": true}}  {{"attach": true}}        (# lines and blank lines are skipped)
buttons and axes by name (A, DPAD_UP, LEFTX, TRIGGERRIGHT) or SDL number. A FILE
is checked whole before the guest starts; from stdin ('-') each line is played
as it arrives and a bad one is logged (script_line_bad) and skipped, so another
program can play through the guest. ${ENV_STAMPS}=PATH records each change.
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)

    def go() -> int:
        if args.command == "devices":
            return devices(args.virtual, sys.stdout)
        if args.command == "join":
            return run_joined(args.link, None, GuestSection(), args)
        if args.link:
            raise UsageError(f"unexpected argument; did you mean: {PROG} join LINK?")
        path = config_path(args, "guest.toml")
        invite = load_guest_invite(path)
        if invite is not None:
            if args.check:
                parse_link(invite.link.reveal())
                print(f"{invite.path}: ok (joins with a link)")
                return 0
            return run_joined(invite.link.reveal(), invite.relay, invite.guest, args)
        config = load_guest_config(path, persist=not args.check)
        if args.check:
            for warning in permission_warnings(config.path):
                print(warning, file=sys.stderr)
            print(f"{config.path}: ok")
            return 0
        return run_guest(config, args)

    return run(PROG, go)


def devices(virtual: bool, out: TextIO) -> int:
    """Print every controller SDL sees: index, name, GUID, game-controller mapping."""
    pygame = init_pygame()
    sdl = load_sdl(pygame)
    pad = None
    try:
        if virtual:
            pad = VirtualPad(sdl)
            pad.attach()
        pygame.event.get()
        found = list_devices(sdl)
        if not found:
            print("no controllers found (plug one in, or try --virtual)", file=out)
            return 0
        print(f"{'INDEX':<6}{'NAME':<40}{'GUID':<34}MAPPING", file=out)
        for device in found:
            mapping = "yes" if device.is_controller else "no"
            name = device.name + (" (virtual)" if device.virtual else "")
            print(f"{device.index:<6}{name[:39]:<40}{device.guid:<34}{mapping}", file=out)
        return 0
    finally:
        if pad is not None:
            pad.detach()
        pygame.quit()


def run_joined(
    link: str | None, section: RelaySection | None, guest: GuestSection, args: argparse.Namespace
) -> int:
    """``join``: redeem the link (or reuse the kept redeem), then run as every guest does."""
    path, stored = join(link, os.environ) if link else join_kept(os.environ)
    config = GuestConfig(path=path, link=link_settings(stored, section), guest=guest)
    try:
        hidden = (link, parse_link(link)[1]) if link else ()
        return run_guest(config, args, hidden=hidden)
    except CoplayError as exc:
        reason = explain(exc, stored)
        if reason is exc:
            raise
        raise reason from exc


_Name = Annotated[str, msgspec.Meta(max_length=64)]


def run_guest(config: GuestConfig, args: argparse.Namespace, hidden: Sequence[str] = ()) -> int:
    """Run the guest until a signal, a final Reject, or refused credentials."""
    if args.name is not None:  # --name wins over [guest] name
        try:
            name = msgspec.convert(args.name, _Name)
        except msgspec.ValidationError as exc:
            raise UsageError("--name: 64 characters at most") from exc
        config = dataclasses.replace(config, guest=msgspec.structs.replace(config.guest, name=name))
    redactor = Redactor([*config.link.secrets, *hidden])
    stderr = LineStream(sys.stderr)
    configure_logging(
        args.log_level, redactor=redactor, json=json_logs(args), stream=cast(TextIO, stderr)
    )
    stop = StopRequest()
    stop.install()  # before SDL starts, so SDL leaves SIGINT/SIGTERM to us
    os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
    source_text = args.source or config.guest.source
    if args.script is not None and source_text.strip().lower() != "virtual":
        raise UsageError("--script plays on the virtual pad: add --source virtual")
    window = bool(args.window or config.guest.window)
    script = args.script if args.script is not None else os.environ.get(ENV_SCRIPT, "")
    return Wiring(config, redactor, stderr, stop, source_text, window, script).run()


@dataclasses.dataclass
class Wiring:
    """Builds the guest's parts in order and takes them down in reverse."""

    config: GuestConfig
    redactor: Redactor
    stderr: Any
    stop: StopRequest
    source_text: str
    window: bool
    script: str = ""  # "" demo pattern | "-" stdin | a script file
    log: Any = dataclasses.field(default_factory=lambda: structlog.get_logger("guest"))
    # the session's and the virtual pad's callbacks: one count for the status line
    errors: CallbackErrors = dataclasses.field(default_factory=CallbackErrors)
    _closers: list[Any] = dataclasses.field(default_factory=list)

    def run(self) -> int:
        try:
            return self._run()
        finally:
            for close in reversed(self._closers):
                try:
                    close()
                except Exception:
                    self.log.exception("close_failed")

    def _run(self) -> int:
        config, guest = self.config, self.config.guest
        pygame = init_pygame(self.window)
        self._closers.append(pygame.quit)
        sdl = load_sdl(pygame)
        selection = Selection.parse(self.source_text)

        pad: VirtualPad | None = None
        if self.source_text.strip().lower() == "virtual":
            selection, pad = self._virtual(sdl)

        def wakers(index: int) -> Waker | None:
            """What tells the loop the pad changed: its device node, or None (poll)."""
            if not guest.pad_wake or not WAKE_SUPPORTED:
                return None
            if pad is not None:
                return pad.listen()  # a virtual pad has no node: its pipe stands in
            return node_waker(sdl.device_path(index))

        source = PygamePadSource(
            pygame,
            sdl,
            selection,
            deadzone=guest.deadzone,
            rumble_cap_ms=guest.rumble_cap_ms,
            wakers=wakers,
        )
        self._closers.append(source.close)

        epoch = secrets.randbits(32)
        topics = Topics(config.link.topic_prefix, config.link.session)
        link: Link | None = None
        wakeup = PipeWaker() if WAKE_SUPPORTED else None  # the link's thread pokes the loop
        if wakeup is not None:
            self._closers.append(wakeup.close)

        def publish(topic: str, payload: bytes, qos: int) -> bool:
            return link is not None and link.publish(topic, payload, qos)

        credentials = credential_source(config.link, self.redactor)
        self._closers.append(credentials.close)
        session = Session(
            topics,
            config.link.username,
            epoch,
            publish,
            name=guest.name or config.link.username,
            controller=lambda: source.controller_name,
            waiting=lambda: retry_text(credentials),
            on_news=wakeup.poke if wakeup is not None else lambda: None,
            errors=self.errors,
        )
        sender = Sender(
            lambda payload: publish(session.in_topic, payload, 0),
            epoch=epoch,
            rate_hz=guest.rate_hz,
            max_rate_hz=guest.max_rate_hz,
        )
        link = Link(
            config.link,
            credentials,
            on_message=session.on_message,
            subscriptions=session.subscriptions,
            will=session.will(),
            on_connect=session.on_connect,
            on_status=session.on_status,
        )
        reporter = StatusReporter(
            line=self.stderr if self.stderr.isatty() else None, log=self.log.info
        )
        window = self._window(pygame)
        self.log.info(
            "guest_starting",
            user=config.link.username,
            session=config.link.session,
            broker=config.link.broker_url,
            epoch=epoch,
            source=str(selection),
            rate_hz=guest.rate_hz,
            max_rate_hz=guest.max_rate_hz,
        )
        loop = GuestLoop(
            source,
            sender,
            session,
            link,
            reporter,
            window,
            quit_requested=lambda: self.stop.requested or source.quit_requested,
            active_poll_s=min(max(1.0 / guest.max_rate_hz, 0.001), 0.008),
            wakeup=wakeup,
        )
        loop.run()
        self.log.info("guest_stopped", frames=sender.frames, epoch=epoch)
        return 0

    def _virtual(self, sdl: SDL) -> tuple[Selection, VirtualPad]:
        def rumbled(event: RumbleEvent) -> None:
            self.log.info("virtual_rumble", low=event.low, high=event.high)

        stamps_path = os.environ.get(ENV_STAMPS, "")
        stamps = StampLog(Path(stamps_path)) if stamps_path else None
        if stamps is not None:
            self._closers.append(stamps.close)  # runs last: after the pad stopped changing
        pad = VirtualPad(sdl, on_rumble=rumbled, on_change=stamps, errors=self.errors)
        pad.attach()
        self._closers.append(pad.detach)
        script = self.script
        if script == "-":
            commands: Any = stdin_commands(
                sys.stdin, lambda error: self.log.warning("script_line_bad", error=error)
            )
            runner = ScriptRunner(pad, commands)
        elif script:
            runner = ScriptRunner(pad, load_script(Path(script)))
        else:
            runner = ScriptRunner(pad, demo_pattern(), loop=True)
        runner.start()
        self._closers.append(runner.stop)
        self.log.info("virtual_pad_attached", name=NAME, script=script or "demo")
        return Selection("name", NAME), pad

    def _window(self, pygame: ModuleType) -> PadWindow | None:
        if not self.window:
            return None
        window = PadWindow(pygame)
        self._closers.append(window.close)
        return window


if __name__ == "__main__":
    sys.exit(main())
