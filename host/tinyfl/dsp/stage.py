"""The DSP stage a model folder configures: the node runs it on every raw window before the
backbone, and the host runs the same integers for training, evaluation and export (docs/DSP.md).

A stage takes a raw int8 window (T samples of C channels, time-major, with the raw codes' scale
and zero point), widens it to int16, `(q - zero_point) << widen`, runs its blocks in order and
concatenates their int8 features:

- `spectral` (per channel): Hann window, fixed-point FFT of the whole window (T a power of two),
  log2 energies of `bands` linear bands, `((log2_q8 - offset) >> shift) - 128`;
- `stats`: the statistics block of every channel (tinyfl.dsp.stats).

The features are the backbone's input codes byte for byte: the model build gives the backbone
the input quantization FEATURE_SCALE, zero point 0.

Three forms of one stage: `DspStage` (what the host runs), its JSON in metadata.json (what a
person reads), and its record (`to_record`, what the node parses: tinyfl/dsp_stage.h), whose bytes
are part of the model hash.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tinyfl.dsp.spectral import band_edges, log2_q8, power_spectrum
from tinyfl.dsp.stats import STATS_PER_CHANNEL, time_stats

__all__ = ["FEATURE_SCALE", "MAX_BLOCKS", "RECORD_VERSION", "DspStage", "SpectralBlock",
           "StatsBlock", "fit_stage", "parse_block_spec"]

RECORD_MAGIC = b"TFDS"
RECORD_VERSION = 1
MAX_BLOCKS = 8  # the node's kDspMaxBlocks
MAX_WINDOW_VALUES = 2048  # the node's TINYFL_DSP_MAX_INPUT default
MAX_FEATURES = 1024  # the node's TINYFL_DSP_MAX_FEATURES default
# The backbone's input scale when a stage feeds it: int8 features f are the real values f / 64,
# a power of two the converter reproduces exactly from a calibration range of [-128, 127] / 64.
FEATURE_SCALE = 1.0 / 64.0

KIND_SPECTRAL = 1
KIND_STATS = 2

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SpectralBlock:
    """Log2 band energies of each channel's whole-window spectrum."""

    bands: int
    offset: int = 0  # Q8 log2 value that maps to feature -128
    shift: int = 0  # Q8 log2 steps per feature step: 2^shift

    name = "spectral"

    def features(self, channels: int) -> int:
        return self.bands * channels

    def check(self, window: int) -> None:
        band_edges(window, self.bands)  # ValueError for a window that is no FFT length
        if not 0 <= self.shift <= 16 or not -(1 << 31) <= self.offset < 1 << 31:
            raise ValueError(f"spectral shift is 0..16 and offset int32, not {self.shift}, "
                             f"{self.offset}")

    def log2_energies(self, x: I64) -> I64:
        """(n, C, bands) Q8 log2 band energies of int16 windows x (n, T, C)."""
        p = power_spectrum(np.moveaxis(x, -1, 1))  # (n, C, T/2 + 1)
        edges = band_edges(x.shape[1], self.bands)
        sums = np.add.reduceat(p[..., 1:edges[-1]], np.array(edges[:-1]) - 1, axis=-1)
        return log2_q8(sums + 1)

    def run(self, x: I64) -> I8:
        f = ((self.log2_energies(x) - self.offset) >> self.shift) - 128
        out: I8 = np.clip(f, -128, 127).astype(np.int8).reshape(x.shape[0], -1)
        return out

    def payload(self) -> bytes:
        return struct.pack("<HiBxxx", self.bands, self.offset, self.shift)

    def to_json(self) -> dict[str, Any]:
        return {"block": self.name, "bands": self.bands, "offset": self.offset,
                "shift": self.shift}


@dataclass(frozen=True)
class StatsBlock:
    """RMS, peak, crest factor and zero-crossing rate (and what tinyfl.dsp.stats adds) per
    channel."""

    name = "stats"

    def features(self, channels: int) -> int:
        return STATS_PER_CHANNEL * channels

    def check(self, window: int) -> None:
        if window < 2:
            raise ValueError("stats need windows of at least 2 samples")

    def run(self, x: I64) -> I8:
        n, c = x.shape[0], x.shape[2]
        return np.stack([time_stats(x[i].reshape(-1), c) for i in range(n)]).reshape(n, -1)

    def payload(self) -> bytes:
        return b""

    def to_json(self) -> dict[str, Any]:
        return {"block": self.name}


Block = SpectralBlock | StatsBlock
_KINDS: dict[str, int] = {SpectralBlock.name: KIND_SPECTRAL, StatsBlock.name: KIND_STATS}


