"""The DSP stage a model folder configures (tinyfl.dsp.stage): block specs, fitting, the features
against the blocks run one window and one channel at a time, the record the node parses, and a
model folder whose stage does not match its hash or its backbone."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from tinyfl.dsp import STATS_PER_CHANNEL, spectral_bands, time_stats
from tinyfl.dsp.stage import (
    FEATURE_SCALE,
    DspStage,
    SpectralBlock,
    StatsBlock,
    fit_stage,
    parse_block_spec,
)
from tinyfl.model.artifacts import load_artifacts
from tinyfl.model.firmware_blob import model_hash
from tinyfl.model.tflite import ModelError


def _windows(n: int, t: int = 64, c: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = np.arange(t)[None, :, None]
    tone = 60 * np.sin(2 * np.pi * steps * rng.integers(1, t // 2, (n, 1, c)) / t)
    noise = rng.normal(0, 10, (n, t, c))
    return np.clip(np.round(tone + noise), -128, 127).astype(np.int8)


def test_block_specs_parse_with_defaults_and_clear_errors() -> None:
    assert parse_block_spec("spectral") == SpectralBlock(16)
    assert parse_block_spec("spectral:bands=8") == SpectralBlock(8)
    assert parse_block_spec("stats") == StatsBlock()
    for bad, says in [("mfcc", "unknown block"), ("spectral:bins=8", "unknown option"),
                      ("spectral:bands=x", "must be an integer"), ("spectral:8", "key=value"),
                      ("stats:bands=2", "takes none")]:
        with pytest.raises(ValueError, match=says):
            parse_block_spec(bad)


def test_features_are_the_blocks_run_channel_by_channel_on_the_widened_window() -> None:
    codes = _windows(5)
    stage = DspStage(64, 3, 0.02, 0, (SpectralBlock(8, 300, 3), StatsBlock()))
    got = stage.run(codes)
    assert got.shape == (5, 8 * 3 + STATS_PER_CHANNEL * 3)
    assert stage.features == 8 * 3 + STATS_PER_CHANNEL * 3
    for i in range(5):
        x = codes[i].astype(np.int64) << 8  # zero point 0: the widest shift that fits int16
        want = [spectral_bands(x[:, c], 8, 300, 3) for c in range(3)] + [time_stats(x, 3)]
        assert np.array_equal(got[i], np.concatenate(want))
    # the same windows given flat (n, T * C), as data blobs hold them
    assert np.array_equal(stage.run(codes.reshape(5, -1)), got)


def test_a_nonzero_zero_point_widens_by_seven_bits_and_stays_in_int16() -> None:
    stage = DspStage(8, 1, 0.5, -128, (StatsBlock(),))
    assert stage.widen == 7
    extreme = np.array([[127, -128] * 4], np.int8)
    x = stage.samples(extreme)
    assert int(x.max()) == 255 << 7 <= 32767 and int(x.min()) == 0


def test_fitting_maps_the_source_energies_onto_the_int8_range() -> None:
    codes = _windows(200, seed=1)
    stage = fit_stage([parse_block_spec("spectral:bands=8"), parse_block_spec("stats")], codes,
                      0.02, 0)
    block = stage.blocks[0]
    assert isinstance(block, SpectralBlock) and 0 <= block.shift <= 16
    logs = block.values(stage.samples(codes))
    assert (int(logs.max()) - block.offset) >> block.shift <= 255  # the top is not clipped
    assert (int(logs.max()) - block.offset) >> block.shift >= 128  # and the range is used
    spectral = stage.run(codes)[:, :8 * 3]
    assert (spectral == -128).mean() < 0.02  # offset at the 0.5th percentile


def test_stages_that_do_not_fit_are_refused() -> None:
    with pytest.raises(ValueError, match="no FFT length|power of two"):
        DspStage(100, 1, 0.1, 0, (SpectralBlock(8),))
    with pytest.raises(ValueError, match="do not fit"):
        DspStage(64, 1, 0.1, 0, (SpectralBlock(33),))
    with pytest.raises(ValueError, match="DSP input"):
        DspStage(1024, 3, 0.1, 0, (StatsBlock(),))
    with pytest.raises(ValueError, match="1..8 blocks"):
        DspStage(64, 1, 0.1, 0, ())
    with pytest.raises(ValueError, match="raw windows"):
        fit_stage([StatsBlock()], np.zeros((4, 10), np.int8), 0.1, 0)
    with pytest.raises(ValueError, match="int8 codes"):
        DspStage(8, 1, 0.1, 0, (StatsBlock(),)).run(np.zeros((1, 8), np.int16))


def test_json_round_trips_and_the_record_is_checked_bytes() -> None:
    stage = DspStage(128, 6, 0.0153, 0, (SpectralBlock(16, 768, 5), StatsBlock()))
    assert DspStage.from_json(json.loads(json.dumps(stage.to_json()))) == stage
    record = stage.to_record()
    magic, version, blocks, length = struct.unpack_from("<4sHHI", record)
    assert (magic, version, blocks, length) == (b"TFDS", 1, 2, len(record))
    assert struct.unpack_from("<I", record, len(record) - 4)[0] == zlib.crc32(record[:-4])
    window, channels, widen, zp, scale, features = struct.unpack_from("<HHBbxxfH", record, 12)
    assert (window, channels, widen, zp, features) == (128, 6, 8, 0,
                                                       16 * 6 + STATS_PER_CHANNEL * 6)
    assert scale == np.float32(0.0153)
    other = DspStage(128, 6, 0.0153, 0, (SpectralBlock(16, 769, 5), StatsBlock()))
    assert other.to_record() != record  # every parameter is in the bytes the model hash covers
    with pytest.raises(ValueError, match="unknown DSP block"):
        DspStage.from_json({**stage.to_json(), "blocks": [{"block": "fft"}]})


def _folder_with_stage(tmp_path: Path, stage: DspStage, rehash: bool) -> Path:
    folder = tmp_path / "har"
    shutil.copytree(load_artifacts("har").folder, folder)
    meta = json.loads((folder / "metadata.json").read_text())
    meta["input"]["dsp"] = stage.to_json()
    if rehash:
        meta["model_hash"] = model_hash((folder / "backbone.tfmb").read_bytes(),
                                        stage.to_record()).hex()
    (folder / "metadata.json").write_text(json.dumps(meta))
    return folder


def test_a_folder_whose_stage_is_not_hashed_or_not_the_backbones_input_is_refused(
        tmp_path: Path) -> None:
    # 2 x 64 bands x 6 channels = 768 features: the HAR backbone's input length, but its input
    # scale is the raw windows', not FEATURE_SCALE
    stage = DspStage(128, 6, 0.0153, 0, (SpectralBlock(64), SpectralBlock(64)))
    assert stage.features == 128 * 6
    with pytest.raises(ModelError, match="with the DSP stage does not have the model hash"):
        load_artifacts(_folder_with_stage(tmp_path / "a", stage, rehash=False))
    with pytest.raises(ModelError, match=f"scale {FEATURE_SCALE}"):
        load_artifacts(_folder_with_stage(tmp_path / "b", stage, rehash=True))
