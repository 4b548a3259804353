"""The round PRNG (tinyfl.rng) against testvectors/quant/rng.bin, the same file the firmware's
test_quant reads, plus the properties the vectorized paths must keep."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support.vectors import head_vector_generator
from tinyfl.rng import Xorshift32, fnv1a32, mix32, round_rng, shuffle, uniform01

ROOT = Path(__file__).resolve().parents[2]


GEN = head_vector_generator()
RNG = GEN.unpack((ROOT / "testvectors" / "quant" / "rng.bin").read_bytes())
CASES = range(len(RNG["seeds"]))


def _node_id(case: int) -> bytes:
    lens = RNG["node_id_lens"].astype(int)
    start = int(lens[:case].sum())
    return bytes(RNG["node_id_bytes"][start : start + lens[case]])


@pytest.mark.parametrize("case", CASES)
def test_round_streams_match_golden(case: int) -> None:
    node_id = _node_id(case)
    assert fnv1a32(node_id) == RNG["fnv1a32"][case]
    assert fnv1a32(node_id.decode("ascii")) == RNG["fnv1a32"][case]
    rng = round_rng(int(RNG["seeds"][case]), node_id.decode("ascii"), int(RNG["round_ids"][case]))
    assert rng.state == RNG["states"][case]
    assert [rng.next() for _ in range(16)] == RNG["next16"][case].tolist()
    got = np.array([rng.uniform01() for _ in range(8)], dtype=np.float32)
    assert got.tobytes() == RNG["uniform8"][case].tobytes()
    assert shuffle(np.arange(20), rng).tolist() == RNG["shuffle20"][case].tolist()
    assert rng.state == RNG["states_after"][case]


@pytest.mark.parametrize("case", CASES)
def test_vectorized_draws_match_golden(case: int) -> None:
    rng = round_rng(int(RNG["seeds"][case]), _node_id(case), int(RNG["round_ids"][case]))
    assert rng.next_array(16).tolist() == RNG["next16"][case].tolist()
    assert uniform01(rng, 8).tobytes() == RNG["uniform8"][case].tobytes()


def test_mix32_and_zero_state_match_golden() -> None:
    assert [mix32(int(v)) for v in RNG["mix32_in"]] == RNG["mix32_out"].tolist()
    zero = Xorshift32(0)
    assert zero.state == 1
    assert zero.next_array(4).tolist() == RNG["zero_state_next4"].tolist()


def test_fnv1a32_published_values() -> None:
    assert fnv1a32(b"") == 0x811C9DC5
    assert fnv1a32("a") == 0xE40C292C
    assert fnv1a32("foobar") == 0xBF9CF968


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 3000))
def test_next_array_equals_repeated_next(state: int, n: int) -> None:
    a, b = Xorshift32(state), Xorshift32(state)
    assert a.next_array(n).tolist() == [b.next() for _ in range(n)]
    assert a.state == b.state


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 600))
def test_shuffle_is_a_permutation_drawing_n_minus_1(state: int, n: int) -> None:
    rng, ref = Xorshift32(state), Xorshift32(state)
    out = shuffle(np.arange(n), rng)
    assert sorted(out.tolist()) == list(range(n))
    ref.next_array(max(n - 1, 0))
    assert rng.state == ref.state


def test_uniforms_lie_in_unit_interval_and_are_float32_exact() -> None:
    u = Xorshift32(99).uniform01_array(100_000)
    assert u.dtype == np.float32
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    assert np.array_equal(u * np.float32(2**24), np.floor(u * np.float32(2**24)))
    assert abs(float(u.mean()) - 0.5) < 0.01


def test_round_streams_differ_by_node_and_round() -> None:
    states = {round_rng(1, node, r).state for node in ("a", "b") for r in (1, 2)}
    assert len(states) == 4
