"""The broker options that `tinyfl coordinate` and `tinyfl bridge` share: URL, user, password
source and CA file, turned into one `BrokerAddress` (docs/BROKER.md).

The password is taken from a file or from TINYFL_MQTT_PASSWORD rather than from an option:
an option's value is readable by every user of the machine in `ps` and stays in the shell
history. A password written into the --broker URL works but has the same leak; the help says so.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tinyfl.transport.address import PASSWORD_ENV, BrokerAddress, address_from_options

__all__ = ["CREDENTIALS_HELP", "add_broker_options", "broker_from_args"]

CREDENTIALS_HELP = (
    f"The password comes from --password-file or the environment variable {PASSWORD_ENV}, "
    "never from an option: a password on the command line (also inside the --broker URL) is "
    "visible to other users in `ps` and stays in the shell history."
)


def add_broker_options(
    group: argparse._ActionsContainer, *, default: str | None, credentials: bool
) -> None:
    """--broker and --ca-file, and with `credentials` --username and --password-file."""
    where = "mqtt://[USER@]HOST[:PORT] or mqtts://... for TLS (ports 1883 and 8883)"
    if default is None:
        group.add_argument("--broker", required=True, help=f"broker as {where}")
    else:
        group.add_argument("--broker", default=default,
                           help=f"broker as {where} (default: %(default)s)")
    group.add_argument(
        "--ca-file", type=Path, metavar="PEM",
        help="CA certificate(s) that signed the broker's TLS certificate, for a private CA "
        "(mqtts:// only; default: the system's trusted CAs). The certificate and the host name "
        "are always checked",
    )
    if not credentials:
        return
    group.add_argument("--username", metavar="NAME", help="MQTT user name (or USER@ in --broker)")
    group.add_argument(
        "--password-file", type=Path, metavar="FILE",
        help=f"read the MQTT password from the first line of FILE (else ${PASSWORD_ENV} is "
        "used when set). Not an option value: that would show in `ps` and the shell history",
    )


def broker_from_args(args: argparse.Namespace, *, credentials: bool) -> BrokerAddress:
    """The address with credentials; UsageError (exit 2) for conflicting or unreadable ones.
    Without `credentials` the environment's password is not looked at."""
    return address_from_options(
        args.broker,
        username=getattr(args, "username", None),
        password_file=getattr(args, "password_file", None),
        ca_file=args.ca_file,
        environ=None if credentials else {},
    )
