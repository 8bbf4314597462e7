"""A real Mosquitto broker on a free loopback port, with passwords and the coplay ACL."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from relay.procs import free_port, kill_process, stop_process, wait_listening
from relay.topics import mosquitto_acl

HOST_USER = "streamer"
GUEST_USERS = ("alice", "bob", "carol", "dave")
ADMIN_USER = "admin"


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise RuntimeError(
            "mosquitto is not installed: apt-get install -y mosquitto mosquitto-clients"
        )
    return found


def mosquitto_passwd_binary() -> str:
    found = shutil.which("mosquitto_passwd") or shutil.which(
        "mosquitto_passwd", path="/usr/bin:/usr/sbin"
    )
    if not found:
        raise RuntimeError("mosquitto_passwd is missing: apt-get install -y mosquitto")
    return found


@dataclass
class Mosquitto:
    """One Mosquitto process; ``restart`` keeps the port, so clients can reconnect."""

    workdir: Path
    port: int = field(default_factory=free_port)
    passwords: dict[str, str] = field(default_factory=dict)
    anonymous: bool = (
        False  # True: no passwords at all (allow_anonymous true), the ACL still applies
    )
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        users = (HOST_USER, *GUEST_USERS, ADMIN_USER)
        self.passwords = {user: secrets.token_urlsafe(12) for user in users}
        pwfile = self.workdir / "passwd"
        # plain "user:password" lines hashed in place: no password on any command line
        pwfile.write_text("".join(f"{u}:{p}\n" for u, p in self.passwords.items()))
        pwfile.chmod(0o600)
        subprocess.run([mosquitto_passwd_binary(), "-U", str(pwfile)], check=True)
        acl = mosquitto_acl([HOST_USER], prefix="+")  # "+": each test has its own prefix
        acl += f"\nuser {ADMIN_USER}\ntopic readwrite #\n"
        (self.workdir / "acl").write_text(acl)
        (self.workdir / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\n"
            # as root Mosquitto would switch to user "mosquitto", who cannot read our files
            f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
            + ("allow_anonymous true\n" if self.anonymous else "allow_anonymous false\n")
            + ("" if self.anonymous else f"password_file {pwfile}\n")
            + f"acl_file {self.workdir / 'acl'}\n"
            "persistence false\n"
            # Nagle on the broker's sockets holds a frame behind an unacked PUBACK/PINGRESP
            # for a delayed-ACK period (~40 ms); coplay deployments turn it off too.
            "set_tcp_nodelay true\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\n"
        )

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        with open(self.workdir / "mosquitto.log", "ab") as log:
            self.proc = subprocess.Popen(
                [mosquitto_binary(), "-c", str(self.workdir / "mosquitto.conf")],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        try:
            wait_listening(self.port, proc=self.proc)
        except TimeoutError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, 5.0)
        self.proc = None

    def kill(self) -> None:
        """Die as a crashed broker does: no clean disconnects, so Last Wills are not sent."""
        if self.proc is not None:
            kill_process(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
