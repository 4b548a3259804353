"""Making a running mosquitto read its changed password file and ACL.

mosquitto rereads `password_file` and `acl_file` on SIGHUP (and then disconnects clients whose
account is gone). The one broker TinyFL may signal on its own is the one `tinyfl fleet up`
started for this provisioning folder: the run's fleet.json records its pid together with its
start time and command line, and the signal goes only to a process for which both still match
(tinyfl.fleet.state.verify), never to a pid the kernel has since handed to another program. Any
other broker (a system service, one started by hand) is the operator's to reload.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tinyfl.fleet.state import FLEET_FILE, FleetStateError, Liveness, read_state, verify

__all__ = ["RELOAD_HINT", "reload_fleet_broker"]

RELOAD_HINT = ("reload the broker so it drops the account: `kill -HUP <mosquitto pid>` or "
               "`systemctl reload mosquitto` (it rereads the password file and ACL)")


def reload_fleet_broker(folder: Path) -> int | None:
    """SIGHUP to the mosquitto that `tinyfl fleet up` runs on `folder` (runs/<id>/provision);
    returns its pid, or None when no such broker is running."""
    run_dir = folder.resolve().parent
    if not (run_dir / FLEET_FILE).is_file():
        return None
    try:
        state = read_state(run_dir)
    except FleetStateError:
        return None  # not a fleet run folder (or a damaged one): nothing we may signal
    if not state.broker_owned or not _names(state.provision, folder):
        return None
    for record in state.processes:
        if record.role == "broker" and verify(record) is Liveness.RUNNING:
            try:
                os.kill(record.pid, signal.SIGHUP)
            except ProcessLookupError:  # exited between the check and the signal
                return None
            return record.pid
    return None


def _names(recorded: str, folder: Path) -> bool:
    """Whether the run record's provisioning folder is `folder`. `fleet up` records it as given
    (runs/<id>/provision, relative to where it ran), so a relative record is matched by its
    place beside the record rather than against today's working directory."""
    if not recorded:
        return False
    path = Path(recorded)
    if path.is_absolute():
        return path.resolve() == folder.resolve()
    return path.name == folder.resolve().name
