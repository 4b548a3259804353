"""A 2-D-input model end to end: spectrograms of the watch windows (n, frames, bins, channels),
made here on the fly, a depthwise-separable CNN built by `tinyfl model build` (the `dscnn` family),
compiled into a QEMU Cortex-M4 image by the generated model registry, and one board embedding a
data blob of those spectrograms with the CRC32 the host's numpy backbone computes."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np
import pytest

from support.nodes import wait_until
from tinyfl.cli.main import main
from tinyfl.data.dataset import load_dataset, save_dataset
from tinyfl.data.packaged import cached
from tinyfl.data.splits import quantize
from tinyfl.data.transforms import spectrograms
from tinyfl.fleet import Emulator, NodeProcess, NodeSpec, build_firmware
from tinyfl.model.artifacts import load_artifacts
from tinyfl.wire import BlobKind, DataBlob

pytestmark = [pytest.mark.firmware, pytest.mark.qemu]
BOARD_SAMPLES = 24


def test_a_2d_input_model_runs_on_a_qemu_board_bit_exactly(tmp_path: Path) -> None:
    watch = load_dataset(cached("watch").data)
    assert watch.groups is not None
    keep = np.isin(watch.groups, ["subject01", "subject02", "subject03", "subject09"])
    images = spectrograms(watch.select(keep))
    assert images.kind == "images" and images.sample_shape == (7, 17, 6)
    data = tmp_path / "spectra.npz"
    save_dataset(data, images)
    folder = tmp_path / "models" / "spectra"
    assert main(["model", "build", "--data", str(data), "--source-groups", "subject01",
                 "--test-groups", "subject09", "--epochs", "3", "--out", str(folder)]) == 0
    art = load_artifacts(folder)
    assert art.metadata["backbone"]["family"] == "dscnn"
    assert "DEPTHWISE_CONV_2D" in art.metadata["ops"]

    fleet = images.select(np.isin(images.groups, ["subject02"]))  # type: ignore[arg-type]
    rows = np.linspace(0, len(fleet) - 1, BOARD_SAMPLES).astype(int)
    codes = quantize(fleet.x[rows], art.input_scale, art.input_zero_point).reshape(
        BOARD_SAMPLES, -1)
    expected = zlib.crc32(art.embed(codes).tobytes())
    blob = tmp_path / "board.blob"
    DataBlob(kind=BlobKind.RAW_WINDOWS, n_classes=len(art.classes), scale=art.input_scale,
             zero_point=art.input_zero_point, model_hash=art.model_hash,
             labels=fleet.y[rows].astype(np.uint8), samples=codes).write(blob)
    image = build_firmware(Emulator.QEMU, models=[folder])
    try:
        # No broker listens on port 9: the board keeps backing off, which does not matter here.
        node = NodeProcess(NodeSpec("image", blob, tmp_path, Emulator.QEMU), image, "127.0.0.1",
                           9, "tinyfl/image")
        node.start()
        try:
            wait_until(lambda: "embeddings (crc32" in node.log_text(), 120,
                       "the board's sample log", node.log_text)
        finally:
            node.stop()
    finally:
        build_firmware(Emulator.QEMU)  # the default image again, for the tests after this one
    m = re.search(r"samples: (\d+) raw windows through the spectra backbone ([0-9a-f]{16}) -> "
                  r"(\d+) embeddings \(crc32 ([0-9a-f]{8})\)", node.log_text())
    assert m is not None, node.log_text()
    assert int(m.group(1)) == int(m.group(3)) == BOARD_SAMPLES
    assert m.group(2) == art.model_hash.hex()
    assert int(m.group(4), 16) == expected
