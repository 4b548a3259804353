"""Aggregation strategies against results worked out by hand, plus properties (hypothesis).

Every expected number below comes from the arithmetic written next to it, with values chosen so
float32 represents them exactly; `assert_head` still compares with a float32-sized tolerance.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from tinyfl.errors import TinyFLError, UsageError
from tinyfl.strategy import (
    STRATEGIES,
    AggregationError,
    ClientResult,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedProx,
    Median,
    NormBounded,
    Strategy,
    TrimmedMean,
    get_strategy,
    parse_strategy_spec,
    strategy_params,
)


def head(*rows: Sequence[float]) -> NDArray[np.float32]:
    return np.array(rows, dtype=np.float32)


def upd(delta: Sequence[float] | Sequence[Sequence[float]], n: int = 1) -> ClientResult:
    array = np.array(delta, dtype=np.float32)
    return ClientResult(array.reshape(1, -1) if array.ndim == 1 else array, n)


def assert_head(actual: NDArray[Any], *expected_rows: Sequence[float]) -> None:
    assert actual.dtype == np.float32
    np.testing.assert_allclose(actual, np.array(expected_rows), rtol=1e-6, atol=1e-6)


ZERO = head([0.0, 0.0, 0.0])


# --- FedAvg / FedProx ------------------------------------------------------------------------


def test_fedavg_weights_by_samples() -> None:
    # (1*[1,2,3] + 3*[4,5,6]) / 4 = [13, 17, 21] / 4 = [3.25, 4.25, 5.25]; plus head [0.5, -1, 2]
    result = FedAvg().aggregate(head([0.5, -1.0, 2.0]), [upd([1, 2, 3], 1), upd([4, 5, 6], 3)])
    assert_head(result.head, [3.75, 3.25, 7.25])
    assert result.state == {}


def test_fedavg_equal_samples_is_plain_mean() -> None:
    # ([1,2,3] + [4,5,6]) / 2 = [2.5, 3.5, 4.5]
    result = FedAvg().aggregate(ZERO, [upd([1, 2, 3], 2), upd([4, 5, 6], 2)])
    assert_head(result.head, [2.5, 3.5, 4.5])


def test_fedavg_three_clients() -> None:
    # weights 1/4, 2/4, 1/4:
    #   col 0: (2*1 + 0*2 + -2*1) / 4 = 0
    #   col 1: (0*1 + 6*2 +  3*1) / 4 = 15/4 = 3.75
    #   col 2: (-4*1 + 2*2 + 0*1) / 4 = 0
    updates = [upd([2, 0, -4], 1), upd([0, 6, 2], 2), upd([-2, 3, 0], 1)]
    assert_head(FedAvg().aggregate(ZERO, updates).head, [0.0, 3.75, 0.0])


def test_fedavg_two_class_head() -> None:
    # k = 2 rows, d + 1 = 2 columns; weights 3/4 and 1/4
    # row 0: 0.75*[4, 0] + 0.25*[0, 8] = [3, 2]; row 1: 0.75*[0, -4] + 0.25*[4, 4] = [1, -2]
    a = upd([[4, 0], [0, -4]], 3)
    b = upd([[0, 8], [4, 4]], 1)
    result = FedAvg().aggregate(head([1, 1], [1, 1]), [a, b])
    assert_head(result.head, [4, 3], [2, -1])


def test_fedprox_aggregates_like_fedavg_and_carries_mu() -> None:
    updates = [upd([1, 2, 3], 1), upd([4, 5, 6], 3)]
    strategy = FedProx(mu=0.25)
    assert strategy.prox_mu == 0.25
    assert FedAvg().prox_mu == 0.0
    assert_head(strategy.aggregate(ZERO, updates).head, [3.25, 4.25, 5.25])


# --- FedAvgM ---------------------------------------------------------------------------------


def test_fedavgm_momentum_over_two_rounds() -> None:
    strategy = FedAvgM(server_lr=1.0, momentum=0.5)
    state = strategy.init_state(ZERO)
    np.testing.assert_array_equal(state["momentum"], np.zeros((1, 3)))

    # round 1: mean delta ([0,2,4] + [2,2,2]) / 2 = [1,2,3]; v = 0.5*0 + [1,2,3]; head = [1,2,3]
    r1 = strategy.aggregate(ZERO, [upd([0, 2, 4], 1), upd([2, 2, 2], 1)], state)
    np.testing.assert_allclose(r1.state["momentum"], [[1, 2, 3]])
    assert_head(r1.head, [1, 2, 3])

    # round 2: mean delta [1,0,-1]; v = 0.5*[1,2,3] + [1,0,-1] = [1.5, 1, 0.5]
    #          head = [1,2,3] + [1.5,1,0.5] = [2.5, 3, 3.5]
    r2 = strategy.aggregate(r1.head, [upd([1, 0, -1], 5)], r1.state)
    np.testing.assert_allclose(r2.state["momentum"], [[1.5, 1.0, 0.5]])
    assert_head(r2.head, [2.5, 3.0, 3.5])
    # the round-1 state object was not touched
    np.testing.assert_allclose(r1.state["momentum"], [[1, 2, 3]])


def test_fedavgm_server_lr_scales_the_step() -> None:
    # v = 0.5*[2,2,2] + [2,0,-2] = [3,1,-1]; head = [1,1,1] + 0.5*v = [2.5, 1.5, 0.5]
    state = {"momentum": np.full((1, 3), 2.0)}
    result = FedAvgM(server_lr=0.5, momentum=0.5).aggregate(
        head([1, 1, 1]), [upd([2, 0, -2])], state
    )
    assert_head(result.head, [2.5, 1.5, 0.5])


def test_fedavgm_without_state_starts_from_zero_momentum() -> None:
    # v = 0.9*0 + [1,1,1]; head = [1,1,1]
    assert_head(FedAvgM().aggregate(ZERO, [upd([1, 1, 1])]).head, [1, 1, 1])


# --- FedAdam ---------------------------------------------------------------------------------


def test_fedadam_over_two_rounds() -> None:
    # eta=1, beta1=0.5, beta2=0.75, tau=2 (v starts at tau^2 = 4), head [1,1,1]
    strategy = FedAdam(eta=1.0, beta1=0.5, beta2=0.75, tau=2.0)
    state = strategy.init_state(head([1, 1, 1]))
    np.testing.assert_array_equal(state["m"], np.zeros((1, 3)))
    np.testing.assert_array_equal(state["v"], np.full((1, 3), 4.0))
    assert state["t"] == 0

    # round 1: D = ([4,-4,4] + [0,0,0]) / 2 = [2,-2,2]
    #   m = 0.5*0 + 0.5*D = [1,-1,1]
    #   v = 0.75*4 + 0.25*D^2 = 3 + 1 = [4,4,4], sqrt(v) = 2
    #   step = 1 * m / (2 + 2) = [0.25, -0.25, 0.25]; head = [1.25, 0.75, 1.25]
    r1 = strategy.aggregate(head([1, 1, 1]), [upd([4, -4, 4], 1), upd([0, 0, 0], 1)], state)
    np.testing.assert_allclose(r1.state["m"], [[1, -1, 1]])
    np.testing.assert_allclose(r1.state["v"], [[4, 4, 4]])
    assert r1.state["t"] == 1
    assert_head(r1.head, [1.25, 0.75, 1.25])

    # round 2: D = [2,2,-2]
    #   m = 0.5*[1,-1,1] + 0.5*[2,2,-2] = [1.5, 0.5, -0.5]
    #   v = 0.75*4 + 0.25*4 = [4,4,4]
    #   step = m / 4 = [0.375, 0.125, -0.125]; head = [1.625, 0.875, 1.125]
    r2 = strategy.aggregate(r1.head, [upd([2, 2, -2], 7)], r1.state)
    np.testing.assert_allclose(r2.state["m"], [[1.5, 0.5, -0.5]])
    np.testing.assert_allclose(r2.state["v"], [[4, 4, 4]])
    assert r2.state["t"] == 2
    assert_head(r2.head, [1.625, 0.875, 1.125])


def test_fedadam_adapts_per_coordinate() -> None:
    # beta2 = 0 makes v = D^2, so with tau tiny the step is eta * (1 - beta1) * sign(D):
    # eta=1, beta1=0.5 -> [0.5, -0.5, 0] for D = [8, -0.001, 0] (0 stays 0: m = 0)
    strategy = FedAdam(eta=1.0, beta1=0.5, beta2=0.0, tau=1e-9)
    result = strategy.aggregate(ZERO, [upd([8, -0.001, 0])])
    np.testing.assert_allclose(result.head, [[0.5, -0.5, 0.0]], atol=1e-5)


def test_fedadam_default_state_uses_tau_squared() -> None:
    state = FedAdam(tau=0.5).init_state(ZERO)
    np.testing.assert_array_equal(state["v"], np.full((1, 3), 0.25))


# --- coordinate-wise median and trimmed mean -------------------------------------------------


def test_median_odd_count() -> None:
    # columns: [1,2,100] -> 2; [10,20,-5] -> 10; [-1,-2,0] -> -1. Sample counts do not matter.
    updates = [upd([1, 10, -1], 1), upd([2, 20, -2], 1), upd([100, -5, 0], 1000)]
    result = Median().aggregate(head([1, 1, 1]), updates)
    assert_head(result.head, [3, 11, 0])


def test_median_even_count_averages_the_middle_two() -> None:
    # column 0: [1,2,3,4] -> (2+3)/2 = 2.5; column 1: [0,0,8,8] -> 4; column 2: [-1,1,1,3] -> 1
    updates = [upd([1, 0, -1]), upd([2, 8, 1]), upd([3, 0, 3]), upd([4, 8, 1])]
    assert_head(Median().aggregate(ZERO, updates).head, [2.5, 4, 1])


def test_trimmed_mean_drops_extremes_per_coordinate() -> None:
    # beta 0.2 of 5 updates -> drop floor(1.0) = 1 from each side, per coordinate:
    #   column 0: [1,2,3,4,100]   -> mean(2,3,4) = 3
    #   column 1: [-50,0,1,2,3]   -> mean(0,1,2) = 1
    #   column 2: [5,5,5,5,5]     -> 5
    updates = [
        upd([1, -50, 5]),
        upd([100, 0, 5]),
        upd([3, 1, 5], 9),
        upd([2, 3, 5]),
        upd([4, 2, 5]),
    ]
    result = TrimmedMean(beta=0.2).aggregate(ZERO, updates)
    assert_head(result.head, [3, 1, 5])
    assert result.info == {"trimmed_per_side": 1.0}


def test_trimmed_mean_with_nothing_to_trim_is_the_unweighted_mean() -> None:
    # beta 0.1 of 5 -> floor(0.5) = 0 trimmed; column 0: (1+100+3+2+4)/5 = 110/5 = 22
    updates = [upd([1, 0, 0]), upd([100, 0, 0], 50), upd([3, 0, 0]), upd([2, 0, 0]), upd([4, 0, 0])]
    assert_head(TrimmedMean(beta=0.1).aggregate(ZERO, updates).head, [22, 0, 0])


def test_trimmed_mean_at_high_beta_is_the_median() -> None:
    # beta 0.4 of 5 -> trim 2 per side, leaving the middle value
    updates = [upd([v, -v, 0]) for v in (5.0, 1.0, 4.0, 2.0, 3.0)]
    assert_head(TrimmedMean(beta=0.4).aggregate(ZERO, updates).head, [3, -3, 0])


@pytest.mark.parametrize("strategy", [Median(), TrimmedMean(beta=0.25)])
def test_robust_aggregators_ignore_one_outlier(strategy: Strategy) -> None:
    # four honest nodes around [1, -1, 0.5], one node sends 1e6 with a huge sample count
    honest = [upd([1.0, -1.0, 0.5]), upd([1.5, -0.5, 0.5]), upd([0.5, -1.5, 0.5]), upd([1, -1, 1])]
    outlier = upd([1e6, -1e6, 1e6], 10_000)
    robust = strategy.aggregate(ZERO, [*honest, outlier]).head
    lows = np.min([u.delta for u in honest], axis=0)
    highs = np.max([u.delta for u in honest], axis=0)
    assert np.all(robust >= lows) and np.all(robust <= highs)
    # FedAvg, for contrast, is dragged all the way to the outlier
    assert FedAvg().aggregate(ZERO, [*honest, outlier]).head[0, 0] > 9e5


# --- norm-bounded averaging ------------------------------------------------------------------


def test_norm_bounded_fixed_bound() -> None:
    # ||[3,4,0]|| = 5 <= 5 stays; ||[0,0,20]|| = 20 -> scaled by 5/20 to [0,0,5]
    # equal weights: ([3,4,0] + [0,0,5]) / 2 = [1.5, 2, 2.5]
    result = NormBounded(bound=5.0).aggregate(ZERO, [upd([3, 4, 0]), upd([0, 0, 20])])
    assert_head(result.head, [1.5, 2.0, 2.5])
    assert result.info == {"bound": 5.0, "clipped": 1.0}


def test_norm_bounded_median_bound_keeps_sample_weights() -> None:
    # norms: [3,4,0] -> 5, [0,6,8] -> 10, [0,0,40] -> 40; median = 10
    # only the last is clipped: [0,0,40] * 10/40 = [0,0,10]
    # weights 1/4, 1/4, 2/4: x = 3/4 = 0.75; y = (4+6)/4 = 2.5; z = (0 + 8 + 2*10)/4 = 7
    updates = [upd([3, 4, 0], 1), upd([0, 6, 8], 1), upd([0, 0, 40], 2)]
    result = NormBounded().aggregate(ZERO, updates)
    assert_head(result.head, [0.75, 2.5, 7.0])
    assert result.info == {"bound": 10.0, "clipped": 1.0}


def test_norm_bound_covers_the_whole_head() -> None:
    # the L2 norm is over every entry of the (k, d+1) head: ||[[3,0],[0,4]]|| = 5
    # bound 2.5 halves it to [[1.5,0],[0,2]]
    result = NormBounded(bound=2.5).aggregate(head([0, 0], [0, 0]), [upd([[3, 0], [0, 4]])])
    assert_head(result.head, [1.5, 0], [0, 2])


# --- validation ------------------------------------------------------------------------------


ALL = [get_strategy(name) for name in STRATEGIES]


@pytest.mark.parametrize("strategy", ALL, ids=lambda s: s.name)
@pytest.mark.parametrize(
    ("case", "global_head", "updates"),
    [
        ("empty", ZERO, []),
        ("shape", ZERO, [upd([1, 2])]),
        ("rows", ZERO, [upd([[1, 2, 3], [4, 5, 6]])]),
        ("nan delta", ZERO, [upd([1, float("nan"), 3])]),
        ("inf delta", ZERO, [upd([1, 2, float("inf")])]),
        ("inf head", head([0, float("-inf"), 0]), [upd([1, 2, 3])]),
        ("1-d head", np.zeros(3, dtype=np.float32), [upd([1, 2, 3])]),
        ("int delta", ZERO, [ClientResult(np.array([[1, 2, 3]]), 1)]),
        ("list delta", ZERO, [ClientResult([[1.0, 2.0, 3.0]], 1)]),  # type: ignore[arg-type]
        ("zero samples", ZERO, [upd([1, 2, 3], 0)]),
        ("negative samples", ZERO, [upd([1, 2, 3], -2)]),
        ("float samples", ZERO, [ClientResult(np.ones((1, 3), np.float32), 1.5)]),  # type: ignore[arg-type]
        ("bool samples", ZERO, [ClientResult(np.ones((1, 3), np.float32), True)]),
    ],
)
def test_invalid_inputs_raise_aggregation_error(
    strategy: Strategy, case: str, global_head: NDArray[Any], updates: list[ClientResult]
) -> None:
    with pytest.raises(AggregationError) as info:
        strategy.aggregate(global_head, updates)
    assert isinstance(info.value, TinyFLError)


def test_error_names_the_bad_update() -> None:
    with pytest.raises(AggregationError, match=r"update 1: delta shape \(1, 2\) differs"):
        FedAvg().aggregate(ZERO, [upd([1, 2, 3]), upd([1, 2])])


@pytest.mark.parametrize(
    ("strategy", "state"),
    [
        (FedAvgM(), {}),
        (FedAvgM(), {"momentum": np.zeros((2, 3))}),
        (FedAvgM(), {"momentum": np.array([[0.0, np.nan, 0.0]])}),
        (FedAdam(), {"m": np.zeros((1, 3)), "v": np.ones((1, 3))}),
        (FedAdam(), {"m": np.zeros((1, 3)), "v": -np.ones((1, 3)), "t": 0}),
        (FedAdam(), {"m": np.zeros((1, 3)), "v": np.ones((1, 3)), "t": 1.5}),
        (FedAdam(), {"momentum": np.zeros((1, 3))}),
    ],
)
def test_foreign_or_corrupt_state_is_rejected(strategy: Strategy, state: dict[str, Any]) -> None:
    with pytest.raises(AggregationError):
        strategy.aggregate(ZERO, [upd([1, 2, 3])], state)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("fedprox", {"mu": -0.1}),
        ("fedavgm", {"momentum": 1.0}),
        ("fedavgm", {"server_lr": 0.0}),
        ("fedadam", {"beta2": 1.0}),
        ("fedadam", {"tau": 0.0}),
        ("fedadam", {"eta": float("nan")}),
        ("trimmed-mean", {"beta": 0.5}),
        ("norm-bounded", {"bound": 0.0}),
        ("norm-bounded", {"bound": "mean"}),
        ("fedavg", {"mu": 0.1}),
        ("fedsgd", {}),
    ],
)
def test_bad_hyperparameters_are_usage_errors(name: str, params: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        get_strategy(name, **params)


# --- purity, state round trip, registry ------------------------------------------------------


@pytest.mark.parametrize("strategy", ALL, ids=lambda s: s.name)
def test_inputs_are_not_mutated(strategy: Strategy) -> None:
    start = head([1, 2, 3])
    updates = [upd([1, -1, 0.5], 2), upd([0, 3, -2], 1), upd([2, 2, 2], 4)]
    state = strategy.init_state(start)
    copies = (
        start.copy(),
        [u.delta.copy() for u in updates],
        {k: np.copy(v) for k, v in state.items()},
    )
    strategy.aggregate(start, updates, state)
    np.testing.assert_array_equal(start, copies[0])
    for update, delta in zip(updates, copies[1]):
        np.testing.assert_array_equal(update.delta, delta)
    for key, value in state.items():
        np.testing.assert_array_equal(value, copies[2][key])


@pytest.mark.parametrize("strategy", ALL, ids=lambda s: s.name)
def test_state_survives_a_checkpoint_round_trip(strategy: Strategy) -> None:
    """State -> np.savez -> np.load gives bit-identical next heads (what --resume relies on)."""
    h0 = head([0.5, -0.25, 1.0], [0.0, 2.0, -1.0])
    rounds = [
        [upd([[0.1, 0.2, -0.3], [0.0, 0.5, 0.25]], 3), upd([[0.3, -0.1, 0.0], [1.0, 0.0, 0.5]], 1)],
        [upd([[-0.2, 0.4, 0.1], [0.2, 0.1, -0.5]], 2), upd([[0.05, 0.0, 0.2], [0.0, 0.3, 0.1]], 2)],
    ]
    r1 = strategy.aggregate(h0, rounds[0])
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {key: np.asarray(value) for key, value in r1.state.items()}
    np.savez(buffer, **arrays)
    buffer.seek(0)
    with np.load(buffer) as loaded:
        restored = {key: loaded[key] for key in loaded.files}
    direct = strategy.aggregate(r1.head, rounds[1], r1.state)
    resumed = strategy.aggregate(r1.head, rounds[1], restored)
    np.testing.assert_array_equal(direct.head, resumed.head)


def test_registry_names_and_specs() -> None:
    assert set(STRATEGIES) == {
        "fedavg",
        "fedprox",
        "fedavgm",
        "fedadam",
        "median",
        "trimmed-mean",
        "norm-bounded",
    }
    assert get_strategy("FedAdam", eta=0.1) == FedAdam(eta=0.1)
    assert parse_strategy_spec("trimmed-mean:beta=0.2") == TrimmedMean(beta=0.2)
    assert parse_strategy_spec("norm-bounded:bound=median") == NormBounded()
    assert parse_strategy_spec("norm-bounded: bound = 3") == NormBounded(bound=3.0)
    assert parse_strategy_spec("fedprox:mu=0.5").prox_mu == 0.5
    assert strategy_params(FedAvgM(momentum=0.5)) == {
        "name": "fedavgm",
        "server_lr": 1.0,
        "momentum": 0.5,
    }
    for strategy in ALL:
        assert isinstance(strategy, Strategy)


@pytest.mark.parametrize("spec", ["fedadam:eta", "fedadam:=1", "fedadam:eta=0.1,beta9=1", "x:y=1"])
def test_bad_specs_are_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError):
        parse_strategy_spec(spec)


# --- properties ------------------------------------------------------------------------------

finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)
shapes = st.tuples(st.integers(1, 3), st.integers(1, 4))


@st.composite
def rounds(draw: st.DrawFn, min_clients: int = 1) -> tuple[NDArray[np.float32], list[ClientResult]]:
    shape = draw(shapes)
    n = draw(st.integers(min_clients, 6))
    start = draw(hnp.arrays(np.float32, shape, elements=finite))
    updates = [
        ClientResult(
            draw(hnp.arrays(np.float32, shape, elements=finite)), draw(st.integers(1, 1000))
        )
        for _ in range(n)
    ]
    return start, updates


@settings(max_examples=60, deadline=None)
@given(data=rounds(), copies=st.integers(1, 5))
def test_fedavg_of_identical_deltas_is_that_delta(
    data: tuple[NDArray[np.float32], list[ClientResult]], copies: int
) -> None:
    start, updates = data
    same = [ClientResult(updates[0].delta, u.n_samples) for u in updates[:copies]]
    expected = (start.astype(np.float64) + updates[0].delta).astype(np.float32)
    np.testing.assert_allclose(FedAvg().aggregate(start, same).head, expected, rtol=1e-6, atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(data=rounds(min_clients=2), seed=st.integers(0, 2**32 - 1))
def test_every_strategy_is_permutation_invariant(
    data: tuple[NDArray[np.float32], list[ClientResult]], seed: int
) -> None:
    start, updates = data
    shuffled = [updates[i] for i in np.random.default_rng(seed).permutation(len(updates))]
    for strategy in ALL:
        a = strategy.aggregate(start, updates).head
        b = strategy.aggregate(start, shuffled).head
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-3, err_msg=strategy.name)


@settings(max_examples=60, deadline=None)
@given(data=rounds())
def test_median_and_trimmed_mean_stay_within_the_updates(
    data: tuple[NDArray[np.float32], list[ClientResult]],
) -> None:
    _, updates = data
    zero = np.zeros_like(updates[0].delta)
    deltas = np.stack([u.delta for u in updates])
    for strategy in (Median(), TrimmedMean(beta=0.2)):
        result = strategy.aggregate(zero, updates).head
        assert np.all(result >= deltas.min(axis=0)), strategy.name
        assert np.all(result <= deltas.max(axis=0)), strategy.name


@settings(max_examples=60, deadline=None)
@given(data=rounds(), bound=st.floats(0.01, 100.0))
def test_norm_bounded_step_never_exceeds_the_bound(
    data: tuple[NDArray[np.float32], list[ClientResult]], bound: float
) -> None:
    _, updates = data
    zero = np.zeros_like(updates[0].delta)
    step = NormBounded(bound=bound).aggregate(zero, updates).head
    assert float(np.linalg.norm(step.astype(np.float64))) <= bound * (1 + 1e-5)
