"""The numpy head reference (tinyfl.model.head): its golden vectors (testvectors/head/, also read
by the firmware's test_head) regenerate byte for byte, and its math is right on its own terms
(gradient against finite differences, FedProx term, clipping, convergence, shuffles)."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from support.vectors import head_vector_generator
from tinyfl.model.head import accuracy, logits, sgd_step, softmax_xent, train_local
from tinyfl.rng import Xorshift32, round_rng, shuffle

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "testvectors"


GEN = head_vector_generator()
TRAIN = sorted((VECTORS / "head").glob("train_*.bin"))
SGD = sorted((VECTORS / "head").glob("sgd_*.bin"))


def test_golden_vectors_regenerate_byte_for_byte() -> None:
    fresh = GEN.all_vectors()
    assert fresh == GEN.all_vectors()  # deterministic within a run
    assert len(fresh) >= 19
    for rel, data in fresh.items():
        assert (VECTORS / rel).read_bytes() == data, f"testvectors/{rel} is stale"


def test_generator_check_mode_passes() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_head_vectors.py"), "--check"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_container_round_trips() -> None:
    arrays: dict[str, npt.NDArray[Any]] = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.array(7, np.uint16),
              "c": np.array([-1, 2], np.int8)}  # fmt: skip
    back = GEN.unpack(GEN.pack(arrays))
    assert list(back) == list(arrays)
    for name, arr in arrays.items():
        assert back[name].dtype == arr.dtype and np.array_equal(back[name], arr)
    with pytest.raises(ValueError):
        GEN.unpack(GEN.pack(arrays)[:-1])


@pytest.mark.parametrize("path", SGD, ids=[p.stem for p in SGD])
def test_sgd_vectors_follow_from_their_inputs(path: Path) -> None:
    v = GEN.unpack(path.read_bytes())
    w = v["w_init"]
    for s in range(v["x"].shape[0]):
        w, loss = sgd_step(w, v["w0"], v["x"][s], v["y"][s], float(v["lr"]), float(v["mu"]))
        assert w.tobytes() == v["w_after"][s].tobytes()
        assert np.float32(loss) == v["loss_sum"][s]


@pytest.mark.parametrize("path", TRAIN, ids=[p.stem for p in TRAIN])
def test_train_vectors_are_consistent(path: Path) -> None:
    v = GEN.unpack(path.read_bytes())
    node_id = bytes(v["node_id"]).decode("ascii")
    rng = round_rng(int(v["seed"]), node_id, int(v["round_id"]))
    assert rng.state == v["rng_state_initial"]
    n, epochs = v["x"].shape[0], int(v["epochs"])
    for e in range(epochs):
        assert sorted(v["orders"][e].tolist()) == list(range(n))
        assert shuffle(np.arange(n), rng).tolist() == v["orders"][e].tolist()
    assert rng.state == v["rng_state_after"]
    clip = float(v["clip"])
    norm = float(np.linalg.norm(v["delta"].astype(np.float64)))
    if clip > 0:
        assert norm <= clip * (1 + 1e-6)
    if clip == 0 or float(v["update_norm"]) <= clip:
        assert norm == pytest.approx(float(v["update_norm"]), rel=1e-6)


def _data(
    seed: int, n: int, d: int, k: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    rng = Xorshift32(seed)
    x = (rng.uniform01_array(n * d).reshape(n, d) * np.float32(2) - np.float32(1)).astype(
        np.float32
    )
    y = (rng.next_array(n) % np.uint32(k)).astype(np.int64)
    return x, y


def test_gradient_matches_finite_differences() -> None:
    d, k, b = 5, 3, 4
    x, y = _data(1, b, d, k)
    w = (Xorshift32(2).uniform01_array(k * (d + 1)).reshape(k, d + 1) - np.float32(0.5)).astype(
        np.float32
    )
    lr = 1.0 / 1024  # a power of two: the float32 lr is exact
    w_new, _ = sgd_step(w, w, x, y, lr)
    grad = (w.astype(np.float64) - w_new) / lr

    def mean_loss(wm: npt.NDArray[np.float64]) -> float:
        return float(softmax_xent(logits(wm, x), y)[1].mean())

    num = np.zeros_like(grad)
    h = 1e-3
    for idx in np.ndindex(*w.shape):
        plus, minus = w.astype(np.float64), w.astype(np.float64)
        plus[idx] += h
        minus[idx] -= h
        num[idx] = (mean_loss(plus) - mean_loss(minus)) / (2 * h)
    assert np.allclose(grad, num, atol=2e-3)


def test_prox_term_pulls_towards_the_global_head() -> None:
    d, k = 6, 4
    x, y = _data(3, 5, d, k)
    w0 = np.zeros((k, d + 1), np.float32)
    w = (Xorshift32(4).uniform01_array(k * (d + 1)).reshape(k, d + 1)).astype(np.float32)
    plain, _ = sgd_step(w, w0, x, y, 0.125, 0.0)
    prox, _ = sgd_step(w, w0, x, y, 0.125, 0.5)
    expected = -0.125 * 0.5 * (w.astype(np.float64) - w0)
    assert np.allclose(prox.astype(np.float64) - plain, expected, atol=1e-6)


def test_batch_of_one_round_equals_consecutive_steps() -> None:
    d, k, n = 4, 3, 9
    x, y = _data(5, n, d, k)
    w0 = np.zeros((k, d + 1), np.float32)
    res = train_local(w0, x, y, epochs=2, batch_size=1, lr=0.1, prox_mu=0.2, clip_norm=0.0,
                      rng=Xorshift32(11))  # fmt: skip
    w = w0
    for order in res.orders:
        for i in order:
            w, _ = sgd_step(w, w0, x[i : i + 1], y[i : i + 1], 0.1, 0.2)
    assert res.delta.tobytes() == (w - w0).astype(np.float32).tobytes()
    assert res.accuracy == accuracy(w, x, y)


def test_clipping_scales_to_the_bound_and_reports_the_raw_norm() -> None:
    d, k, n = 8, 4, 30
    x, y = _data(6, n, d, k)
    w0 = np.zeros((k, d + 1), np.float32)
    free = train_local(w0, x, y, epochs=3, batch_size=4, lr=0.2, prox_mu=0.0, clip_norm=0.0,
                       rng=Xorshift32(1))  # fmt: skip
    bound = 0.3 * free.update_norm
    clipped = train_local(w0, x, y, epochs=3, batch_size=4, lr=0.2, prox_mu=0.0, clip_norm=bound,
                          rng=Xorshift32(1))  # fmt: skip
    assert clipped.update_norm == free.update_norm
    assert float(np.linalg.norm(clipped.delta.astype(np.float64))) == pytest.approx(bound, rel=1e-6)
    cos = float(np.sum(clipped.delta * free.delta.astype(np.float64)))
    cos /= float(np.linalg.norm(clipped.delta)) * float(np.linalg.norm(free.delta))
    assert cos == pytest.approx(1.0, abs=1e-6)


def test_loss_falls_on_separable_data() -> None:
    v = GEN.unpack((VECTORS / "head" / "train_sep_d16_k4_b4.bin").read_bytes())
    losses = v["epoch_loss"].tolist()
    assert all(b < a for a, b in itertools.pairwise(losses))
    assert float(v["accuracy"]) == 1.0


def test_accuracy_ties_go_to_the_lowest_class() -> None:
    x, y = _data(8, 40, 3, 4)
    w = np.zeros((4, 4), np.float32)
    assert accuracy(w, x, y) == pytest.approx(float(np.mean(y == 0)))


def test_softmax_is_stable_for_large_logits() -> None:
    p, loss = softmax_xent(np.array([[1000.0, 0.0, -1000.0]]), [2])
    assert np.isfinite(p).all() and p.sum() == pytest.approx(1.0)
    assert loss[0] == pytest.approx(2000.0)


def _round(x: npt.ArrayLike, y: npt.ArrayLike, w0: npt.ArrayLike, **overrides: Any) -> object:
    cfg: dict[str, Any] = {
        "epochs": 1,
        "batch_size": 2,
        "lr": 0.1,
        "prox_mu": 0.0,
        "clip_norm": 0.0,
    }
    cfg.update(overrides)
    return train_local(w0, x, y, rng=Xorshift32(1), **cfg)


@pytest.mark.parametrize(
    "overrides",
    [
        {"epochs": 0},
        {"batch_size": 0},
        {"lr": 0.0},
        {"lr": float("nan")},
        {"prox_mu": -0.1},
        {"clip_norm": -1.0},
        {"clip_norm": float("inf")},
    ],
)
def test_bad_configuration_raises(overrides: dict[str, Any]) -> None:
    x, y = _data(9, 5, 3, 2)
    with pytest.raises(ValueError):
        _round(x, y, np.zeros((2, 4), np.float32), **overrides)


def test_bad_data_raises() -> None:
    x, y = _data(10, 5, 3, 2)
    w0 = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError):
        _round(x, y + 5, w0)
    with pytest.raises(ValueError):
        _round(x[:0], y[:0], w0)
    bad = w0.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        _round(x, y, bad)
    with pytest.raises(ValueError):
        sgd_step(w0, w0, x[:, :2], y, 0.1)