@dataclass(frozen=True)
class DspStage:
    window: int  # samples per channel
    channels: int
    input_scale: float  # of the raw int8 codes, as data blobs carry them
    input_zero_point: int
    blocks: tuple[Block, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.blocks) <= MAX_BLOCKS:
            raise ValueError(f"a DSP stage has 1..{MAX_BLOCKS} blocks, not {len(self.blocks)}")
        if self.window < 2 or self.channels < 1 or self.window * self.channels > MAX_WINDOW_VALUES:
            raise ValueError(f"a window of {self.window} x {self.channels} values does not fit the "
                             f"node's DSP input ({MAX_WINDOW_VALUES} values)")
        if not -128 <= self.input_zero_point <= 127 or not self.input_scale > 0:
            raise ValueError("the raw input quantization is an int8 zero point and a scale > 0")
        for block in self.blocks:
            block.check(self.window)
        if self.features > MAX_FEATURES:
            raise ValueError(f"the stage makes {self.features} features; a node takes at most "
                             f"{MAX_FEATURES}")

    @property
    def widen(self) -> int:
        """The left shift from int8 codes to int16 samples: the largest that cannot overflow
        (|q - zp| <= 128 for zero point 0, else <= 255)."""
        return 8 if self.input_zero_point == 0 else 7

    @property
    def features(self) -> int:
        return sum(b.features(self.channels) for b in self.blocks)

    @property
    def input_shape(self) -> tuple[int, int]:
        return (self.window, self.channels)

    def samples(self, codes: npt.ArrayLike) -> I64:
        """int16 samples (n, T, C) of raw int8 codes (n, T, C) or (n, T * C)."""
        q = np.asarray(codes)
        if q.dtype != np.int8:
            raise ValueError(f"raw windows are int8 codes, not {q.dtype}")
        if q.ndim < 1 or q[0].size != self.window * self.channels:
            raise ValueError(f"raw windows of {self.window} x {self.channels} values expected, "
                             f"got shape {q.shape}")
        x = (q.astype(np.int64).reshape(-1, self.window, self.channels)
             - self.input_zero_point) << self.widen
        return x

    def run(self, codes: npt.ArrayLike) -> I8:
        """The int8 features (n, features) of n raw windows, as the node computes them."""
        x = self.samples(codes)
        if x.shape[0] == 0:
            return np.zeros((0, self.features), np.int8)
        return np.concatenate([b.run(x) for b in self.blocks], axis=1)

    def to_record(self) -> bytes:
        """The bytes the node parses (docs/DSP.md, "The stage record"), CRC-32 last."""
        body = b"".join(struct.pack("<BxH", _KINDS[b.name], len(b.payload())) + b.payload()
                        for b in self.blocks)
        head = struct.pack("<HHBbxxfHxx", self.window, self.channels, self.widen,
                           self.input_zero_point, self.input_scale, self.features)
        total = 4 + 8 + len(head) + len(body) + 4
        out = RECORD_MAGIC + struct.pack("<HHI", RECORD_VERSION, len(self.blocks), total) + head + body
        return out + struct.pack("<I", zlib.crc32(out))

    def describe(self) -> str:
        """One line for logs: the blocks and their parameters, the feature count."""
        blocks = " + ".join(
            b.name + "".join(f" {k}={v}" for k, v in b.to_json().items() if k != "block")
            for b in self.blocks)
        return (f"{blocks} -> {self.features} int8 features per {self.window} x {self.channels} "
                f"window")

    def to_json(self) -> dict[str, Any]:
        return {"window": self.window, "channels": self.channels,
                "input_scale": self.input_scale, "input_zero_point": self.input_zero_point,
                "widen": self.widen, "blocks": [b.to_json() for b in self.blocks],
                "features": self.features, "feature_scale": FEATURE_SCALE,
                "feature_zero_point": 0}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DspStage:
        """ValueError (KeyError, TypeError) for a malformed description."""
        blocks: list[Block] = []
        for b in d["blocks"]:
            if b["block"] == SpectralBlock.name:
                blocks.append(SpectralBlock(int(b["bands"]), int(b["offset"]), int(b["shift"])))
            elif b["block"] == StatsBlock.name:
                blocks.append(StatsBlock())
            else:
                raise ValueError(f"unknown DSP block {b['block']!r}")
        return cls(int(d["window"]), int(d["channels"]), float(d["input_scale"]),
                   int(d["input_zero_point"]), tuple(blocks))


def parse_block_spec(spec: str) -> Block:
    """`spectral:bands=16` or `stats` (the --dsp option's syntax) as an unfitted block; ValueError
    naming the problem."""
    name, _, opts = spec.partition(":")
    options: dict[str, int] = {}
    for item in filter(None, opts.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"--dsp {spec}: options are key=value, not {item!r}")
        try:
            options[key.strip()] = int(value)
        except ValueError:
            raise ValueError(f"--dsp {spec}: {key} must be an integer, not {value!r}") from None
    allowed = {"spectral": {"bands"}, "stats": set()}.get(name.strip())
    if allowed is None:
        raise ValueError(f"--dsp {spec}: unknown block {name!r}; blocks: spectral, stats")
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(f"--dsp {spec}: unknown option(s) {', '.join(sorted(unknown))}; "
                         f"{name} takes {', '.join(sorted(allowed)) or 'none'}")
    if name.strip() == "spectral":
        return SpectralBlock(options.get("bands", 16))
    return StatsBlock()


def _fit_spectral(block: SpectralBlock, x: I64) -> SpectralBlock:
    """Offset and shift that map the source windows' log2 band energies onto int8: offset at
    their 0.5th percentile (a few silent windows should not stretch the scale), the fewest
    halvings that fit the range up to their maximum in 256 steps."""
    logs = block.log2_energies(x)
    low, high = (int(np.percentile(logs, 0.5)), int(logs.max())) if logs.size else (0, 255)
    shift = 0
    while shift < 16 and (high - low) >> shift > 255:
        shift += 1
    return SpectralBlock(block.bands, low, shift)


def fit_stage(blocks: list[Block], codes: npt.ArrayLike, scale: float, zero_point: int) -> DspStage:
    """The stage for raw int8 windows `codes` (n, T, C) with the given quantization, its blocks'
    free parameters fitted on those windows (the backbone's source samples)."""
    q = np.asarray(codes)
    if q.ndim != 3:
        raise ValueError(f"a DSP stage takes raw windows (n, T, C), not samples of shape "
                         f"{q.shape[1:]}")
    draft = DspStage(q.shape[1], q.shape[2], scale, zero_point, tuple(blocks))
    x = draft.samples(q)
    fitted = tuple(_fit_spectral(b, x) if isinstance(b, SpectralBlock) else b for b in blocks)
    return DspStage(draft.window, draft.channels, scale, zero_point, fitted)
