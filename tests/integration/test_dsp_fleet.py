"""Models with a DSP stage, end to end. On QEMU Cortex-M4 boards: `tinyfl model build --dsp`
(spectral bands and statistics of every channel of the HAR windows, an MLP backbone on the
features), compiled into the boards' image with its stage record, four boards that turn their raw
windows into features and embeddings, and a federated head that must land within a point of
central training on the same fleet data.

Bit-exactness: every board logs the CRC32 of the features its DSP stage made and of the
embeddings, over every window of its data blob; the host recomputes both from the same blob with
tinyfl.dsp.stage and the numpy backbone. And a mel stage's 2-D (frames x MFCC) input through
the native firmware.
"""

from __future__ import annotations

import re
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from tinyfl.cli.main import main
from tinyfl.coordinator.metrics import read_metrics
from tinyfl.data.dataset import make_dataset, save_dataset
from tinyfl.data.packaged import cached
from tinyfl.data.splits import quantize
from tinyfl.fleet import Emulator, build_firmware
from tinyfl.model.artifacts import load_artifacts
from tinyfl.report import load_baselines
from tinyfl.wire import BlobKind, DataBlob

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


def test_a_mel_stage_gives_a_2d_input_and_the_native_node_embeds_it_bit_exactly(
        tmp_path: Path) -> None:
    """Keyword-spotting-shaped data: one channel through a mel block alone becomes a frames x
    MFCC input, which takes the 2-D family (dscnn). No spoken-word dataset installs from PyPI
    here, so the classes are synthetic tones (three pitches in noise); what is checked is the
    path, not an accuracy: the native firmware's stage and backbone against the host's."""
    rng = np.random.default_rng(4)
    n, t = 240, 512
    y = np.arange(n) % 3
    pitch = np.array([300.0, 800.0, 1900.0])[y][:, None] * (1 + 0.05 * rng.standard_normal((n, 1)))
    x = np.sin(2 * np.pi * pitch * np.arange(t)[None, :] / 8000.0) + 0.3 * rng.standard_normal((n, t))
    data = tmp_path / "tones.npz"
    save_dataset(data, make_dataset(x[:, :, None].astype(np.float32), y,
                                    groups=np.array([f"g{i % 6}" for i in range(n)])))
    folder = tmp_path / "tones"
    assert main(["model", "build", "--data", str(data), "--source-groups", "g0,g1",
                 "--test-groups", "g5", "--dsp", "mel:rate=8000,frame=128,hop=64,mels=16,coeffs=8",
                 "--epochs", "3", "--out", str(folder)]) == 0
    art = load_artifacts(folder)
    assert art.metadata["backbone"]["family"] == "dscnn"
    assert art.metadata["input"]["backbone_input"]["shape"] == [7, 8, 1]  # (512-128)/64+1 frames
    assert art.input_shape == (t, 1)

    codes = quantize(x[:, :, None], art.input_scale, art.input_zero_point).reshape(n, -1)
    blob = tmp_path / "tones.blob"
    DataBlob(kind=BlobKind.RAW_WINDOWS, n_classes=3, scale=art.input_scale,
             zero_point=art.input_zero_point, model_hash=art.model_hash,
             labels=y.astype(np.uint8), samples=codes).write(blob)
    image = build_firmware(Emulator.NATIVE, models=["models/har", str(folder)])
    try:
        out = tmp_path / "embeddings.bin"
        subprocess.run([str(image), "--data", str(blob), "--embed", str(out)], check=True,
                       timeout=120)
    finally:
        build_firmware(Emulator.NATIVE)  # the default image again, for the tests after this one
    assert np.array_equal(np.fromfile(out, np.int8).reshape(n, -1), art.embed(codes))
