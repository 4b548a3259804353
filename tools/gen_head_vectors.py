#!/usr/bin/env python3
"""Writes the golden vectors of the node's head trainer, quantizer and PRNG.

    python tools/gen_head_vectors.py           # (re)write testvectors/head and testvectors/quant
    python tools/gen_head_vectors.py --check   # exit 1 if the files on disk differ from a fresh run

The expected values come from the numpy references (tinyfl.model.head, tinyfl.quant, tinyfl.rng);
the firmware tests (firmware/test/test_head, test_quant) read the same files and must agree:
bit for bit for the PRNG, shuffles and quantizer, within 1e-5 (one step) / 1e-4 (a round) for the
float training math. Deterministic: every input is drawn from a fixed xorshift32 stream (not from
numpy's generators, whose streams may change between releases) and the reference sums in float64,
so a fresh run reproduces the bytes.

File format (both directories, described in their README.md): a little-endian container of named
arrays,

    "TFTV"  u32 version = 1  u32 count
    count x { u8 name_len, name, u8 dtype, u8 ndim, u32 dims[ndim], data }

with dtype 1 = u8, 2 = i8, 3 = u16, 4 = u32, 5 = f32; data holds prod(dims) values row-major
(a scalar has ndim 0 and one value).
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "host"))

from tinyfl.model.head import sgd_step, train_local
from tinyfl.quant import quantize, quantize_nearest
from tinyfl.rng import Xorshift32, fnv1a32, mix32, round_rng, shuffle

OUT = ROOT / "testvectors"
MAGIC = b"TFTV"
VERSION = 1
DTYPES: dict[int, np.dtype[np.generic]] = {
    1: np.dtype("<u1"),
    2: np.dtype("<i1"),
    3: np.dtype("<u2"),
    4: np.dtype("<u4"),
    5: np.dtype("<f4"),
}
CODES = {dt: code for code, dt in DTYPES.items()}

Arrays = dict[str, npt.NDArray[np.generic]]


# ---------------------------------------------------------------------------------------------
# container


def pack(arrays: Arrays) -> bytes:
    """Serializes named arrays in insertion order (the layout in the module docstring)."""
    out = bytearray(MAGIC + struct.pack("<II", VERSION, len(arrays)))
    for name, value in arrays.items():
        arr = np.asarray(value)
        dt = arr.dtype.newbyteorder("<")
        if dt not in CODES:
            raise TypeError(f"{name}: unsupported dtype {arr.dtype}")
        raw = name.encode("ascii")
        out += bytes([len(raw)]) + raw + bytes([CODES[dt], arr.ndim])
        out += struct.pack(f"<{arr.ndim}I", *arr.shape)
        out += np.ascontiguousarray(arr, dtype=dt).tobytes()
    return bytes(out)


def unpack(data: bytes) -> Arrays:
    """Reads a container back into named arrays (checks every length)."""
    if data[:4] != MAGIC or struct.unpack_from("<I", data, 4)[0] != VERSION:
        raise ValueError("not a TFTV v1 container")
    (count,) = struct.unpack_from("<I", data, 8)
    pos, arrays = 12, {}
    for _ in range(count):
        n = data[pos]
        name = data[pos + 1 : pos + 1 + n].decode("ascii")
        pos += 1 + n
        dt, ndim = DTYPES[data[pos]], data[pos + 1]
        pos += 2
        dims = struct.unpack_from(f"<{ndim}I", data, pos)
        pos += 4 * ndim
        size = int(np.prod(dims, dtype=np.int64)) * dt.itemsize
        if pos + size > len(data):
            raise ValueError(f"{name}: truncated")
        arrays[name] = np.frombuffer(data[pos : pos + size], dtype=dt).reshape(dims).copy()
        pos += size
    if pos != len(data):
        raise ValueError("trailing bytes")
    return arrays


# ---------------------------------------------------------------------------------------------
# inputs from a fixed stream


def uniform(
    rng: Xorshift32, shape: tuple[int, ...], lo: float, hi: float
) -> npt.NDArray[np.float32]:
    u = rng.uniform01_array(int(np.prod(shape))).reshape(shape)
    return (np.float32(lo) + u * np.float32(hi - lo)).astype(np.float32)


def labels(rng: Xorshift32, n: int, k: int) -> npt.NDArray[np.uint8]:
    return (rng.next_array(n) % np.uint32(k)).astype(np.uint8)


def u16(v: int) -> npt.NDArray[np.uint16]:
    return np.array(v, dtype=np.uint16)


def u32(v: int) -> npt.NDArray[np.uint32]:
    return np.array(v, dtype=np.uint32)


def f32(v: float) -> npt.NDArray[np.float32]:
    return np.array(v, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# head: SGD steps and whole rounds


def sgd_case(seed: int, d: int, k: int, batch: int, steps: int, lr: float, mu: float) -> Arrays:
    rng = Xorshift32(seed)
    w0 = uniform(rng, (k, d + 1), -0.3, 0.3)
    w = (w0 + uniform(rng, (k, d + 1), -0.05, 0.05)).astype(np.float32)  # W != W0: mu acts
    xs = uniform(rng, (steps, batch, d), -1.5, 1.5)
    ys = labels(rng, steps * batch, k).reshape(steps, batch)
    losses, after = [], []
    cur = w
    for s in range(steps):
        cur, loss = sgd_step(cur, w0, xs[s], ys[s], lr, mu)
        losses.append(loss)
        after.append(cur)
    return {
        "d": u16(d),
        "k": u16(k),
        "lr": f32(lr),
        "mu": f32(mu),
        "w_init": w,
        "w0": w0,
        "x": xs,
        "y": ys,
        "loss_sum": np.array(losses, dtype=np.float32),
        "w_after": np.stack(after).astype(np.float32),
    }


def train_case(
    seed: int,
    d: int,
    k: int,
    n: int,
    *,
    epochs: int,
    batch: int,
    lr: float,
    mu: float,
    clip: float,
    node_id: str,
    round_id: int,
    separable: bool = False,
) -> Arrays:
    rng = Xorshift32(seed)
    y = labels(rng, n, k)
    if separable:  # one well separated centre per class, small noise
        centres = uniform(rng, (k, d), -2.0, 2.0)
        x = (centres[y] + uniform(rng, (n, d), -0.3, 0.3)).astype(np.float32)
        w0 = np.zeros((k, d + 1), np.float32)
    else:
        x = uniform(rng, (n, d), -1.0, 1.0)
        w0 = uniform(rng, (k, d + 1), -0.2, 0.2)
    round_seed = int(rng.next())
    node_rng = round_rng(round_seed, node_id, round_id)
    initial_state = node_rng.state
    result = train_local(
        w0, x, y, epochs=epochs, batch_size=batch, lr=lr, prox_mu=mu, clip_norm=clip, rng=node_rng
    )
    return {
        "x": x,
        "y": y,
        "w0": w0,
        "epochs": u16(epochs),
        "batch_size": u16(batch),
        "lr": f32(lr),
        "mu": f32(mu),
        "clip": f32(clip),
        "seed": u32(round_seed),
        "node_id": np.frombuffer(node_id.encode("ascii"), dtype=np.uint8),
        "round_id": u32(round_id),
        "rng_state_initial": u32(initial_state),
        "orders": np.stack(result.orders).astype(np.uint16),
        "epoch_loss": np.array(result.epoch_loss, dtype=np.float32),
        "accuracy": f32(result.accuracy),
        "update_norm": f32(result.update_norm),
        "delta": result.delta,
        "rng_state_after": u32(node_rng.state),
    }


def head_vectors() -> dict[str, bytes]:
    cases = {
        "sgd_d64_k6_b4_mu0": sgd_case(101, 64, 6, 4, 3, 0.05, 0.0),
        "sgd_d64_k6_b1_mu01": sgd_case(102, 64, 6, 1, 4, 0.1, 0.1),
        "sgd_d7_k3_b5_mu0": sgd_case(103, 7, 3, 5, 3, 0.2, 0.0),
        "sgd_d7_k3_b2_mu05": sgd_case(104, 7, 3, 2, 3, 0.1, 0.5),
        "sgd_d13_k7_b3_mu0": sgd_case(105, 13, 7, 3, 2, 0.05, 0.0),
        "train_d64_k6_b8": train_case(
            201, 64, 6, 96, epochs=3, batch=8, lr=0.05, mu=0.0, clip=0.0,
            node_id="node-a", round_id=1,
        ),
        "train_d64_k6_b5_prox": train_case(
            202, 64, 6, 37, epochs=2, batch=5, lr=0.02, mu=0.01, clip=10.0,
            node_id="factory1_press-07", round_id=12,
        ),
        "train_d7_k3_b1_clip": train_case(
            203, 7, 3, 23, epochs=4, batch=1, lr=0.1, mu=0.05, clip=0.2,
            node_id="n3", round_id=7,
        ),
        "train_sep_d16_k4_b4": train_case(
            204, 16, 4, 64, epochs=5, batch=4, lr=0.05, mu=0.0, clip=0.0,
            node_id="sep", round_id=3, separable=True,
        ),
    }  # fmt: skip
    return {f"head/{name}.bin": pack(arrays) for name, arrays in cases.items()}


# ---------------------------------------------------------------------------------------------
# quantizer and PRNG


def quant_input(seed: int, rows: int, cols: int) -> npt.NDArray[np.float32]:
    """Rows of different magnitudes, an all-zero row, and each row's extreme value present both
    as +max and -max somewhere in the tensor."""
    rng = Xorshift32(seed)
    x = uniform(rng, (rows, cols), -1.0, 1.0)
    x *= np.float32(10.0) ** np.arange(-3, rows - 3, dtype=np.float32)[:, None]
    x[2] = 0.0
    x[0, 0] = -np.abs(x[0]).max()
    x[-1, cols // 2] = np.float32(0.5) * np.abs(x[-1]).max()
    return x.astype(np.float32)


def quant_case(x: npt.NDArray[np.float32], bits: int, mode: int, state: int) -> Arrays:
    rng = Xorshift32(state)
    codes, scales = quantize(x, bits, mode, rng)
    ncodes, nscales = quantize_nearest(x, bits, mode)
    return {
        "x": x,
        "bits": np.array(bits, dtype=np.uint8),
        "mode": np.array(mode, dtype=np.uint8),
        "rng_state": u32(state),
        "codes": codes,
        "scales": scales,
        "rng_state_after": u32(rng.state),
        "nearest_codes": ncodes,
        "nearest_scales": nscales,
    }


def rng_vectors() -> Arrays:
    cases = [(0, "node-a", 1), (1, "n3", 7), (0xDEADBEEF, "factory1_press-07", 12),
             (0x9E3779B9, "", 0), (42, "x" * 32, 0xFFFFFFFF), (7, "sep", 3)]  # fmt: skip
    ids = [c[1].encode("ascii") for c in cases]
    states, nexts, unis, shuffles, after, fnvs = [], [], [], [], [], []
    for seed, node_id, round_id in cases:
        rng = round_rng(seed, node_id, round_id)
        states.append(rng.state)
        nexts.append(rng.next_array(16))
        unis.append(rng.uniform01_array(8))
        shuffles.append(shuffle(np.arange(20), rng))
        after.append(rng.state)
        fnvs.append(fnv1a32(node_id))
    mix_in = np.array([0, 1, 2, 0x80000000, 0xFFFFFFFF, 0x12345678, 0x9E3779B9, 31337], np.uint32)
    zero = Xorshift32(0)  # a zero state becomes 1
    return {
        "seeds": np.array([c[0] for c in cases], dtype=np.uint32),
        "round_ids": np.array([c[2] for c in cases], dtype=np.uint32),
        "node_id_lens": np.array([len(i) for i in ids], dtype=np.uint8),
        "node_id_bytes": np.frombuffer(b"".join(ids), dtype=np.uint8),
        "fnv1a32": np.array(fnvs, dtype=np.uint32),
        "states": np.array(states, dtype=np.uint32),
        "next16": np.stack(nexts).astype(np.uint32),
        "uniform8": np.stack(unis).astype(np.float32),
        "shuffle20": np.stack(shuffles).astype(np.uint16),
        "states_after": np.array(after, dtype=np.uint32),
        "mix32_in": mix_in,
        "mix32_out": np.array([mix32(int(v)) for v in mix_in], dtype=np.uint32),
        "zero_state_next4": zero.next_array(4),
    }


def quant_vectors() -> dict[str, bytes]:
    out = {}
    x = quant_input(301, 6, 65)
    for bits in (8, 4, 2):
        for mode in (0, 1):
            out[f"quant/q_b{bits}_m{mode}.bin"] = pack(
                quant_case(x, bits, mode, 1000 + bits * 10 + mode)
            )
    odd = quant_input(302, 5, 3)
    out["quant/q_odd_b4_m1.bin"] = pack(quant_case(odd, 4, 1, 77))
    out["quant/q_zero_b8_m0.bin"] = pack(quant_case(np.zeros((3, 5), np.float32), 8, 0, 5))
    # exact halves: x / scale + 0.5 lands on integers, where rounding half up matters
    halves = np.array([[-7, -2.5, -0.5, 0, 0.5, 1.5, 2.5, 7]], np.float32) * np.float32(0.25)
    out["quant/q_halves_b4_m0.bin"] = pack(quant_case(halves, 4, 0, 9))
    out["quant/rng.bin"] = pack(rng_vectors())
    return out


def all_vectors() -> dict[str, bytes]:
    """Every golden file, relative to testvectors/, with its bytes."""
    return {**head_vectors(), **quant_vectors()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the files on disk")
    args = ap.parse_args(argv)
    vectors = all_vectors()
    if args.check:
        stale = [rel for rel, data in vectors.items()
                 if not (OUT / rel).is_file() or (OUT / rel).read_bytes() != data]  # fmt: skip
        for rel in stale:
            print(f"stale or missing: testvectors/{rel}")
        return 1 if stale else 0
    for rel, data in vectors.items():
        path = OUT / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    print(f"wrote {len(vectors)} files under {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
