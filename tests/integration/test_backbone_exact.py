"""The node's embedding equals the reference interpreter's, byte for byte, on the real test sets.

For every HAR test-user window and every KDDTest+ record: the firmware's int8 kernels (native
build, `--embed`, through the same compiled model and window loop the node uses), TinyFL's numpy
backbone and ai-edge-litert's reference interpreter on the committed .tflite give identical
embeddings. The emulated Cortex-M4 runs a sample of HAR test windows and logs the CRC32 of its
embeddings, which must be the CRC of the reference's. tflite-micro's interpreter is compared
too: it rounds MEAN and per-channel FULLY_CONNECTED differently from LiteRT (docs/MODEL.md), so
its differences are bounded and reported rather than required to be zero.
"""

from __future__ import annotations

import re
import subprocess
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from support.models import held_out_codes
from support.nodes import wait_until
from tinyfl.fleet import Emulator, NodeProcess, NodeSpec, build_firmware
from tinyfl.model.artifacts import ModelArtifacts, load_artifacts
from tinyfl.model.build import embed as litert_embed  # LiteRT: the `model` extra, set up by make
from tinyfl.model.build import micro_embed
from tinyfl.wire import BlobKind, DataBlob

I8 = npt.NDArray[np.int8]
QEMU_SAMPLE = 96  # HAR test windows the emulated board embeds (about 0.7 s of guest time)


def _blob(art: ModelArtifacts, codes: I8, labels: npt.NDArray[np.uint8]) -> DataBlob:
    return DataBlob(kind=BlobKind.RAW_WINDOWS, n_classes=len(art.classes),
                    scale=art.input_scale, zero_point=art.input_zero_point,
                    model_hash=art.model_hash, labels=labels,
                    samples=codes.reshape(codes.shape[0], -1))


def _firmware_embed(image: Path, blob: DataBlob, workdir: Path) -> I8:
    src, out = workdir / "test.blob", workdir / "embeddings.bin"
    blob.write(src)
    subprocess.run([str(image), "--data", str(src), "--embed", str(out)], check=True, timeout=300)
    return np.fromfile(out, dtype=np.int8).reshape(blob.n_samples, -1)


@pytest.fixture(scope="module")
def native_image() -> Path:
    return build_firmware(Emulator.NATIVE)


@pytest.mark.parametrize("task", ["har", "nsl-kdd"])
def test_every_test_sample_embeds_identically(task: str, native_image: Path,
                                              tmp_path: Path) -> None:
    art = load_artifacts(task)
    codes, labels = held_out_codes(art)
    tflite = (art.folder / "backbone.tflite").read_bytes()

    reference = litert_embed(tflite, codes)
    firmware = _firmware_embed(native_image, _blob(art, codes, labels), tmp_path)
    numpy_backbone = art.embed(codes)

    n = codes.shape[0]
    assert n == {"har": 2996, "nsl-kdd": 22544}[task]  # every held-out window / KDDTest+ record
    assert reference.shape == (n, art.embed_dim)
    assert np.array_equal(firmware, reference), (
        f"firmware differs from LiteRT in {int((firmware != reference).any(axis=1).sum())} of {n}")
    assert np.array_equal(numpy_backbone, reference)

    sample = codes[:: max(1, n // 256)]
    micro = micro_embed(tflite, sample)  # the `model-check` extra, set up by make
    diff = np.abs(micro.astype(np.int16) - art.embed(sample).astype(np.int16))
    print(f"{task}: tflite-micro differs in {int((diff != 0).sum())} of {diff.size} bytes")
    assert diff.max() <= 1 and (diff != 0).mean() < 0.01


def test_emulated_cortex_m4_embeds_identically(tmp_path: Path) -> None:
    art = load_artifacts("har")
    codes, labels = held_out_codes(art)
    idx = np.linspace(0, codes.shape[0] - 1, QEMU_SAMPLE).astype(int)
    blob = _blob(art, codes[idx], labels[idx])
    expected = zlib.crc32(art.embed(codes[idx]).tobytes())
    assert np.array_equal(art.embed(codes[idx[:8]]),
                          litert_embed((art.folder / "backbone.tflite").read_bytes(), codes[idx[:8]]))

    blob_path = tmp_path / "qemu.blob"
    blob.write(blob_path)
    # No broker listens on port 9: the board keeps backing off, which does not matter here.
    node = NodeProcess(NodeSpec("exact", blob_path, tmp_path, Emulator.QEMU),
                       build_firmware(Emulator.QEMU), "127.0.0.1", 9, "tinyfl/exact")
    node.start()
    try:
        wait_until(lambda: "embeddings (crc32" in node.log_text(), 60, "the board's sample log",
                   node.log_text)
    finally:
        node.stop()
    m = re.search(r"samples: (\d+) raw windows through the har backbone ([0-9a-f]{16}) -> "
                  r"(\d+) embeddings \(crc32 ([0-9a-f]{8})\)", node.log_text())
    assert m is not None, node.log_text()
    assert int(m.group(1)) == int(m.group(3)) == QEMU_SAMPLE
    assert m.group(2) == art.model_hash.hex()
    assert int(m.group(4), 16) == expected
