"""The DSP stage a model folder configures: the node runs it on every raw window before the
backbone, and the host runs the same integers for training, evaluation and export (docs/DSP.md).

A stage takes a raw int8 window (T samples of C channels, time-major, with the raw codes' scale
and zero point), widens it to int16, `(q - zero_point) << widen`, runs its blocks in order and
concatenates their int8 features:

- `spectral` (per channel): Hann window, fixed-point FFT of the whole window (T a power of two),
  log2 energies of `bands` linear bands, `((log2_q8 - offset) >> shift) - 128`;
- `stats`: the statistics block of every channel (tinyfl.dsp.stats);
- `mel` (per channel): frames of `frame` samples every `hop`, triangular mel (or log-spaced)
  filters, log2 energies and optionally a DCT (MFCC) (tinyfl.dsp.mel), frame after frame.

The features are the backbone's input codes byte for byte: the model build gives the backbone
the input quantization FEATURE_SCALE, zero point 0.

Three forms of one stage: `DspStage` (what the host runs), its JSON in metadata.json (what a
person reads), and its record (`to_record`, what the node parses: tinyfl/dsp_stage.h), whose bytes
are part of the model hash.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tinyfl.dsp.mel import MelTables, frame_count, log_mel_q8, mel_tables, mfcc_q8
from tinyfl.dsp.spectral import band_edges, features_int8, log2_q8, power_spectrum
from tinyfl.dsp.stats import MAX_STATS, STATS_PER_CHANNEL, time_stats

__all__ = ["FEATURE_SCALE", "MAX_BLOCKS", "RECORD_VERSION", "DspStage", "MelBlock",
           "SpectralBlock", "StatsBlock", "fit_stage", "parse_block_spec"]

RECORD_MAGIC = b"TFDS"
RECORD_VERSION = 1
MAX_BLOCKS = 8  # the node's kDspMaxBlocks
MAX_WINDOW_VALUES = 2048  # the node's TINYFL_DSP_MAX_INPUT default
MAX_FEATURES = 1024  # the node's TINYFL_DSP_MAX_FEATURES default
MAX_MEL_DCT = 1024  # the node's TINYFL_DSP_MAX_MEL_TABLE default: coeffs x mels
MAX_FRAME = 1024  # the node's TINYFL_DSP_MAX_FFT default
# The backbone's input scale when a stage feeds it: int8 features f are the real values f / 64,
# a power of two the converter reproduces exactly from a calibration range of [-128, 127] / 64.
FEATURE_SCALE = 1.0 / 64.0

KIND_SPECTRAL = 1
KIND_STATS = 2
KIND_MEL = 3

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SpectralBlock:
    """Log2 band energies of each channel's whole-window spectrum."""

    bands: int
    offset: int = 0  # Q8 log2 value that maps to feature -128
    shift: int = 0  # Q8 log2 steps per feature step: 2^shift

    name = "spectral"

    def features(self, window: int, channels: int) -> int:
        return self.bands * channels

    def check(self, window: int) -> None:
        band_edges(window, self.bands)  # ValueError for a window that is no FFT length
        if not 0 <= self.shift <= 16 or not -(1 << 31) <= self.offset < 1 << 31:
            raise ValueError(f"spectral shift is 0..16 and offset int32, not {self.shift}, "
                             f"{self.offset}")

    def values(self, x: I64) -> I64:
        """(n, C, bands) Q8 log2 band energies of int16 windows x (n, T, C)."""
        p = power_spectrum(np.moveaxis(x, -1, 1))  # (n, C, T/2 + 1)
        edges = band_edges(x.shape[1], self.bands)
        sums = np.add.reduceat(p[..., 1:edges[-1]], np.array(edges[:-1]) - 1, axis=-1)
        return log2_q8(sums + 1)

    def run(self, x: I64) -> I8:
        return features_int8(self.values(x), self.offset, self.shift).reshape(x.shape[0], -1)

    def fit(self, x: I64) -> SpectralBlock:
        offset, shift = _fit_range(self.values(x))
        return replace(self, offset=offset, shift=shift)

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

    def features(self, window: int, channels: int) -> int:
        return STATS_PER_CHANNEL * channels

    def check(self, window: int) -> None:
        if not 2 <= window <= MAX_STATS:
            raise ValueError(f"stats need windows of 2..{MAX_STATS} samples, not {window}")

    def run(self, x: I64) -> I8:
        n, c = x.shape[0], x.shape[2]
        return np.stack([time_stats(x[i].reshape(-1), c) for i in range(n)]).reshape(n, -1)

    def fit(self, x: I64) -> StatsBlock:
        return self

    def payload(self) -> bytes:
        return b""

    def to_json(self) -> dict[str, Any]:
        return {"block": self.name}


