"""A friend joins with a link alone: real relay, real host, real ``coplay-guest join`` processes.

The relay runs with its defaults (``guest_tokens = "invite"``): the app's own
credentials stay with the host, and the guest processes get an environment and
a state directory with nothing of the streamer's in them.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from relay.frames import Button
from tests.support.stack import Stack, StackGuest, StackHost, press_and_see

ONE_SENTENCE = re.compile(r"^coplay-guest: [^\n]+; ask the streamer for a new join link$")


def playing(stack: Stack) -> tuple[StackHost, str]:
    relay = stack.relay(guest_tokens=None)
    host = stack.host(relay)
    host.wait_ready()
    return host, stack.invite(host, "alice")


def last_line(guest: StackGuest) -> str:
    lines = [line for line in guest.log_text().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def no_streamer_secret(stack: Stack, guest: StackGuest) -> None:
    """Neither the guest's environment nor any file in its state directory holds the app's."""
    secret = stack.relays[0].client_secret
    assert not any(secret in value for value in guest.env.values())
    assert "COPLAY_APP_CLIENT_SECRET" not in guest.env
    files = [p for p in guest.state_dir.rglob("*") if p.is_file()]
    assert files, "the guest keeps its redeem in its state directory"
    for path in files:
        assert secret not in path.read_text(errors="replace"), path
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"


def test_a_friend_with_only_the_link_plays(stack: Stack) -> None:
    host, link = playing(stack)
    assert link.startswith(stack.relays[0].api_url + "/join#")
    guest = stack.join(link)
    assert guest.wait_seated() == 2
    press_and_see(guest, host, "A")
    assert host.lines("input")[-1]["user"] == "alice"
    no_streamer_secret(stack, guest)
    (kept,) = stack.kept_invites(guest)
    assert (kept["username"], kept["session"]) == ("alice", "s1")
    # and the streamer's own app credentials no longer mint a token for a guest (the default)
    relay = stack.relays[0]
    reply = relay.post(
        "/openapi/rm/user/token",
        {"username": "mallory", "cid": relay.cid("m1")},
        headers={"Authorization": relay.app_token()},
    )
    assert reply.status_code == 403 and "join link" in reply.json()["body"]


def test_the_link_again_needs_no_new_redeem_and_a_used_link_elsewhere_exits_77(
    stack: Stack, tmp_path: Path
) -> None:
    host, link = playing(stack)
    first = stack.join(link)
    first.wait_seated()
    first.signal(2)  # SIGINT: Bye, exit 0
    assert first.wait_exit(20) == 0
    again = stack.join(link, workdir=first.state_dir.parent)  # same machine, same state dir
    again.wait_seated()
    press_and_see(again, host, "B")
    relay_log = stack.relays[0].log_text()
    assert relay_log.count('"invite_redeemed"') == 1, "the second run reused the kept redeem"

    elsewhere = stack.join(link, "alice")  # another machine: a fresh state directory
    assert elsewhere.wait_exit(30) == 77
    assert re.fullmatch(
        r"coplay-guest: this join link does not work any more \(used up, expired, revoked or "
        r"mistyped\); ask the streamer for a new join link",
        last_line(elsewhere),
    ), last_line(elsewhere)


def test_revoke_during_play_cuts_the_friend_off(stack: Stack) -> None:
    host, link = playing(stack)
    relay = stack.relays[0]
    guest = stack.join(link)
    guest.wait_seated()
    (kept,) = stack.kept_invites(guest)
    bit = 1 << int(Button.START)
    before = len(host.lines())
    guest.send(press="START")  # held when the streamer revokes
    host.wait_lines("input", after=before, buttons=bit)

    done = stack.host_cli(host, "revoke", "alice")
    revoked_at = time.monotonic_ns()
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    # the Last Will (Bye) or, if the cut frames make the host's stale timer fire first, stale
    lines = host.jsonl.wait_for(
        lambda ls: any(x["reason"] in ("bye", "stale") for x in ls[before:]), 5, host.alive
    )
    neutral = next(x for x in lines[before:] if x["reason"] in ("bye", "stale"))
    assert neutral["buttons"] == 0 and neutral["axes"] == [0, 0, 0, 0, 0, 0]
    assert neutral["t_ns"] - revoked_at < 1_000_000_000, "the pad went neutral within 1 s"

    assert guest.wait_exit(30) == 77
    line = last_line(guest)
    assert ONE_SENTENCE.fullmatch(line), line
    assert "revoked" in line
    friend = {"appClientId": kept["app_client_id"], "appClientSecret": kept["app_client_secret"]}
    assert relay.friend_app_token(friend).status_code == 401
    listing = stack.host_cli(host, "invites")
    assert listing.returncode == 0 and "alice" not in listing.stdout


def test_relay_killed_and_restarted_keeps_grants_and_revocations(stack: Stack) -> None:
    host, alice_link = playing(stack)
    relay = stack.relays[0]
    bob_link = stack.invite(host, "bob", "--uses", "2")
    alice = stack.join(alice_link, "alice")
    alice.wait_seated()
    bob = stack.join(bob_link, "bob")
    bob.wait_log(
        lambda e: e.get("event") == "link_status" and e.get("state") == "connected", timeout=30
    )
    assert stack.host_cli(host, "revoke", "bob").returncode == 0
    assert bob.wait_exit(30) == 77

    relay.kill()  # SIGKILL mid-session
    relay.start()
    press_and_see(alice, host, "X", timeout=40)  # reconnected and playing on

    (alice_kept,) = stack.kept_invites(alice)
    alice_cred = {
        "appClientId": alice_kept["app_client_id"],
        "appClientSecret": alice_kept["app_client_secret"],
    }
    assert relay.friend_app_token(alice_cred).status_code == 200  # the grant survived
    (bob_kept,) = stack.kept_invites(bob)
    bob_cred = {
        "appClientId": bob_kept["app_client_id"],
        "appClientSecret": bob_kept["app_client_secret"],
    }
    assert relay.friend_app_token(bob_cred).status_code == 401  # still revoked
    assert relay.redeem(bob_link.partition("#")[2]).status_code == 401  # its second use too
    listing = stack.host_cli(host, "invites")
    rows = [line.split() for line in listing.stdout.splitlines()]
    assert rows[0][:2] == ["USER", "SEAT"]
    assert [row[0] for row in rows[1:]] == ["alice"]
    assert alice_link.partition("#")[2] not in listing.stdout + listing.stderr
