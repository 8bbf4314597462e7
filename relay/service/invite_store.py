"""Invites, the grants they create and the friends' app credentials, in SQLite.

Tables (``[server] state_db``; stdlib :mod:`sqlite3`, WAL journal)::

    grants       one per invite: app, session, username, seat, created_at,
                 expires_at, uses (redeems allowed), code_hash (unique)
    credentials  one per redeem (a use): client_id, secret_hash, grant_id, created_at
    revocations  grant_id, revoked_at: a revoked grant stays revoked

Codes and secrets are random (``secrets``: 192 and 256 bits) and stored only as
SHA-256 hashes under a label of their kind; client ids (``inv-`` + 16 hex) are
not secret. A grant is *live* until it expires or is revoked; its credentials
work only while it is live, and the tokens made from them never outlive it.

Writes run in ``BEGIN IMMEDIATE`` transactions, so two redeems of a
single-use code (here or from ``coplay-relay invite`` in another process)
cannot both win. ``clock`` (a :class:`~relay.clock.WallClock`) dates grants;
tests pass a fake so they need not wait for an expiry. Live grants per app are capped
(``max_live``, :data:`MAX_LIVE_GRANTS`), and grants a day past their expiry are
deleted with their credentials, so the file stays small.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from relay.clock import WallClock
from relay.errors import ConfigError
from relay.service.config import RelayServiceConfig

MAX_LIVE_GRANTS: Final = 256  # live grants per app
PRUNE_AFTER_S: Final = 86400  # expired grants are kept this long, then deleted
CLIENT_ID_PREFIX: Final = "inv-"
_CODE_LABEL: Final = b"coplay invite code v1\0"
_SECRET_LABEL: Final = b"coplay invite credential v1\0"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS grants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app TEXT NOT NULL,
    session TEXT NOT NULL,
    username TEXT NOT NULL,
    seat INTEGER,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    uses INTEGER NOT NULL,
    code_hash TEXT NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS grants_by_user ON grants (app, session, username);
CREATE TABLE IF NOT EXISTS credentials (
    client_id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    grant_id INTEGER NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS credentials_by_grant ON credentials (grant_id);
CREATE TABLE IF NOT EXISTS revocations (
    grant_id INTEGER PRIMARY KEY REFERENCES grants (id) ON DELETE CASCADE,
    revoked_at REAL NOT NULL
);
"""

_GRANT_COLUMNS: Final = (
    "g.id, g.app, g.session, g.username, g.seat, g.created_at, g.expires_at, g.uses, "
    "(SELECT COUNT(*) FROM credentials c WHERE c.grant_id = g.id), "
    "(SELECT r.revoked_at FROM revocations r WHERE r.grant_id = g.id)"
)


class TooManyInvites(Exception):
    """An app already has ``max_live`` live grants."""


@dataclass(frozen=True, slots=True)
class Grant:
    """One invite's grant: who, where, until when, how many redeems, and whether revoked."""

    id: int
    app: str  # the app's client id in relay.toml
    session: str
    username: str
    seat: int | None
    created_at: float
    expires_at: float
    uses: int
    redeemed: int
    revoked_at: float | None

    @property
    def uses_left(self) -> int:
        return max(0, self.uses - self.redeemed)

    def live(self, now: float) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def log_fields(self) -> dict[str, object]:
        """Who and where, for a log line: user, session, grant id (never a code or secret)."""
        return {"user": self.username, "session": self.session, "grant": self.id}

    def seconds_left(self, now: float) -> int:
        return max(0, int(self.expires_at - now))


@dataclass(frozen=True, slots=True)
class NewCredential:
    """A redeem's result: the grant, and the credential made for it (the secret only here)."""

    grant: Grant
    client_id: str
    client_secret: str


def _hash(label: bytes, value: str) -> str:
    return hashlib.sha256(label + value.encode()).hexdigest()


