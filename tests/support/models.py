"""The held-out samples of a committed model folder as the int8 codes its backbone takes."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tinyfl.data.dataset import load_dataset
from tinyfl.data.packaged import cached
from tinyfl.data.splits import quantize, split_rows
from tinyfl.model.artifacts import ModelArtifacts


def held_out_codes(art: ModelArtifacts) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.uint8]]:
    """(codes (n, *input shape), labels) of the samples test.npz holds the embeddings of, from
    the packaged dataset the folder was built from (its test groups, or its test file)."""
    fetched = cached(art.name)
    if fetched.test is not None:
        test = load_dataset(fetched.test, require_every_class=False)
    else:
        data = load_dataset(fetched.data)
        test = data.select(split_rows(data, art.split).test)
    return quantize(test.x, art.input_scale, art.input_zero_point), test.y.astype(np.uint8)
