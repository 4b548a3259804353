"""Nodes on a live sensor stream (tinyfl/sensor_stream.h), emulated: four QEMU Cortex-M4 boards
play their HAR data as a sensor at 2000 readings per second (40 times HAR's 50 Hz) with the labels
the replay carries, cut windows as the readings come, embed them between polls and fill their
caches while paced rounds run. One board loses power mid-run and boots again from its state file.
The run must reach within 3 points of the same fleet loaded at boot, every board must embed every
window it was played (CRC of all its embeddings equal to the host's over its blob, no overruns),
the rebooted board must resume from its persisted head and round id, and the samples the fleet
holds must grow over the rounds (plotted by the report).
"""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.fleets import check_resumed, finish, power_cut_after_saves, start_coordinator
from tinyfl.coordinator.metrics import read_metrics
from tinyfl.data.packaged import cached
from tinyfl.fleet import Emulator, build_firmware
from tinyfl.fleet.pool import Fleet, FleetConfig
from tinyfl.model.artifacts import load_artifacts
from tinyfl.wire import DataBlob

pytestmark = [pytest.mark.firmware, pytest.mark.qemu, pytest.mark.broker]
NODES = 4
ROUNDS = 12
REPLAY_HZ = 2000
SEED = 3
STREAM = re.compile(r"stream: (\d+) readings, (\d+) windows, (\d+) embedded \(crc32 ([0-9a-f]{8})\), "
                    r"0 unlabelled, 0 mixed, (\d+) overruns, \d+ kept; (\d+) cached(; replay done)?")


@pytest.fixture(scope="module", autouse=True)
def firmware() -> None:
    build_firmware(Emulator.QEMU)


@pytest.fixture
def fleets(tmp_path: Path) -> Iterator[dict[str, Fleet]]:
    made = {name: Fleet(FleetConfig(nodes=NODES, emulator=Emulator.QEMU, model="har",
                                    data=cached("har").data, run_dir=tmp_path / name,
                                    fleet=name, seed=SEED, sensor_replay_hz=hz), out=io.StringIO())
            for name, hz in (("streamed", REPLAY_HZ), ("loaded", 0))}
    yield made
    for fleet in made.values():
        fleet.stop()


def run(fleet: Fleet, out: Path, *options: str) -> tuple[str, tuple[str, ...]] | None:
    """The fleet up, ROUNDS rounds; on the streamed fleet node02 has a power cut after two saved
    rounds (its log before the cut and its last save are returned)."""
    asyncio.run(fleet.up(fleet.prepare(), progress=False))
    coordinator = start_coordinator(fleet, out, "har", ROUNDS, "--seed", str(SEED), *options)
    cut = None
    try:
        if fleet.config.sensor_replay_hz:
            cut = power_cut_after_saves(fleet, fleet.nodes["node02"], 2)
    finally:
        output = finish(coordinator)
    assert coordinator.returncode == 0, output
    fleet.stop()
    return cut


def check_embedded(log: str, expected_crc: dict[int, int], n_samples: int) -> bool:
    """Every `stream:` line: the windows embedded so far are the blob's first ones, bit for bit.
    True when the replay ended (every window played and embedded)."""
    lines = STREAM.findall(log)
    assert lines, log
    for readings, windows, embedded, crc, overruns, _cached, done in lines:
        assert int(windows) == int(embedded) and int(overruns) == 0, log
        assert 0 <= int(readings) - int(windows) * 128 < 128 and int(windows) <= n_samples
        assert int(crc, 16) == expected_crc[int(embedded)], (embedded, log)
    return bool(lines[-1][6]) and int(lines[-1][2]) == n_samples


def test_boards_on_a_sensor_replay_train_as_well_as_boards_loaded_at_boot(
        fleets: dict[str, Fleet], tmp_path: Path) -> None:
    streamed, loaded = tmp_path / "streamed-run", tmp_path / "loaded-run"
    cut = run(fleets["streamed"], streamed, "--round-interval", "3")
    run(fleets["loaded"], loaded)
    assert cut is not None
    before, last = cut

    victim = fleets["streamed"].nodes["node02"]
    check_resumed(victim.log_text(), last)
    art = load_artifacts("har")
    for node_id, node in fleets["streamed"].nodes.items():
        blob = DataBlob.read(node.spec.blob)
        embeddings = art.embed(blob.samples)
        crc = {n: zlib.crc32(embeddings[:n].tobytes()) for n in range(blob.n_samples + 1)}
        log = node.log_text()
        assert f"replaying {blob.n_samples} raw windows" in log, log
        ended = check_embedded(log, crc, blob.n_samples)
        if node is victim:  # played again from the start after the reboot
            check_embedded(before, crc, blob.n_samples)
        else:
            assert ended, (node_id, log)  # played to the end

    streamed_records = read_metrics(streamed / "metrics.jsonl")
    loaded_records = read_metrics(loaded / "metrics.jsonl")
    samples = [r["samples"] for r in streamed_records]
    for node in ("node01", "node03", "node04"):  # each board's cache grew (node02's refilled)
        held = [r["answered_samples"][node] for r in streamed_records]
        assert held == sorted(held) and held[0] < held[-1], (node, held)
    assert samples[0] < samples[-1]  # caches filled as it ran
    assert loaded_records[0]["samples"] == loaded_records[-1]["samples"] >= samples[-1]
    report = subprocess.run([sys.executable, "-m", "tinyfl.cli.main", "report", "--run",
                             str(streamed)], capture_output=True, text=True, check=False)
    assert report.returncode == 0, report.stdout + report.stderr
    assert (streamed / "samples.png").is_file()
    final, reference = streamed_records[-1]["test_accuracy"], loaded_records[-1]["test_accuracy"]
    print(f"HAR on {NODES} QEMU boards: streamed {final:.4f} with node02 rebooted after round "
          f"{last[0]} (samples per round {samples}), loaded at boot {reference:.4f}")
    assert len(streamed_records) == ROUNDS >= 10
    assert final >= reference - 0.03
