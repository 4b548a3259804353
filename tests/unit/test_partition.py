"""Partitioners: hand-checked small cases, disjointness, reproducibility, skew vs alpha."""

from __future__ import annotations

import numpy as np
import pytest

from tinyfl.data import partition as P


def _check_disjoint(parts: P.Partition, n: int) -> np.ndarray:
    flat = np.concatenate(parts)
    assert np.unique(flat).size == flat.size, "an index is held by two clients"
    assert flat.size == 0 or (flat.min() >= 0 and flat.max() < n)
    for part in parts:
        assert part.dtype == np.int64
        assert (np.diff(part) > 0).all()
    return flat


def test_by_group_one_client_per_group_in_sorted_order() -> None:
    groups = np.array([7, 3, 7, 5, 3, 3])
    parts = P.by_group(groups, 3, seed=123)
    assert [p.tolist() for p in parts] == [[1, 4, 5], [3], [0, 2]]  # users 3, 5, 7
    assert [p.tolist() for p in P.by_group(groups, 3, seed=0)] == [p.tolist() for p in parts]


def test_by_group_fewer_clients_merges_whole_groups() -> None:
    groups = np.repeat(np.arange(10), 4)
    parts = P.by_group(groups, 3, seed=5)
    assert sorted(len(p) for p in parts) == [12, 12, 16]
    _check_disjoint(parts, groups.size)
    assert np.concatenate(parts).size == groups.size
    for part in parts:  # every group stays on one client
        for g in np.unique(groups[part]):
            assert (groups == g).sum() == (groups[part] == g).sum()
    with pytest.raises(ValueError, match="only 10 groups"):
        P.by_group(groups, 11, seed=0)


def test_iid_sizes_and_coverage() -> None:
    parts = P.iid(10, 3, seed=1)
    assert [len(p) for p in parts] == [4, 3, 3]
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))
    with pytest.raises(ValueError):
        P.iid(2, 3, seed=1)


def test_quantity_skew_sizes_sum_and_minimum() -> None:
    parts = P.quantity_skew(1000, 8, alpha=0.3, seed=4, min_samples=5)
    assert sum(len(p) for p in parts) == 1000
    assert min(len(p) for p in parts) >= 5
    _check_disjoint(parts, 1000)
    sizes_small = np.array([len(p) for p in P.quantity_skew(10_000, 10, 0.1, seed=2)])
    sizes_large = np.array([len(p) for p in P.quantity_skew(10_000, 10, 100.0, seed=2)])
    assert sizes_small.std() > 5 * sizes_large.std()


def _mean_labels_per_client(hist: np.ndarray, share: float = 0.05) -> float:
    """How many classes a client really holds (those over `share` of its samples)."""
    frac = hist / np.maximum(hist.sum(axis=1, keepdims=True), 1)
    return float((frac > share).sum(axis=1).mean())


def test_dirichlet_skew_grows_as_alpha_shrinks() -> None:
    labels = np.repeat(np.arange(6), 500)
    spread = []
    for alpha in (100.0, 1.0, 0.1):
        parts = P.dirichlet(labels, 10, alpha, seed=7)
        flat = _check_disjoint(parts, labels.size)
        assert flat.size == labels.size  # every sample placed exactly once
        spread.append(_mean_labels_per_client(P.label_histograms(parts, labels, 6)))
    assert spread[0] == 6.0
    assert spread[0] > spread[1] > spread[2]
    assert spread[2] < 3


def test_dirichlet_min_samples_and_errors() -> None:
    labels = np.repeat(np.arange(3), 20)
    parts = P.dirichlet(labels, 6, alpha=0.5, seed=3, min_samples=4)
    assert min(len(p) for p in parts) >= 4
    with pytest.raises(ValueError, match="alpha"):
        P.dirichlet(labels, 2, alpha=0.0, seed=0)
    with pytest.raises(ValueError, match="exceeds"):
        P.dirichlet(labels, 6, alpha=1.0, seed=0, min_samples=11)


@pytest.mark.parametrize(
    "make",
    [
        lambda s: P.iid(500, 7, s),
        lambda s: P.dirichlet(np.arange(500) % 5, 7, 0.5, s),
        lambda s: P.quantity_skew(500, 7, 0.5, s),
        lambda s: P.by_group(np.arange(500) % 13, 7, s),
        lambda s: P.gateways(np.arange(500) % 5, 7, s),
        lambda s: P.cap(P.iid(500, 4, 0), 60, s),
    ],
)
def test_reproducible_from_seed(make) -> None:  # type: ignore[no-untyped-def]
    a, b, c = make(11), make(11), make(12)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    _check_disjoint(a, 500)


def test_gateways_hand_checked() -> None:
    # normal = 0 (8 records), attack classes 1 and 2 (4 records each)
    labels = np.array([0] * 8 + [1] * 4 + [2] * 4)
    parts = P.gateways(labels, 2, seed=0, max_families=1)
    assert set(parts[0].tolist()) >= {8, 9, 10, 11} and set(parts[1].tolist()) >= {12, 13, 14, 15}
    hist = P.label_histograms(parts, labels, 3)
    assert hist.tolist() == [[4, 4, 0], [4, 0, 4]]  # gateway g sees family g mod F only


def test_gateways_see_normal_plus_one_or_two_families() -> None:
    labels = np.repeat(np.arange(5), [400, 300, 200, 100, 12])
    parts = P.gateways(labels, 10, seed=3)
    _check_disjoint(parts, labels.size)
    hist = P.label_histograms(parts, labels, 5)
    assert (hist[:, 0] >= 39).all()  # everyone sees normal traffic, split evenly
    families = (hist[:, 1:] > 0).sum(axis=1)
    assert set(families.tolist()) <= {1, 2} and 2 in families.tolist()
    assert (hist[:, 1:].sum(axis=0) == [300, 200, 100, 12]).all()  # all families covered


def test_cap_limits_and_keeps_small_clients() -> None:
    parts = [np.arange(10), np.arange(10, 100)]
    capped = P.cap(parts, 20, seed=0)
    assert capped[0].tolist() == list(range(10))
    assert len(capped[1]) == 20 and set(capped[1].tolist()) <= set(range(10, 100))


def test_stratified_cap_keeps_shares_and_rare_classes() -> None:
    labels = np.array([0] * 900 + [1] * 98 + [2] * 2)
    capped = P.cap([np.arange(1000)], 100, seed=1, labels=labels)[0]
    assert len(capped) == 100 and np.unique(capped).size == 100
    hist = np.bincount(labels[capped], minlength=3)
    assert hist[2] >= 1 and 88 <= hist[0] <= 92 and 8 <= hist[1] <= 11
    again = P.cap([np.arange(1000)], 100, seed=1, labels=labels)[0]
    assert np.array_equal(capped, again)
    many = P.cap([np.arange(10)], 3, seed=0, labels=np.arange(10))[0]  # more classes than room
    assert len(many) == 3


def test_gateways_fewer_than_families_leave_unseen_families_out() -> None:
    labels = np.repeat(np.arange(5), 10)
    parts = P.gateways(labels, 2, seed=0, max_families=1)
    hist = P.label_histograms(parts, labels, 5)
    assert hist.tolist() == [[5, 10, 0, 0, 0], [5, 0, 10, 0, 0]]
