"""NATS JWTs (the ``ed25519-nkey`` kind) and nkeys, for the auth callout.

A NATS JWT is ``base64url(header).base64url(claims).base64url(signature)``
with header ``{"typ": "JWT", "alg": "ed25519-nkey"}``, signed with the
issuer's nkey (an Ed25519 key written in NATS's base32 form, ``A...`` for an
account, ``N...`` for a server, ``U...`` for a user). The ``jti`` is the
base32 SHA-512/256 of the claims without it, as the NATS Go library makes it.

The relay's two nkeys are derived from its JWT secret (HMAC with a label per
key), so the cluster needs no secret of its own and ``nats-config`` prints
only public keys:

- the **issuer** account key signs the authorization responses and the user
  JWTs in them (``auth_callout { issuer: ... }`` names its public key);
- the **callout** user key is how the callout service logs in to the cluster
  (``auth_users``), so its own login bypasses the callout.

:func:`decode` verifies a JWT's signature against the public key in its
``iss`` and checks the key kind; it raises :class:`NatsJwtError` (a short
reason, never the token) for anything else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any, Final

import nacl.exceptions
import nacl.signing
import nkeys

from relay.secrets import Secret

HEADER: Final = {"typ": "JWT", "alg": "ed25519-nkey"}
ALGORITHMS: Final = frozenset({"ed25519-nkey", "ed25519"})
MAX_JWT_BYTES: Final = 64 * 1024  # an authorization request carries the MQTT password (<= 64 KiB)

ACCOUNT: Final = "A"
SERVER: Final = "N"
USER: Final = "U"
_PREFIX_BYTES: Final = {
    ACCOUNT: nkeys.PREFIX_BYTE_ACCOUNT,
    SERVER: nkeys.PREFIX_BYTE_SERVER,
    USER: nkeys.PREFIX_BYTE_USER,
}
_ISSUER_LABEL: Final = b"coplay nats issuer account key v1"
_CALLOUT_LABEL: Final = b"coplay nats callout user key v1"


class NatsJwtError(Exception):
    """A NATS JWT failed to decode or verify; ``str(exc)`` is a short reason."""


class NKey:
    """One signing nkey: its seed stays inside, ``public`` is the ``A...``/``U...`` text."""

    def __init__(self, raw_seed: bytes, kind: str) -> None:
        seed = nkeys.encode_seed(raw_seed, _PREFIX_BYTES[kind])
        self._pair = nkeys.from_seed(bytearray(seed))
        self._seed = seed.decode()
        self.public: str = bytes(self._pair.public_key).decode()

    def sign(self, data: bytes) -> bytes:
        return bytes(self._pair.sign(data))

    def seed_secret(self) -> Secret:
        """The seed as a :class:`Secret` (for nats-py's ``nkeys_seed_str``)."""
        return Secret(self._seed)

    def __repr__(self) -> str:
        return f"NKey({self.public})"


def derived_key(secret: Secret, label: bytes, kind: str) -> NKey:
    raw = hmac.new(secret.reveal().encode(), label, hashlib.sha256).digest()
    return NKey(raw, kind)


def issuer_key(secret: Secret) -> NKey:
    """The account nkey that signs users for the cluster, derived from the relay's JWT secret."""
    return derived_key(secret, _ISSUER_LABEL, ACCOUNT)


def callout_key(secret: Secret) -> NKey:
    """The user nkey the callout service logs in with, derived from the relay's JWT secret."""
    return derived_key(secret, _CALLOUT_LABEL, USER)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(claims: dict[str, Any], key: NKey, now: float | None = None) -> str:
    """Sign ``claims`` (``iss``, ``iat`` and ``jti`` filled in) with ``key``."""
    body = dict(claims, iss=key.public, iat=int(time.time() if now is None else now), jti="")
    digest = hashlib.new("sha512_256", json.dumps(body, separators=(",", ":")).encode()).digest()
    body["jti"] = base64.b32encode(digest).rstrip(b"=").decode()
    head = _b64(json.dumps(HEADER, separators=(",", ":")).encode())
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    signed = f"{head}.{payload}"
    return f"{signed}.{_b64(key.sign(signed.encode()))}"


def public_key_bytes(public: str, kind: str) -> bytes:
    """The raw Ed25519 key in a ``kind`` public nkey; NatsJwtError when it is not one."""
    try:
        raw = base64.b32decode(public + "=" * (-len(public) % 8))
    except (binascii.Error, ValueError):
        # from None here and below: a request JWT carries a client's password (its token),
        # and the decoders' messages may quote the bytes they choked on
        raise NatsJwtError("issuer is not an nkey") from None
    if len(raw) != 35 or raw[0] != _PREFIX_BYTES[kind]:
        raise NatsJwtError(f"issuer is not a {kind}... nkey")
    if nkeys.crc16(bytearray(raw[:33])).to_bytes(2, "little") != raw[33:]:
        raise NatsJwtError("issuer nkey checksum is wrong")
    return raw[1:33]


def decode(token: str, issuer_kind: str) -> dict[str, Any]:
    """The claims of a NATS JWT signed by the ``iss`` key, which must be of ``issuer_kind``."""
    if len(token) > MAX_JWT_BYTES:
        raise NatsJwtError("jwt too large")
    parts = token.split(".")
    if len(parts) != 3:
        raise NatsJwtError("not a jwt")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except (ValueError, binascii.Error):
        raise NatsJwtError("not a jwt") from None
    if not isinstance(header, dict) or header.get("alg") not in ALGORITHMS:
        raise NatsJwtError("not an nkey-signed jwt")
    if not isinstance(claims, dict) or not isinstance(claims.get("iss"), str):
        raise NatsJwtError("jwt without an issuer")
    key = public_key_bytes(claims["iss"], issuer_kind)
    try:
        nacl.signing.VerifyKey(key).verify(f"{parts[0]}.{parts[1]}".encode(), signature)
    except (nacl.exceptions.BadSignatureError, ValueError):
        raise NatsJwtError("bad jwt signature") from None
    return claims