class InviteStore:
    """The SQLite file of grants, credentials, uses and revocations; safe across threads."""

    def __init__(
        self,
        path: Path | str,
        *,
        clock: WallClock,
        max_live: int = MAX_LIVE_GRANTS,
    ) -> None:
        self._clock = clock
        self._max_live = max_live
        self._lock = threading.Lock()
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(
            str(path), timeout=5.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA busy_timeout = 5000")
        self._db.executescript(_SCHEMA)
        if str(path) != ":memory:":
            Path(path).chmod(0o600)

    def now(self) -> float:
        return self._clock.time()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ---------------------------------------------------------------- writes

    def create(
        self,
        *,
        app: str,
        session: str,
        username: str,
        seat: int | None,
        ttl_s: int,
        uses: int,
    ) -> tuple[Grant, str]:
        """A new grant and its code (the only time the code exists outside the link)."""
        code = secrets.token_urlsafe(24)  # 192 bits
        now = self.now()
        with self._write() as db:
            db.execute("DELETE FROM grants WHERE expires_at < ?", (now - PRUNE_AFTER_S,))
            (live,) = db.execute(
                "SELECT COUNT(*) FROM grants g WHERE g.app = ? AND g.expires_at > ? "
                "AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.grant_id = g.id)",
                (app, now),
            ).fetchone()
            if live >= self._max_live:
                raise TooManyInvites(f"{live} live invites")
            cursor = db.execute(
                "INSERT INTO grants (app, session, username, seat, created_at, expires_at, "
                "uses, code_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (app, session, username, seat, now, now + ttl_s, uses, _hash(_CODE_LABEL, code)),
            )
            grant_id = int(cursor.lastrowid or 0)
        grant = self.grant(grant_id)
        assert grant is not None
        return grant, code

    def redeem(self, code: str) -> NewCredential | None:
        """Spend one use of the invite ``code``: a new credential, or None.

        None for an unknown, used-up, expired or revoked code alike.
        """
        now = self.now()
        client_id = CLIENT_ID_PREFIX + secrets.token_hex(8)
        client_secret = secrets.token_urlsafe(32)  # 256 bits
        with self._write() as db:
            row = db.execute(
                f"SELECT {_GRANT_COLUMNS} FROM grants g WHERE g.code_hash = ?",  # noqa: S608
                (_hash(_CODE_LABEL, code),),
            ).fetchone()
            grant = _grant(row) if row else None
            if grant is None or not grant.live(now) or grant.uses_left < 1:
                return None
            db.execute(
                "INSERT INTO credentials (client_id, secret_hash, grant_id, created_at) "
                "VALUES (?, ?, ?, ?)",
                (client_id, _hash(_SECRET_LABEL, client_secret), grant.id, now),
            )
        fresh = self.grant(grant.id)
        assert fresh is not None
        return NewCredential(fresh, client_id, client_secret)

    def revoke(self, *, app: str, session: str, username: str) -> list[int]:
        """End every grant of ``username`` in ``session`` of ``app``; the ids newly revoked."""
        now = self.now()
        with self._write() as db:
            ids = [
                int(gid)
                for (gid,) in db.execute(
                    "SELECT g.id FROM grants g WHERE g.app = ? AND g.session = ? "
                    "AND g.username = ? AND NOT EXISTS "
                    "(SELECT 1 FROM revocations r WHERE r.grant_id = g.id)",
                    (app, session, username),
                ).fetchall()
            ]
            db.executemany(
                "INSERT INTO revocations (grant_id, revoked_at) VALUES (?, ?)",
                [(gid, now) for gid in ids],
            )
        return ids

    # ---------------------------------------------------------------- reads

    def grant(self, grant_id: int) -> Grant | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_GRANT_COLUMNS} FROM grants g WHERE g.id = ?",  # noqa: S608
                (grant_id,),
            ).fetchone()
        return _grant(row) if row else None

    def is_live(self, grant_id: int) -> bool:
        """Whether grant ``grant_id`` exists, has not expired and was not revoked."""
        grant = self.grant(grant_id)
        return grant is not None and grant.live(self.now())

    def credential(self, client_id: str, client_secret: str) -> Grant | None:
        """The grant of the credential ``client_id`` if ``client_secret`` is its secret.

        The grant is returned whether live or not (the caller says why it ended).
        """
        grant_id = self._credential_grant(client_id, client_secret)
        return None if grant_id is None else self.grant(grant_id)

    def _credential_grant(self, client_id: str, client_secret: str) -> int | None:
        with self._lock:
            row = self._db.execute(
                "SELECT secret_hash, grant_id FROM credentials WHERE client_id = ?", (client_id,)
            ).fetchone()
        expected = row[0] if row else _hash(_SECRET_LABEL, "decoy")
        match = hmac.compare_digest(_hash(_SECRET_LABEL, client_secret), expected)
        return int(row[1]) if row and match else None

    def grant_of(self, client_id: str) -> Grant | None:
        """The grant of the credential ``client_id`` (for an app token already verified)."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_GRANT_COLUMNS} FROM grants g JOIN credentials c "  # noqa: S608
                "ON c.grant_id = g.id WHERE c.client_id = ?",
                (client_id,),
            ).fetchone()
        return _grant(row) if row else None

    def live_grants(self, app: str, session: str | None = None) -> list[Grant]:
        """The live grants of ``app`` (in ``session``), soonest to expire first."""
        now = self.now()
        query = (
            f"SELECT {_GRANT_COLUMNS} FROM grants g WHERE g.app = ? AND g.expires_at > ? "  # noqa: S608
            "AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.grant_id = g.id)"
        )
        args: tuple[object, ...] = (app, now)
        if session is not None:
            query += " AND g.session = ?"
            args = (*args, session)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY g.expires_at, g.id", args).fetchall()
        return [_grant(row) for row in rows]


def _grant(row: Any) -> Grant:
    """A grants row (sqlite3 rows are untyped; the schema fixes each column's type)."""
    gid, app, session, username, seat, created, expires, uses, redeemed, revoked = row
    return Grant(
        id=int(gid),
        app=str(app),
        session=str(session),
        username=str(username),
        seat=None if seat is None else int(seat),
        created_at=float(created),
        expires_at=float(expires),
        uses=int(uses),
        redeemed=int(redeemed),
        revoked_at=None if revoked is None else float(revoked),
    )


def open_store(config: RelayServiceConfig, clock: WallClock) -> InviteStore:
    """The invite store at ``[server] state_db``; a file that cannot be opened is exit 78."""
    try:
        return InviteStore(config.state_db, clock=clock)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(
            f"{config.path}: $.server.state_db: cannot open {config.state_db}: {exc}"
        ) from exc
