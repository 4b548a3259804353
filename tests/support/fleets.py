"""A `tinyfl.fleet` Fleet with `tinyfl coordinate` running against it in a subprocess, and a power
cut of one of its nodes: what the fleet-level integration tests share."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from support.nodes import wait_until
from tinyfl.fleet import NodeProcess
from tinyfl.fleet.pool import Fleet, coordinate_command

SAVED = re.compile(r"state: saved round (\d+) seq (\d+) slot (\d) head crc ([0-9a-f]{8})")
LOADED = re.compile(r"state: loaded round (\d+) seq (\d+) slot (\d) head crc ([0-9a-f]{8}) "
                    r"(trained|global)")
SERVED = re.compile(r"^.*round (\d+): \d+ samples", re.MULTILINE)


def start_coordinator(fleet: Fleet, out: Path, task: str, rounds: int,
                      *options: str) -> subprocess.Popen[str]:
    """`tinyfl coordinate` on the fleet's broker (its account and keys when provisioned), with a
    round that may close without a dead node (min 1 client, 20 s timeout, no backoff)."""
    connect = shlex.split(coordinate_command(fleet.state()))[1:]
    return subprocess.Popen(
        [sys.executable, "-m", "tinyfl.cli.main", *connect, "--task", task, "--rounds",
         str(rounds), "--min-clients", "1", "--round-timeout", "20", "--straggler-backoff", "0",
         "--out", str(out), *options],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(coordinator: subprocess.Popen[str], timeout: float = 300) -> str:
    """Waits for the coordinator to end (killing it if the wait fails); its output."""
    try:
        output, _ = coordinator.communicate(timeout=timeout)
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
            coordinator.wait()
    return output


def power_cut_after_saves(fleet: Fleet, node: NodeProcess, saves: int) -> tuple[str, tuple[str, ...]]:
    """Once `node` saved `saves` rounds, kills it (no DISCONNECT: a power cut) and boots it again
    on its state. Returns its log before the cut and its last save (round, seq, slot, head CRC)."""
    wait_until(lambda: len(SAVED.findall(node.log_text())) >= saves, 120,
               f"{node.spec.node_id} saving {saves} rounds", node.log_text)
    node.kill()
    before = node.log_text()
    last: tuple[str, ...] = SAVED.findall(before)[-1]
    fleet.start_node(node.spec.node_id)  # (moves the dead run's log aside)
    wait_until(lambda: "state: " in node.log_text(), 60,
               f"{node.spec.node_id} booting again", node.log_text)
    return before, last


def check_resumed(log: str, last: tuple[str, ...]) -> None:
    """The rebooted node loaded exactly its last save (round, sequence, head) and served only
    rounds after it, at least one."""
    loaded = LOADED.search(log)
    assert loaded is not None, log
    assert (loaded[1], loaded[2], loaded[4], loaded[5]) == (last[0], last[1], last[3], "trained"), \
        (loaded[0], last)
    served = [int(r) for r in SERVED.findall(log)]
    assert served and min(served) > int(last[0]), log
