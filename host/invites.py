"""``coplay-host invite|revoke|invites``: the streamer manages friends' join links.

::

    coplay-host invite USER [--seat N] [--ttl 24h] [--uses 1]   the join link, alone on stdout
    coplay-host revoke USER                                     end USER's invites in this session
    coplay-host invites                                         the live ones (no codes, no secrets)

Each gets the host's user token exactly as the daemon does (``[relay]`` of
host.toml, the app's own credentials), then calls the relay's invite API for
the config's session. Messages for the person go to stderr; stdout carries
only what scripts read (the link, the listing).
"""

from __future__ import annotations

import time
from typing import TextIO

from relay.config import HostConfig
from relay.errors import ConfigError
from relay.invites import (
    CreateInvite,
    InviteClient,
    InviteInfo,
    ListInvites,
    RevokeInvite,
    describe_duration,
)
from relay.logs import Redactor
from relay.tokens import TokenClient


def _client_and_token(config: HostConfig, redactor: Redactor) -> tuple[InviteClient, str]:
    if not config.link.api_url:
        raise ConfigError(
            f'{config.path}: $.relay.api_url: invites need the relay\'s token API (api_url = "" '
            "has none)"
        )
    tokens = TokenClient(config.link, redactor)
    try:
        token = tokens.get().password.reveal()
    finally:
        tokens.close()
    verify: object = config.link.ca_file or True
    if not config.link.tls_verify:
        verify = False
    return InviteClient(config.link.api_url, verify=verify), token


def invite(
    config: HostConfig,
    redactor: Redactor,
    user: str,
    *,
    seat: int | None,
    ttl_s: int,
    uses: int,
    out: TextIO,
    err: TextIO,
) -> int:
    """Create an invite for ``user`` in this session; print its link (only that) on ``out``."""
    allowed = config.host.allowed()
    if allowed and user not in allowed:
        print(
            f"warning: {user!r} is not in [host] allow of {config.path}; "
            "the host will refuse them until you add it",
            file=err,
        )
    if seat is not None and seat not in config.host.seats:
        print(f"warning: seat {seat} is not one of this host's seats {config.host.seats}", file=err)
    client, token = _client_and_token(config, redactor)
    try:
        created = client.create(
            token,
            CreateInvite(
                session=config.link.session, username=user, seat=seat, ttl_s=ttl_s, uses=uses
            ),
        )
    finally:
        client.close()
    redactor.add(created.invite)
    print(created.url, file=out, flush=True)
    print(
        f"invite for {user!r} in session {config.link.session!r}: {uses} use(s), "
        f"valid {describe_duration(created.expires_in)}; send the link to {user} only",
        file=err,
    )
    return 0


def revoke(config: HostConfig, redactor: Redactor, user: str, *, err: TextIO) -> int:
    """End every invite of ``user`` in this session (their connections close at once)."""
    client, token = _client_and_token(config, redactor)
    try:
        revoked = client.revoke(token, RevokeInvite(session=config.link.session, username=user))
    finally:
        client.close()
    session = config.link.session
    if revoked.revoked:
        print(f"revoked {revoked.revoked} invite(s) of {user!r} in session {session!r}", file=err)
    else:
        print(f"no invite of {user!r} to revoke in session {session!r}", file=err)
    return 0


def list_invites(config: HostConfig, redactor: Redactor, *, out: TextIO, err: TextIO) -> int:
    """The live invites of this session as a table on ``out``."""
    client, token = _client_and_token(config, redactor)
    try:
        listing = client.list(token, ListInvites(session=config.link.session))
    finally:
        client.close()
    if not listing.invites:
        print(f"no live invites in session {config.link.session!r}", file=err)
        return 0
    out.write(format_table(listing.invites, time.time()))
    return 0


HEADER = ("USER", "SEAT", "USES LEFT", "REDEEMED", "EXPIRES IN", "EXPIRES AT (UTC)")


def format_table(invites: list[InviteInfo], now: float) -> str:
    """One line per live grant: user, seat, uses left, redeemed, time left, expiry."""
    rows = [HEADER]
    for info in invites:
        rows.append(
            (
                info.username,
                "any" if info.seat is None else str(info.seat),
                str(info.uses_left),
                str(info.redeemed),
                describe_duration(info.expires_in),
                time.strftime("%Y-%m-%d %H:%M", time.gmtime(now + info.expires_in)),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        + "\n"
        for row in rows
    )