@dataclass(frozen=True)
class MelBlock:
    """Log mel (or log-spaced) filter energies, or their MFCC, of frames of each channel."""

    rate: int  # samples per second: places the filters (host only; the record has the bins)
    frame: int
    hop: int
    mels: int
    coeffs: int = 0  # 0: the log energies are the features
    scale: str = "mel"  # or "log": log-spaced bands (vibration's constant-Q analysis)
    f_min: int = 0
    f_max: int = 0  # 0: rate / 2
    offset: int = 0
    shift: int = 0

    name = "mel"

    def tables(self) -> MelTables:
        scale: Literal["mel", "log"] = "log" if self.scale == "log" else "mel"
        return mel_tables(self.rate, self.frame, self.mels, self.coeffs, float(self.f_min),
                          float(self.f_max) if self.f_max else None, scale)

    def width(self) -> int:
        return self.coeffs or self.mels

    def features(self, window: int, channels: int) -> int:
        return frame_count(window, self.frame, self.hop) * self.width() * channels

    def check(self, window: int) -> None:
        if self.scale not in ("mel", "log") or not 0 <= self.coeffs <= self.mels:
            raise ValueError(f"mel: scale is mel or log and coeffs 0..mels, not {self.scale}, "
                             f"{self.coeffs}")
        if self.hop < 1 or frame_count(window, self.frame, self.hop) < 1:
            raise ValueError(f"mel: a window of {window} samples holds no frame of {self.frame} "
                             f"every {self.hop}")
        if not 0 <= self.shift <= 16 or not -(1 << 31) <= self.offset < 1 << 31:
            raise ValueError(f"mel shift is 0..16 and offset int32, not {self.shift}, "
                             f"{self.offset}")
        self.tables()  # ValueError for a frame or bank that does not fit
        if self.frame > MAX_FRAME or self.coeffs * self.mels > MAX_MEL_DCT:
            raise ValueError(f"mel: frames of {self.frame} and {self.coeffs} x {self.mels} DCT "
                             f"values exceed the node's defaults ({MAX_FRAME}, {MAX_MEL_DCT})")

    def values(self, x: I64) -> I64:
        """(n, C, frames, width) Q8 log energies (or MFCC) of int16 windows x (n, T, C)."""
        frames = frame_count(x.shape[1], self.frame, self.hop)
        starts = np.arange(frames) * self.hop
        idx = starts[:, None] + np.arange(self.frame)[None, :]
        cut = np.moveaxis(x, -1, 1)[:, :, idx]  # (n, C, frames, frame)
        tables = self.tables()
        v = log_mel_q8(power_spectrum(cut), tables.edges)
        return mfcc_q8(v, tables.dct) if self.coeffs else v

    def run(self, x: I64) -> I8:
        return features_int8(self.values(x), self.offset, self.shift).reshape(x.shape[0], -1)

    def fit(self, x: I64) -> MelBlock:
        offset, shift = _fit_range(self.values(x))
        return replace(self, offset=offset, shift=shift)

    def payload(self) -> bytes:
        t = self.tables()
        return (struct.pack("<HHHHiBxxx", self.frame, self.hop, self.mels, self.coeffs,
                            self.offset, self.shift)
                + t.edges.astype("<u2").tobytes() + t.dct.astype("<i2").tobytes())

    def to_json(self) -> dict[str, Any]:
        return {"block": self.name, "rate": self.rate, "frame": self.frame, "hop": self.hop,
                "mels": self.mels, "coeffs": self.coeffs, "scale": self.scale,
                "f_min": self.f_min, "f_max": self.f_max, "offset": self.offset,
                "shift": self.shift}


