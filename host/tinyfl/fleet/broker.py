"""A private mosquitto on a free loopback port, for `tinyfl demo`, `tinyfl fleet` and the tests.

docs/ARCHITECTURE.md, section 4: the project starts the real broker itself, never a public one. Each broker gets its own
config, log file and port, so parallel runs and other brokers on the machine do not interfere.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tinyfl.errors import TinyFLError

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "mosquitto")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class BrokerUnavailable(TinyFLError):
    """mosquitto is not installed or did not come up."""


def find_mosquitto() -> str:
    """Path of the mosquitto binary (env TINYFL_MOSQUITTO overrides), or a clear error."""
    override = os.environ.get("TINYFL_MOSQUITTO")
    for candidate in (override,) if override else MOSQUITTO_CANDIDATES:
        path = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if path and os.access(path, os.X_OK):
            return path
    raise BrokerUnavailable(
        "mosquitto not found (looked for /usr/sbin/mosquitto and on PATH): run `make setup` "
        "(it installs the Debian package `mosquitto`), or set TINYFL_MOSQUITTO to its path"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out, so almost surely free for the next few moments."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class BrokerTls:
    """The files of a TLS listener: the CA that signed the server certificate, the certificate
    and its private key (PEM)."""

    ca_file: Path
    cert_file: Path
    key_file: Path


class MosquittoBroker:
    """One mosquitto process; `stop()` then `start()` restarts it on the same port.

    Attributes: host, port, url ("mqtt://127.0.0.1:PORT", or mqtts:// with `tls`), log_path,
    config_path. With `password_file` (mosquitto_passwd format) anonymous clients are refused;
    `acl_file` limits each user's topics; `tls` makes the one listener a TLS listener.
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        tls: BrokerTls | None = None,
    ) -> None:
        self.binary = find_mosquitto()
        self.host = host
        self.port = port or free_port(host)
        self.password_file = password_file
        self.acl_file = acl_file
        self.tls = tls
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self._console_path = self.workdir / "mosquitto.console"
        self._process: subprocess.Popen[bytes] | None = None
        self._write_config()

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _write_config(self) -> None:
        # `user` = the current user: as root, mosquitto would otherwise switch to user
        # "mosquitto", which cannot write the log in a private pytest tmp dir.
        user = pwd.getpwuid(os.getuid()).pw_name
        self.config_path.write_text(
            f"listener {self.port} {self.host}\n"
            + self._access_config()
            + "persistence false\n"
            # Rounds are a burst of small packets each way: without this, Nagle and delayed ACKs
            # add about 40 ms to every round of a small fleet (bench/coordinator.md).
            "set_tcp_nodelay true\n"
            # a coordinator behind a burst catches up instead of losing messages (docs/BROKER.md)
            "max_queued_messages 100000\n"
            f"user {user}\n"
            f"log_dest file {self.log_path}\n"
            "log_type all\n"
            "log_timestamp true\n"
            "log_timestamp_format %Y-%m-%dT%H:%M:%S\n"
            "connection_messages true\n"
        )

    def _access_config(self) -> str:
        """Who may connect: anyone, or (with a password file) only its users; TLS settings."""
        lines = []
        if self.password_file is None:
            lines.append("allow_anonymous true")
        else:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca_file}",
                f"certfile {self.tls.cert_file}",
                f"keyfile {self.tls.key_file}",
                "tls_version tlsv1.2",
            ]
        return "".join(line + "\n" for line in lines)

    def start(self) -> None:
        """Start (or restart) on the configured port and return once it accepts connections."""
        if self.running:
            return
        with open(self._console_path, "ab") as console:
            self._process = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerUnavailable(
                    f"mosquitto exited with {self._process.returncode}:\n{self.diagnostics()}"
                )
            if port_accepts(self.host, self.port):
                return
            time.sleep(0.02)
        self.stop()
        raise BrokerUnavailable(
            f"mosquitto did not accept connections on {self.url} within "
            f"{START_TIMEOUT} s:\n{self.diagnostics()}"
        )

    def stop(self) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL); clients see their connections drop."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def diagnostics(self, lines: int = 40) -> str:
        """The tail of the broker's console output and log, for failure messages."""
        parts = []
        for path in (self._console_path, self.log_path):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path}\n" + "\n".join(tail))
        return "\n".join(parts) or "(no output)"

    def __enter__(self) -> MosquittoBroker:  # noqa: PYI034 -- not meant for subclassing
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
