"""Which models a node image carries is chosen at build time (TINYFL_MODELS / custom_models).

The native image is built with one model folder and with two, through `build_firmware(models=)`,
into the shared .pio/build/native (the way two tools with different model sets share it); each
image is copied away before the next build, and the default image is rebuilt at the end for the
tests that follow. A node refuses a raw-window blob of a model its image lacks, naming the blob's
model and the ones it carries, and embeds the windows of every model it carries exactly as the
host's numpy backbone does.
"""

from __future__ import annotations

import re
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from support.nodes import start_node, wait_until
from tinyfl.fleet import Emulator, build_firmware
from tinyfl.fleet.nodes import FirmwareError
from tinyfl.model.artifacts import ModelArtifacts, load_artifacts
from tinyfl.wire import BlobKind, DataBlob

pytestmark = pytest.mark.firmware
REPO = Path(__file__).resolve().parents[2]
HAR, NSL_KDD = REPO / "models" / "har", REPO / "models" / "nsl-kdd"
WINDOWS = 4


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    out = tmp_path_factory.mktemp("images")
    built: dict[str, Path] = {}
    try:
        for name, models in (("har", [HAR]), ("both", [HAR, NSL_KDD])):
            built[name] = Path(shutil.copy2(build_firmware(Emulator.NATIVE, models=models),
                                            out / f"program-{name}"))
        yield built
    finally:
        build_firmware(Emulator.NATIVE)  # platformio.ini's list again, for the tests after these


@pytest.fixture(scope="module")
def models() -> dict[str, ModelArtifacts]:
    return {"har": load_artifacts(HAR), "nsl-kdd": load_artifacts(NSL_KDD)}


def _windows(art: ModelArtifacts, seed: int) -> DataBlob:
    rng = np.random.default_rng(seed)
    size = int(np.prod(art.input_shape))
    return DataBlob(kind=BlobKind.RAW_WINDOWS, n_classes=len(art.classes),
                    scale=art.input_scale, zero_point=art.input_zero_point,
                    model_hash=art.model_hash,
                    labels=rng.integers(0, len(art.classes), WINDOWS).astype(np.uint8),
                    samples=rng.integers(-128, 128, (WINDOWS, size)).astype(np.int8))


def _boot_log(image: Path, blob: DataBlob, workdir: Path, node_id: str, done: str) -> str:
    """The node's log once `done` is in it or the node has exited. No broker listens on port 9:
    the node keeps retrying, which does not matter here."""
    node = start_node(Emulator.NATIVE, image, workdir, node_id, blob, "127.0.0.1", 9, "t/models")
    try:
        wait_until(lambda: done in node.log_text() or not node.alive, 20, f"'{done}' in the log",
                   node.log_text)
        if not node.alive:
            wait_until(lambda: done in node.log_text(), 5, f"'{done}' in the log", node.log_text)
        return node.log_text()
    finally:
        node.stop()


def test_an_image_without_the_blobs_model_refuses_it_naming_both_models(
        images: dict[str, Path], models: dict[str, ModelArtifacts], tmp_path: Path) -> None:
    har, kdd = models["har"], models["nsl-kdd"]
    log = _boot_log(images["har"], _windows(kdd, 1), tmp_path, "har-only", "blob needs model")
    assert (f"blob needs model {kdd.model_hash.hex()}; this firmware carries har "
            f"{har.model_hash.hex()}") in log, log
    assert "nsl-kdd" not in log
    # The model it does carry still works.
    log = _boot_log(images["har"], _windows(har, 2), tmp_path, "har-only-ok", "cached")
    assert f"through the har backbone {har.model_hash.hex()}" in log, log


@pytest.mark.parametrize("task", ["har", "nsl-kdd"])
def test_an_image_with_both_folders_embeds_both_models_like_the_host(
        task: str, images: dict[str, Path], models: dict[str, ModelArtifacts],
        tmp_path: Path) -> None:
    art = models[task]
    blob = _windows(art, 3)
    log = _boot_log(images["both"], blob, tmp_path, f"both-{task}", "cached")
    m = re.search(rf"samples: {WINDOWS} raw windows through the {task} backbone ([0-9a-f]{{16}}) "
                  rf"-> {WINDOWS} embeddings \(crc32 ([0-9a-f]{{8}})\), {WINDOWS} cached", log)
    assert m is not None, log
    assert m.group(1) == art.model_hash.hex()
    codes = blob.samples.reshape((WINDOWS, *art.input_shape))
    assert int(m.group(2), 16) == zlib.crc32(art.embed(codes).tobytes())


def test_a_missing_model_folder_fails_the_build_naming_it(tmp_path: Path) -> None:
    pump = tmp_path / "pump"
    with pytest.raises(FirmwareError) as err:
        build_firmware(Emulator.NATIVE, models=[HAR, pump])
    message = str(err.value)
    assert f"model folder {pump} does not exist" in message, message
    assert f"tinyfl model build --task TASK --out {pump}" in message
    assert "TINYFL_MODELS" in message


def test_without_models_the_build_ignores_tinyfl_models_of_the_callers_environment(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TINYFL_MODELS", str(tmp_path / "not-a-model"))
    assert build_firmware(Emulator.NATIVE).is_file()
