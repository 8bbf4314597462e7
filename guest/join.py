"""``coplay-guest join LINK``: a friend's way in with nothing but the streamer's join link.

The first run redeems the link's code at the relay (``POST
/openapi/rm/invite/redeem``) and keeps the answer, the friend's own app
credential and the relay's addresses, in the state directory::

    {state dir}/invites/{hash of the code}.json     mode 0600, directory 0700

so running ``join`` again with the same link (after a restart, a crash, a
reboot) needs no new redeem while the grant lives: a single-use link works for
as long as the streamer's invite does. ``join`` with no link at all uses the
one live invite kept here. The file is JSON (:class:`StoredInvite`);
``expires_at`` is the grant's end in Unix seconds. From then on the guest is a
normal guest: the same token client (app token, then user token, cached and
refreshed) and the same link. When the relay turns the invite down (used up,
expired, revoked), :func:`refusal` asks it once more for its one sentence, and
the CLI exits 77 with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

import msgspec

from relay.config import LinkSettings, RelaySection
from relay.errors import AuthError, CoplayError, UsageError
from relay.invites import Grant, InviteClient, Redeemed, parse_link
from relay.locations import state_dir
from relay.secrets import Secret
from relay.tokenwire import APP_TOKEN_PATH

INVITES_DIR: Final = "invites"
ASK_AGAIN: Final = "ask the streamer for a new join link"
REDEEM_REFUSED: Final = (
    f"this join link does not work any more (used up, expired, revoked or mistyped); {ASK_AGAIN}"
)
GUEST_TOKEN_LIFETIME_S: Final = 600  # asked for; the relay caps it at its guest_token_s anyway


class StoredInvite(Grant, forbid_unknown_fields=True, kw_only=True):
    """What a redeem gave, kept for the next run (the file in the state directory)."""

    version: int = 1
    app_client_id: str
    app_client_secret: str
    device_id: str  # this machine's id for this invite (the MQTT client id is device@app)
    redeemed_at: float
    expires_at: float


def invite_path(state: Path, code: str) -> Path:
    """Where the redeem of ``code`` is kept (named by a hash: the code itself is not stored)."""
    digest = hashlib.sha256(b"coplay join v1\0" + code.encode()).hexdigest()[:24]
    return state / INVITES_DIR / f"{digest}.json"


def read_stored(path: Path) -> StoredInvite | None:
    try:
        return msgspec.json.decode(path.read_bytes(), type=StoredInvite)
    except FileNotFoundError:
        return None
    except (OSError, msgspec.DecodeError):
        return None  # unreadable or from another version: redeem again


def write_stored(path: Path, stored: StoredInvite) -> None:
    """Write ``stored`` so that only this user can ever read it (0600 from the first byte)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        path.parent.chmod(0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(msgspec.json.encode(stored))
    os.replace(tmp, path)


def join(
    link: str,
    env: Mapping[str, str],
    *,
    redeem: Callable[[str, str], Redeemed] | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[Path, StoredInvite]:
    """The stored redeem for ``link``: read from the state directory, else redeemed now.

    Raises UsageError for something that is not a join link and AuthError (one
    sentence) when the relay refuses the code or the kept grant has expired.
    """
    api_url, code = parse_link(link)
    path = invite_path(state_dir(env), code)
    stored = read_stored(path)
    now = clock()
    if stored is not None:
        if stored.expires_at <= now:
            ended = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stored.expires_at))
            raise AuthError(
                f"the invite for {stored.username!r} in session {stored.session!r} "
                f"expired at {ended}; {ASK_AGAIN}"
            )
        return path, stored
    answer = (redeem or _redeem)(api_url, code)
    grant = {name: getattr(answer, name) for name in Grant.__struct_fields__}
    stored = StoredInvite(
        **{**grant, "api_url": answer.api_url or api_url},
        app_client_id=answer.appClientId,
        app_client_secret=answer.appClientSecret,
        device_id="g" + uuid.uuid4().hex[:16],
        redeemed_at=now,
        expires_at=now + answer.expires_in,
    )
    write_stored(path, stored)
    return path, stored


def kept(
    env: Mapping[str, str], clock: Callable[[], float] = time.time
) -> list[tuple[Path, StoredInvite]]:
    """The kept redeems whose grant still lives, newest first (``join`` without a LINK)."""
    found = []
    for path in (state_dir(env) / INVITES_DIR).glob("*.json"):
        stored = read_stored(path)
        if stored is not None and stored.expires_at > clock():
            found.append((path, stored))
    return sorted(found, key=lambda item: item[1].redeemed_at, reverse=True)


def join_kept(
    env: Mapping[str, str], clock: Callable[[], float] = time.time
) -> tuple[Path, StoredInvite]:
    """``join`` with no LINK: the one live kept redeem; UsageError when none or several."""
    found = kept(env, clock)
    if not found:
        raise UsageError("join needs the LINK the streamer sent you")
    if len(found) > 1:
        which = ", ".join(f"{s.username} in {s.session}" for _, s in found)
        raise UsageError(f"several invites are kept here ({which}); give the LINK to choose")
    return found[0]


def _redeem(api_url: str, code: str) -> Redeemed:
    client = InviteClient(api_url)
    try:
        return client.redeem(code)
    except AuthError as exc:
        raise AuthError(REDEEM_REFUSED) from exc
    finally:
        client.close()


def link_settings(stored: StoredInvite, section: RelaySection | None = None) -> LinkSettings:
    """The guest's ``[relay]`` settings from a redeem (TLS and MQTT options from ``section``)."""
    section = section or RelaySection(username=stored.username, session=stored.session)
    return LinkSettings(
        api_url=stored.api_url.rstrip("/"),
        broker_url=stored.broker_url,
        app_id=stored.app_id,
        app_client_id=stored.app_client_id,
        app_client_secret=Secret(stored.app_client_secret),
        username=stored.username,
        password=None,
        device_id=stored.device_id,
        session=stored.session,
        topic_prefix=stored.topic_prefix,
        ca_file=section.ca_file,
        tls_verify=section.tls_verify,
        mqtt_version=section.mqtt_version,
        keepalive_s=section.keepalive_s,
        token_lifetime_s=GUEST_TOKEN_LIFETIME_S,
    )


def refusal(stored: StoredInvite, *, timeout_s: float = 5.0) -> str | None:
    """The relay's one sentence for why the kept credential no longer works, if it says one."""
    import httpx  # noqa: PLC0415 (only on this path)

    try:
        reply = httpx.post(
            stored.api_url.rstrip("/") + APP_TOKEN_PATH,
            json={
                "appClientId": stored.app_client_id,
                "appClientSecret": stored.app_client_secret,
            },
            timeout=timeout_s,
        )
    except httpx.HTTPError:
        return None
    if reply.status_code not in (401, 403):
        return None
    try:
        text = reply.json().get("body")
    except (ValueError, AttributeError):
        return None
    if not isinstance(text, str) or not text:
        return None
    if text == "invalid app credentials":  # the relay forgot this credential entirely
        return f"the relay no longer knows the invite for {stored.username!r}; {ASK_AGAIN}"
    return text.strip()[:300]


def explain(exc: CoplayError, stored: StoredInvite) -> CoplayError:
    """An AuthError of a joined guest, replaced by the relay's reason when it gives one."""
    if not isinstance(exc, AuthError):
        return exc
    why = refusal(stored)
    return AuthError(why) if why else exc
