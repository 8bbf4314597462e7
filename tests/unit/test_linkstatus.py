"""The status board a link reports to: states, final states, and the callback error count."""

from __future__ import annotations

import structlog

from relay.errors import AuthError
from relay.linkstatus import LinkState, LinkStatus, StatusBoard


def board_with_log() -> tuple[StatusBoard, list[LinkStatus]]:
    seen: list[LinkStatus] = []
    return StatusBoard(seen.append, structlog.get_logger("test")), seen


def test_lost_before_the_first_connect_is_starting_after_it_reconnecting() -> None:
    board, seen = board_with_log()
    board.attempt()
    board.lost("broker unreachable")
    board.attempt()
    board.connected()
    board.lost("connection lost")
    assert [(s.state, s.reason, s.attempts) for s in seen] == [
        (LinkState.STARTING, "broker unreachable", 1),
        (LinkState.CONNECTED, "", 0),
        (LinkState.RECONNECTING, "connection lost", 0),
    ]


def test_refused_is_final_until_stopped() -> None:
    board, seen = board_with_log()
    board.give_up(AuthError("refused for good"))
    board.lost("connection lost")
    board.connected()
    assert board.status.state is LinkState.REFUSED
    assert isinstance(board.failure, AuthError)
    board.stopped()
    board.connected()
    assert [s.state for s in seen] == [LinkState.REFUSED, LinkState.STOPPED]


def test_callback_errors_are_counted_in_the_status_without_a_new_state() -> None:
    board, seen = board_with_log()
    board.connected()
    try:
        raise RuntimeError("handler bug")
    except RuntimeError:
        board.callback_failed("message_handler", topic="t")
        board.callback_failed("message_handler", topic="t")
    assert board.status.callback_errors == 2
    assert board.status == LinkStatus(LinkState.CONNECTED)  # same state: equal statuses
    assert len(seen) == 1  # no on_status for an error alone
    board.lost("connection lost")
    assert seen[-1].callback_errors == 2


def test_an_on_status_that_raises_is_counted() -> None:
    def broken(status: LinkStatus) -> None:
        raise ValueError("status bug")

    board = StatusBoard(broken, structlog.get_logger("test"))
    board.connected()
    board.lost("connection lost")
    assert board.status.callback_errors == 2
    assert board.status.state is LinkState.RECONNECTING
