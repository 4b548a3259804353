"""Host-side transforms of a dataset's samples into another input form.

`spectrograms`: windows (n, T, C) -> 2-D inputs (n, frames, bins, C), log(1 + |STFT|) of each
channel with Hann frames of `frame` samples every `hop`. What a vibration or audio model often
takes instead of raw samples; the result is an ordinary dataset (tinyfl.data.dataset) for
`tinyfl model build` (its `dscnn` family). The node computes nothing of it: the 2-D inputs are the
model's input, as raw windows are for the conv1d family.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tinyfl.data.dataset import Dataset, make_dataset

__all__ = ["spectrograms"]


def spectrograms(data: Dataset, frame: int = 32, hop: int = 16) -> Dataset:
    """The windows of `data` as log-magnitude spectrograms (same labels, groups and classes)."""
    if data.kind != "windows":
        raise ValueError(f"spectrograms take windows (n, T, C), not {data.kind}")
    if not 2 <= frame <= data.sample_shape[0] or hop < 1:
        raise ValueError(f"frame must be 2..{data.sample_shape[0]} and hop >= 1")
    x = data.x
    starts = range(0, x.shape[1] - frame + 1, hop)
    frames = np.stack([x[:, s:s + frame, :] for s in starts], axis=1)  # (n, F, frame, C)
    window = np.hanning(frame)[None, None, :, None]
    spectrum: npt.NDArray[np.float64] = np.abs(np.fft.rfft(frames * window, axis=2))
    return make_dataset(np.log1p(spectrum).astype(np.float32), data.y, data.groups,
                        list(data.classes), origin=f"{data.origin} (spectrograms {frame}/{hop})")