Block = SpectralBlock | StatsBlock | MelBlock
_KINDS: dict[str, int] = {SpectralBlock.name: KIND_SPECTRAL, StatsBlock.name: KIND_STATS,
                          MelBlock.name: KIND_MEL}


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
        return sum(b.features(self.window, self.channels) for b in self.blocks)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """The backbone's input shape: (frames, coefficients, 1), a 2-D input, for one channel
        through a mel block alone (keyword spotting's frames x MFCC); else (features,)."""
        block = self.blocks[0]
        if len(self.blocks) == 1 and isinstance(block, MelBlock) and self.channels == 1:
            return (frame_count(self.window, block.frame, block.hop), block.width(), 1)
        return (self.features,)

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
            elif b["block"] == MelBlock.name:
                blocks.append(MelBlock(
                    int(b["rate"]), int(b["frame"]), int(b["hop"]), int(b["mels"]),
                    int(b["coeffs"]), str(b["scale"]), int(b["f_min"]), int(b["f_max"]),
                    int(b["offset"]), int(b["shift"])))
            else:
                raise ValueError(f"unknown DSP block {b['block']!r}")
        return cls(int(d["window"]), int(d["channels"]), float(d["input_scale"]),
                   int(d["input_zero_point"]), tuple(blocks))


def parse_block_spec(spec: str) -> Block:
    """`spectral:bands=16` or `stats` (the --dsp option's syntax) as an unfitted block; ValueError
    naming the problem."""
    name, _, opts = spec.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, opts.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"--dsp {spec}: options are key=value, not {item!r}")
        if key.strip() == "scale":
            options["scale"] = value.strip()
            continue
        try:
            options[key.strip()] = int(value)
        except ValueError:
            raise ValueError(f"--dsp {spec}: {key} must be an integer, not {value!r}") from None
    allowed = {"spectral": {"bands"}, "stats": set(),
               "mel": {"rate", "frame", "hop", "mels", "coeffs", "scale", "fmin", "fmax"}
               }.get(name.strip())
    if allowed is None:
        raise ValueError(f"--dsp {spec}: unknown block {name!r}; blocks: spectral, stats, mel")
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(f"--dsp {spec}: unknown option(s) {', '.join(sorted(unknown))}; "
                         f"{name} takes {', '.join(sorted(allowed)) or 'none'}")
    if name.strip() == "spectral":
        return SpectralBlock(options.get("bands", 16))
    if name.strip() == "mel":
        missing = {"rate", "frame"} - set(options)
        if missing:
            raise ValueError(f"--dsp {spec}: mel needs {', '.join(sorted(missing))} (e.g. "
                             "mel:rate=16000,frame=512,hop=256,mels=40,coeffs=13)")
        frame = options["frame"]
        return MelBlock(options["rate"], frame, options.get("hop", frame // 2),
                        options.get("mels", 40), options.get("coeffs", 0),
                        options.get("scale", "mel"), options.get("fmin", 0),
                        options.get("fmax", 0))
    return StatsBlock()


def _fit_range(values: I64) -> tuple[int, int]:
    """Offset and shift that map the source windows' Q8 values (log2 energies or MFCC) onto
    int8: offset at their 0.5th percentile (a few silent windows should not stretch the scale),
    the fewest halvings that fit the range up to their maximum in 256 steps."""
    low, high = (int(np.percentile(values, 0.5)), int(values.max())) if values.size else (0, 255)
    shift = 0
    while shift < 16 and (high - low) >> shift > 255:
        shift += 1
    return low, shift


def fit_stage(blocks: list[Block], codes: npt.ArrayLike, scale: float, zero_point: int) -> DspStage:
    """The stage for raw int8 windows `codes` (n, T, C) with the given quantization, its blocks'
    free parameters fitted on those windows (the backbone's source samples)."""
    q = np.asarray(codes)
    if q.ndim != 3:
        raise ValueError(f"a DSP stage takes raw windows (n, T, C), not samples of shape "
                         f"{q.shape[1:]}")
    draft = DspStage(q.shape[1], q.shape[2], scale, zero_point, tuple(blocks))
    x = draft.samples(q)
    fitted = tuple(b.fit(x) for b in blocks)
    return DspStage(draft.window, draft.channels, scale, zero_point, fitted)
