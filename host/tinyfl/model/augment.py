"""Training-data augmentation for backbone pretraining (`tinyfl model build --augment SPEC`).

`imu-rotation:COPIES[,deg=D]`: the source windows plus COPIES seeded variants each, as the same
motion would look to a sensor mounted a little differently: one random 3-D rotation of up to D
degrees (default 20) applied to every consecutive triple of channels (accelerometer x/y/z,
gyroscope x/y/z, ...), another gain (x0.9..1.1) and sensor noise of one code step. Every variant is
re-quantized to the node's int8 codes so training only sees values a node can feed.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["augment", "parse_augment"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


def parse_augment(spec: str | None, sample_shape: tuple[int, ...]) -> tuple[int, float]:
    """(copies, max degrees) of `imu-rotation:COPIES[,deg=D]`; (0, 0) for None. ValueError."""
    if not spec:
        return 0, 0.0
    name, _, rest = spec.partition(":")
    if name != "imu-rotation":
        raise ValueError(f"unknown --augment {spec!r}; supported: imu-rotation:COPIES[,deg=D]")
    if len(sample_shape) != 2 or sample_shape[1] % 3:
        raise ValueError(f"--augment imu-rotation needs windows (T, C) with C a multiple of 3 "
                         f"(x/y/z triples), the data has samples of shape {sample_shape}")
    parts = [p.strip() for p in rest.split(",") if p.strip()]
    try:
        copies = int(parts[0]) if parts else 8
        degrees = 20.0
        for part in parts[1:]:
            key, _, value = part.partition("=")
            if key != "deg":
                raise ValueError(part)
            degrees = float(value)
    except ValueError:
        raise ValueError(f"bad --augment {spec!r}: imu-rotation:COPIES[,deg=D]") from None
    if copies < 1 or not 0 < degrees <= 180:
        raise ValueError(f"bad --augment {spec!r}: COPIES >= 1 and 0 < D <= 180")
    return copies, degrees


def _rotations(rng: np.random.Generator, n: int, max_deg: float) -> F32:
    """n random 3-D rotations (Rodrigues) about uniform axes by up to max_deg degrees."""
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    theta = np.deg2rad(rng.uniform(-max_deg, max_deg, size=n))
    k = np.zeros((n, 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k -= np.transpose(k, (0, 2, 1))
    eye = np.eye(3)[None]
    r = eye + np.sin(theta)[:, None, None] * k + (1 - np.cos(theta))[:, None, None] * (k @ k)
    return r.astype(np.float32)


def augment(x: F32, y: I64, scale: float, copies: int, max_deg: float,
            seed: int) -> tuple[F32, I64]:
    """`x` (n, T, C) plus `copies` rotated, rescaled, noisy and re-quantized variants."""
    rng = np.random.default_rng(seed + 0x5EED)
    xs, ys = [x], [y]
    for _ in range(copies):
        r = _rotations(rng, x.shape[0], max_deg)
        triples = [np.einsum("nij,ntj->nti", r, x[:, :, c:c + 3]) for c in range(0, x.shape[2], 3)]
        v = np.concatenate(triples, axis=2) * rng.uniform(0.9, 1.1, size=(x.shape[0], 1, 1))
        v = v + rng.normal(0.0, scale, size=v.shape)
        q = np.clip(np.round(v / np.float32(scale)), -128, 127)
        xs.append((q * np.float32(scale)).astype(np.float32))
        ys.append(y)
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)
