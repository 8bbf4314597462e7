"""Who may sit where: the ``allow`` list of host.toml (host rule 2).

Empty: first come, first served. Otherwise only the users listed may take a
seat; ``"user = seat"`` reserves that seat for that user alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class Allowlist:
    """``allow`` as {user: their fixed seat, or None for any unreserved one}."""

    def __init__(self, allowed: Mapping[str, int | None]) -> None:
        self._allowed = dict(allowed)
        self._reserved = {seat for seat in allowed.values() if seat is not None}

    @property
    def first_come(self) -> bool:
        """True when ``allow`` is empty: any user may take a free seat."""
        return not self._allowed

    def may_sit(self, user: str) -> bool:
        return not self._allowed or user in self._allowed

    def seat_for(self, user: str, free: Iterable[int]) -> int | None:
        """Of the ``free`` seats (config order), the one ``user`` may take now, if any.

        Their own when ``allow`` reserves one for them (and it is free), else the
        first free seat nobody has reserved.
        """
        wanted = self._allowed.get(user)
        for seat in free:
            if seat == wanted or (wanted is None and seat not in self._reserved):
                return seat
        return None
