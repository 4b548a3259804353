"""A locked-down mosquitto for a provisioned fleet: password file, ACL and config text.

- Password file: mosquitto 2's `$7$` lines, PBKDF2-HMAC-SHA512 over a 12-byte random salt with
  101 iterations, base64 (what `mosquitto_passwd` writes; made here so nothing shells out).
- ACL: each node may write only its own `hello`, `status` and `update` topics and read only
  `global`; the coordinator reads the nodes' topics and writes `global` and its own
  `coordinator/` topics; the operator's `admin` account reads and writes only the nodes' retained
  `hello` and `status` topics, to clear those of a revoked or fake node (docs/SECURITY.md,
  "Revoking a node"). Anything else is denied (mosquitto's default once an ACL file is set).
- Config: no anonymous clients, a plain listener for nodes without a TLS stack (serial, QEMU and
  native nodes authenticate their frames instead) and a TLS listener with the fleet's CA.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import secrets
from collections.abc import Iterable
from pathlib import Path

from tinyfl.provision.keys import ADMIN_USER, COORDINATOR_USER

__all__ = ["acl_text", "mosquitto_conf", "password_line", "verify_password_line"]

PBKDF2_ITERATIONS = 101  # mosquitto 2.0's default for $7$
SALT_BYTES = 12


def password_line(user: str, password: str, salt: bytes | None = None) -> str:
    """One line of a mosquitto password file for `user`."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS, 64)
    return (f"{user}:$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(digest).decode()}")


def verify_password_line(line: str, password: str) -> bool:
    """Whether a `$7$` line accepts `password` (as mosquitto checks it)."""
    _, _, hashed = line.partition(":")
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    salt, expected = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]), len(expected))
    return secrets.compare_digest(digest, expected)


def acl_text(prefix: str, node_ids: Iterable[str]) -> str:
    lines = ["# TinyFL fleet ACL (tinyfl provision): a node writes only its own topics.", "",
             f"user {COORDINATOR_USER}",
             *(f"topic read {prefix}/nodes/+/{kind}" for kind in ("hello", "status", "update")),
             f"topic readwrite {prefix}/global",
             f"topic readwrite {prefix}/coordinator/#",
             # `tinyfl label` signs with the node's frame key, which coordinator.json holds
             f"topic write {prefix}/nodes/+/label", "",
             # read: to find retained topics of unknown ids; write: an empty retained message
             # deletes one. Not `update` nor `global`: admin never takes part in a round.
             f"user {ADMIN_USER}",
             *(f"topic readwrite {prefix}/nodes/+/{kind}" for kind in ("hello", "status")), ""]
    for node in node_ids:
        lines += [f"user {node}",
                  *(f"topic write {prefix}/nodes/{node}/{kind}"
                    for kind in ("hello", "status", "update")),
                  f"topic read {prefix}/global",
                  f"topic read {prefix}/nodes/{node}/label", ""]
    return "\n".join(lines)


def mosquitto_conf(folder: Path, bind: str, port: int, tls_port: int,
                   persistence: bool = True, log_file: str | None = None) -> str:
    """mosquitto.conf for the files in `folder` (absolute paths, so it runs from anywhere). It
    runs as the user who provisioned (the files are 0600 theirs; started as root, mosquitto would
    otherwise switch to its own user and could not read them; for a system service, chown the
    folder to that user and change `user`)."""
    folder = folder.resolve()
    lines = [
        "# TinyFL provisioned broker (tinyfl provision); start: mosquitto -c mosquitto.conf",
        f"user {pwd.getpwuid(os.getuid()).pw_name}",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {folder / 'passwd'}",
        f"acl_file {folder / 'acl'}",
        f"persistence {'true' if persistence else 'false'}",
        f"persistence_location {folder}/",
        # frames are a few KB: refuse anything larger before it reaches a subscriber, and let a
        # coordinator that falls behind a burst (or a flood) catch up instead of losing messages
        "message_size_limit 1048576",
        "max_queued_messages 100000",
        *([f"log_dest file {log_file}", "log_type all"] if log_file else []),
        "",
        "# nodes without a TLS stack (serial, QEMU, native): credentials plus frame HMAC",
        f"listener {port} {bind}",
        "",
        "# the coordinator, tinyfl bridge and ESP32 boards: mqtts:// with ca.crt",
        f"listener {tls_port} {bind}",
        f"cafile {folder / 'ca.crt'}",
        f"certfile {folder / 'server.crt'}",
        f"keyfile {folder / 'server.key'}",
        "tls_version tlsv1.2",
        "",
    ]
    return "\n".join(lines)
