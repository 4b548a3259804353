"""A model with a DSP stage, end to end on QEMU Cortex-M4 boards: `tinyfl model build --dsp`
(spectral bands and statistics of every channel of the HAR windows, an MLP backbone on the
features), compiled into the boards' image with its stage record, four boards that turn their raw
windows into features and embeddings, and a federated head that must land within a point of
central training on the same fleet data.

Bit-exactness: every board logs the CRC32 of the features its DSP stage made and of the
embeddings, over every window of its data blob; the host recomputes both from the same blob with
tinyfl.dsp.stage and the numpy backbone.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import pytest

from tinyfl.cli.main import main
from tinyfl.coordinator.metrics import read_metrics
from tinyfl.data.packaged import cached
from tinyfl.model.artifacts import load_artifacts
from tinyfl.report import load_baselines
from tinyfl.wire import DataBlob

pytestmark = [pytest.mark.firmware, pytest.mark.qemu, pytest.mark.broker]
NODES = 4
ROUNDS = 20


def test_a_spectral_stage_runs_bit_exactly_on_qemu_boards_and_federates(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    har, folder, run = cached("har").data, tmp_path / "har-spectral", tmp_path / "run"
    assert main(["model", "build", "--data", str(har), "--source-groups", "1,3,5",
                 "--test-groups", "2,4,9,10,12,13,18,20,24", "--dsp", "spectral:bands=16",
                 "--dsp", "stats", "--epochs", "40", "--out", str(folder)]) == 0
    art = load_artifacts(folder)
    assert art.stage is not None and [b.name for b in art.stage.blocks] == ["spectral", "stats"]
    assert art.input_shape == (128, 6) and art.metadata["backbone"]["family"] == "mlp"

    assert main(["demo", "--model", str(folder), "--data", str(har), "--nodes", str(NODES),
                 "--rounds", str(ROUNDS), "--out", str(run)]) == 0
    capsys.readouterr()
    for i in range(1, NODES + 1):
        blob = DataBlob.read(run / "data" / f"node{i:02d}.blob")
        log = (run / "nodes" / f"node{i:02d}.log").read_text()
        m = re.search(r"samples: (\d+) raw windows through the DSP stage \(crc32 ([0-9a-f]{8})\) "
                      rf"and the har-spectral backbone {art.model_hash.hex()} -> (\d+) embeddings "
                      r"\(crc32 ([0-9a-f]{8})\)", log)
        assert m is not None, log
        assert int(m.group(1)) == int(m.group(3)) == blob.n_samples
        assert int(m.group(2), 16) == zlib.crc32(art.stage.run(blob.samples).tobytes())
        assert int(m.group(4), 16) == zlib.crc32(art.embed(blob.samples).tobytes())

    records = read_metrics(run / "metrics.jsonl")
    assert len(records) == ROUNDS and all(r["answered"] == NODES for r in records)
    central = load_baselines(run / "baselines.json").central.accuracy
    final = records[-1]["test_accuracy"]
    print(f"HAR with a spectral + stats DSP stage on {NODES} QEMU boards: federated {final:.4f}, "
          f"central {central:.4f}")
    assert final >= central - 0.01
    header = (run / "model.h").read_text()
    assert "tinyfl_deploy_model_dsp[" in header
    assert f"DSP_FEATURES {art.stage.features}" in header
