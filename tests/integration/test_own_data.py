"""Bring your own data, end to end on real data TinyFL does not package as a task: the smartwatch
shoulder-exercise recordings (Burns et al., Physiological Measurement 2018; tinyfl.data.watch)
written as a folder of CSV recordings, imported with `tinyfl data import-csv`, then trained by an
emulated fleet of QEMU Cortex-M4 boards with `tinyfl demo --model models/watch --data FILE`, the
commands of README.md's "Bring your own data". The CSV import must give exactly the file the
committed model folder was built from, every board must embed its windows with the watch backbone
compiled into its image, and the federated head must land between local-only and central.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tinyfl.cli.main import main
from tinyfl.coordinator.metrics import read_metrics
from tinyfl.data.dataset import load_dataset
from tinyfl.model.artifacts import load_artifacts
from tinyfl.report import load_baselines

pytestmark = [pytest.mark.firmware, pytest.mark.qemu, pytest.mark.broker]
NODES = 6  # the watch fleet's 6 subjects, one per board
ROUNDS = 20


def test_csv_recordings_to_a_federated_head_on_qemu_boards(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    recordings, data, run = tmp_path / "recordings", tmp_path / "watch.npz", tmp_path / "run"
    assert main(["data", "fetch", "watch", "--csv", str(recordings)]) == 0
    assert len(list(recordings.glob("*.csv"))) == 140
    assert main(["data", "import-csv", str(recordings), "--window", "128", "--stride", "64",
                 "--out", str(data)]) == 0
    art = load_artifacts("watch")
    assert load_dataset(data).sha256 == art.data_sha256  # the file models/watch was built from

    assert main(["demo", "--model", "models/watch", "--data", str(data), "--nodes", str(NODES),
                 "--rounds", str(ROUNDS), "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "partition by-group" in out or ", by-group," in out, out
    records = read_metrics(run / "metrics.jsonl")
    assert len(records) == ROUNDS and all(r["answered"] == NODES for r in records)
    for i in range(1, NODES + 1):
        log = (run / "nodes" / f"node{i:02d}.log").read_text()
        assert re.search(rf"raw windows through the watch backbone {art.model_hash.hex()} -> "
                         r"\d+ embeddings", log), log
    refs = load_baselines(run / "baselines.json")
    final = records[-1]["test_accuracy"]
    print(f"watch on {NODES} QEMU boards: federated {final:.4f}, central "
          f"{refs.central.accuracy:.4f}, local-only {refs.local_only.mean_accuracy:.4f}")
    assert final >= refs.central.accuracy - 0.03
    assert final >= refs.local_only.mean_accuracy + 0.03
    assert (run / "model.tflite").is_file() and (run / "report.html").is_file()
