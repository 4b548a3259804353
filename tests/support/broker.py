"""The tests use the package's own broker launcher (tinyfl.fleet.broker), plus what a locked
broker needs: a password file (written by mosquitto's own `mosquitto_passwd`) and an ACL file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tinyfl.fleet.broker import (
    BrokerTls,
    BrokerUnavailable,
    MosquittoBroker,
    free_port,
    port_accepts,
)

__all__ = [
    "BrokerTls",
    "BrokerUnavailable",
    "MosquittoBroker",
    "free_port",
    "port_accepts",
    "write_acl_file",
    "write_password_file",
]


def write_password_file(path: Path, users: dict[str, str]) -> Path:
    """A mosquitto password file with these users, hashed by mosquitto_passwd (Debian package
    mosquitto; its `$7$` PBKDF2-SHA512 format is the one the broker reads)."""
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        raise BrokerUnavailable("mosquitto_passwd not found: it comes with the mosquitto package")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    for user, password in users.items():
        # -b takes the password as an argument: fine for throwaway test passwords only.
        subprocess.run([tool, "-b", str(path), user, password], check=True, capture_output=True)
    path.chmod(0o600)
    return path


def write_acl_file(path: Path, rules: dict[str, list[str]]) -> Path:
    """An ACL file: for each user, the topic patterns it may read and write."""
    lines: list[str] = []
    for user, topics in rules.items():
        lines.append(f"user {user}")
        lines += [f"topic readwrite {topic}" for topic in topics]
        lines.append("")
    path.write_text("\n".join(lines))
    return path
