"""Nodes on a live sensor stream (tinyfl/sensor_stream.h), emulated: four QEMU Cortex-M4 boards
play their HAR data as a sensor at 2000 readings per second (40 times HAR's 50 Hz) with the labels
the replay carries, cut windows as the readings come, embed them between polls and fill their
caches while paced rounds run. The run must reach within 3 points of the same fleet loaded at
boot, every board must embed every window it was played (CRC of all its embeddings equal to the
host's over its blob, no overruns), and the samples the fleet holds must grow over the rounds.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import pytest

from tinyfl.cli.main import main
from tinyfl.coordinator.metrics import read_metrics
from tinyfl.model.artifacts import load_artifacts
from tinyfl.wire import DataBlob

pytestmark = [pytest.mark.firmware, pytest.mark.qemu, pytest.mark.broker]
NODES = 4
ROUNDS = 12
COMMON = ["--nodes", str(NODES), "--rounds", str(ROUNDS), "--seed", "3"]


def test_boards_on_a_sensor_replay_train_as_well_as_boards_loaded_at_boot(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    streamed, loaded = tmp_path / "streamed", tmp_path / "loaded"
    assert main(["demo", *COMMON, "--stream", "--out", str(streamed)]) == 0  # 2000 Hz, 3 s
    assert main(["demo", *COMMON, "--out", str(loaded)]) == 0
    capsys.readouterr()

    art = load_artifacts("har")
    for i in range(1, NODES + 1):
        blob = DataBlob.read(streamed / "data" / f"node{i:02d}.blob")
        log = (streamed / "nodes" / f"node{i:02d}.log").read_text()
        assert f"replaying {blob.n_samples} raw windows" in log, log
        done = re.search(r"stream: (\d+) readings, (\d+) windows, (\d+) embedded \(crc32 "
                         r"([0-9a-f]{8})\), 0 unlabelled, 0 mixed, (\d+) overruns, \d+ kept; "
                         r"(\d+) cached; replay done", log)
        assert done is not None, log
        assert int(done.group(1)) == blob.n_samples * 128
        assert int(done.group(2)) == int(done.group(3)) == blob.n_samples
        assert int(done.group(5)) == 0
        assert int(done.group(4), 16) == zlib.crc32(art.embed(blob.samples).tobytes())

    streamed_records = read_metrics(streamed / "metrics.jsonl")
    loaded_records = read_metrics(loaded / "metrics.jsonl")
    samples = [r["samples"] for r in streamed_records]
    for node in streamed_records[-1]["answered_samples"]:  # each board's cache grew
        held = [r["answered_samples"][node] for r in streamed_records]
        assert held == sorted(held) and held[0] < held[-1], (node, held)
    assert (streamed / "samples.png").is_file()
    assert samples[0] < samples[-1] and samples == sorted(samples)  # caches filled as it ran
    assert loaded_records[0]["samples"] == loaded_records[-1]["samples"] == samples[-1]
    final, reference = streamed_records[-1]["test_accuracy"], loaded_records[-1]["test_accuracy"]
    print(f"HAR on {NODES} QEMU boards: streamed {final:.4f} (samples per round {samples}), "
          f"loaded at boot {reference:.4f}")
    assert len(streamed_records) == ROUNDS >= 10
    assert final >= reference - 0.03
