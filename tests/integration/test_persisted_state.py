"""Persisted node state against real parts: a fleet (`tinyfl.fleet`) of nodes with state files,
a real mosquitto and `tinyfl coordinate`. One node is killed (SIGKILL: a power cut) three times
during the run, first at a random point of a slow state write, then at random points of its
rounds, and restarted with the same state file: it must load the state it saved last (or, cut
during a write, the one before), with the head whose CRC it logged on saving, and the run must
complete.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.fleets import start_coordinator
from support.nodes import wait_until
from tinyfl.coordinator import METRICS_NAME, read_metrics
from tinyfl.data.packaged import cached
from tinyfl.fleet import Emulator, NodeProcess, build_firmware
from tinyfl.fleet.pool import Fleet, FleetConfig

pytestmark = [pytest.mark.firmware, pytest.mark.broker]

SAVED = re.compile(r"state: saved round (\d+) seq (\d+) slot (\d) head crc ([0-9a-f]{8})")
SAVING = re.compile(r"state: saving round (\d+)")
LOADED = re.compile(r"state: loaded round (\d+) seq (\d+) slot (\d) head crc ([0-9a-f]{8}) (trained|global)")
SERVED = re.compile(r"^.*round (\d+): \d+ samples", re.MULTILINE)
# The emulated flash of the native nodes: 2 ms per word, so a save of the NSL-KDD head (some
# hundred words) lasts long enough for a kill to land inside it.
WORD_US = 2000


@dataclass
class Saved:
    round_id: int
    seq: int
    crc: str


def saves(log: str) -> list[Saved]:
    return [Saved(int(m[1]), int(m[2]), m[4]) for m in SAVED.finditer(log)]


@pytest.fixture(scope="module", autouse=True)
def firmware() -> None:
    for emulator in Emulator:
        build_firmware(emulator)


def make_fleet(tmp_path: Path, emulator: Emulator, nodes: int, word_us: int) -> Fleet:
    config = FleetConfig(nodes=nodes, emulator=emulator, model="nsl-kdd",
                         data=cached("nsl-kdd").data, run_dir=tmp_path / "run", fleet="persist",
                         secure=False, state_word_us=word_us)
    return Fleet(config, out=io.StringIO())


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    fleet = make_fleet(tmp_path, Emulator.NATIVE, 3, WORD_US)
    yield fleet
    fleet.stop()


@pytest.fixture
def qemu_fleet(tmp_path: Path) -> Iterator[Fleet]:
    fleet = make_fleet(tmp_path, Emulator.QEMU, 2, WORD_US)
    yield fleet
    fleet.stop()


def restart(fleet: Fleet, node: NodeProcess) -> str:
    """Restarts `node` with its state file (start_node moves the killed run's log aside); returns
    its "state: ..." line."""
    fleet.start_node(node.spec.node_id)
    wait_until(lambda: "state: " in node.log_text() and "ready" in node.log_text(), 30,
               "the restarted node's state line", node.log_text)
    return next(ln for ln in node.log_text().splitlines() if "state: " in ln)


def cut_and_reboot(fleet: Fleet, node: NodeProcess) -> tuple[re.Match[str], int]:
    """Kills `node` (a power cut) and boots it again on its state file. It must load the state of
    its last completed save, or the one it was writing if that write completed: never anything
    older, never a mix (round, sequence and head CRC as logged on saving). Returns the load line
    and the round whose save was the last one started."""
    node.kill()
    before = node.log_text()  # (QEMU wrote its serial log up to the kill)
    done = {s.round_id: s for s in saves(before)}
    in_flight = int(SAVING.findall(before)[-1])
    loaded = LOADED.search(restart(fleet, node))
    assert loaded is not None, node.log_text()
    round_id = int(loaded[1])
    assert round_id >= saves(before)[-1].round_id, (loaded[0], before)
    if round_id in done:
        assert (int(loaded[2]), loaded[4]) == (done[round_id].seq, done[round_id].crc), loaded[0]
    else:
        assert round_id == in_flight, (loaded[0], before)
    assert loaded[5] == "trained"
    return loaded, in_flight


def test_killed_node_resumes_from_its_persisted_round_and_head(fleet: Fleet, tmp_path: Path) -> None:
    ids = fleet.prepare()
    asyncio.run(fleet.up(ids, progress=False))
    out = tmp_path / "out"
    rounds = 20  # about 0.8 s each: rounds left for the node after its second restart
    coordinator = start_coordinator(fleet, out, "nsl-kdd", rounds)
    victim = fleet.nodes["node02"]
    rng = random.Random()
    try:
        # 1. A power cut at a random point of a state write: right after the node logs that it
        # starts saving its second round, within the time the emulated flash needs for it.
        wait_until(lambda: len(saves(victim.log_text())) >= 1 and
                   len(SAVING.findall(victim.log_text())) >= 2, 120,
                   "node02 starting its second save", victim.log_text)
        time.sleep(rng.uniform(0.0, 1.0))  # a save takes about 0.8 s
        loaded, in_flight = cut_and_reboot(fleet, victim)
        round_id = int(loaded[1])
        outcome = "new" if round_id == in_flight else "old"
        print(f"cut during the save of round {in_flight}: loaded the {outcome} state")

        # 2. A cut at a random time after the restarted node served a round of its own, now with
        # a fast flash (a save takes about a millisecond, rounds most of the time): it loads
        # exactly the state it saved last, or (rarely) the one it was writing when cut.
        wait_until(lambda: len(saves(victim.log_text())) >= 1, 120,
                   "the restarted node02 saving a round", victim.log_text)
        served_after = [int(r) for r in SERVED.findall(victim.log_text())]
        assert served_after and min(served_after) > round_id  # it refused what it had served
        victim.spec = dataclasses.replace(victim.spec, state_word_us=0)
        cut_and_reboot(fleet, victim)  # (at a random point of its rounds and saves)
        wait_until(lambda: len(saves(victim.log_text())) >= 1, 120,
                   "node02 saving a round on a fast flash", victim.log_text)
        time.sleep(rng.uniform(0.0, 2.0))
        assert coordinator.poll() is None, "the run ended before the second cut"
        last = saves(victim.log_text())[-1]
        cut_and_reboot(fleet, victim)

        output, _ = coordinator.communicate(timeout=300)
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
            coordinator.wait()
    assert coordinator.returncode == 0, output
    records = read_metrics(out / METRICS_NAME)
    assert len(records) == rounds and all(r["status"] == "closed" for r in records), records
    # the node kept serving rounds, each one saved once (one erase, one write)
    wait_until(lambda: SAVED.search(victim.log_text()) is not None, 30,
               "the restarted node02 saving a round", victim.log_text)
    final = victim.log_text()
    for line in SAVED.finditer(final):
        assert int(line[2]) > last.seq
    flash = re.findall(r"flash so far: (\d+) erases, (\d+) writes, (\d+) B", final)
    assert flash and all(int(e) == int(w) for e, w, _ in flash)


@pytest.mark.qemu
def test_qemu_board_keeps_its_state_in_a_semihosted_file(qemu_fleet: Fleet, tmp_path: Path) -> None:
    """The Cortex-M4 image's state file through semihosting: saved after each round, loaded
    after QEMU is killed at a random point of a (slow, emulated) write and booted again."""
    fleet = qemu_fleet
    asyncio.run(fleet.up(fleet.prepare(), progress=False))
    out = tmp_path / "out"
    rounds = 6
    coordinator = start_coordinator(fleet, out, "nsl-kdd", rounds)
    victim = fleet.nodes["node02"]
    try:
        wait_until(lambda: len(saves(victim.log_text())) >= 1 and
                   len(SAVING.findall(victim.log_text())) >= 2, 120,
                   "node02 starting its second save", victim.log_text)
        assert "state: nothing loaded: no_data" in victim.log_text()  # a fresh board and file
        time.sleep(random.uniform(0.0, 1.0))  # a save takes about 0.8 s
        loaded, in_flight = cut_and_reboot(fleet, victim)
        outcome = "new" if int(loaded[1]) == in_flight else "old"
        print(f"qemu cut during the save of round {in_flight}: loaded the {outcome} state")
        output, _ = coordinator.communicate(timeout=300)
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
            coordinator.wait()
    assert coordinator.returncode == 0, output
    assert len(read_metrics(out / METRICS_NAME)) == rounds
    state = victim.spec.state_file
    assert state is not None and state.stat().st_size == 2 * 4096  # both slots written
