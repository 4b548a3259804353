"""Client partitioners: which samples each simulated node holds. Pure numpy, seeded.

Every partitioner returns one sorted int64 index array per client, disjoint (no sample is held
by two clients), and the same arrays for the same inputs and seed, so a fleet's data can be
rebuilt from its manifest. Federated learning is judged by how it copes with non-IID clients,
so the skews here are the standard ones from the literature:

- `by_group`: natural partition, one client per user/device (HAR users); several groups per
  client when there are fewer clients than groups.
- `iid`: a uniform shuffle split into near-equal parts: the baseline.
- `dirichlet`: label skew (Hsu, Qi, Brown 2019): for each class, its samples are split across
  clients in proportions drawn from Dirichlet(alpha); small alpha = few classes per client.
- `quantity_skew`: client sizes drawn from Dirichlet(alpha), contents IID.
- `gateways`: NSL-KDD gateways: each sees a share of normal traffic plus one or two attack
  families, as a network sensor at one site sees the attacks aimed at its services.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "Partition",
    "by_group",
    "cap",
    "dirichlet",
    "gateways",
    "iid",
    "label_histograms",
    "quantity_skew",
]

Partition = list[npt.NDArray[np.int64]]
Seed = int | Sequence[int]

MAX_DIRICHLET_TRIES = 1000


def _check_clients(clients: int, n: int | None = None) -> None:
    if clients < 1:
        raise ValueError(f"clients must be >= 1, got {clients}")
    if n is not None and clients > n:
        raise ValueError(f"cannot give {clients} clients a sample each from {n} samples")


def _sorted(parts: Sequence[npt.NDArray[np.integer]]) -> Partition:
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def by_group(groups: npt.ArrayLike, clients: int, seed: Seed) -> Partition:
    """One client per group value (e.g. user id): the natural non-IID partition.

    With `clients` equal to the number of groups, client i holds the i-th group in sorted order
    (the seed is unused, so client i is always the same user). With fewer clients, the groups
    are shuffled by the seed and dealt round-robin, so every sample still belongs to a client.
    """
    values = np.asarray(groups)
    unique = np.unique(values)
    _check_clients(clients)
    if clients > unique.size:
        raise ValueError(f"{clients} clients but only {unique.size} groups (users) to give them")
    order = unique if clients == unique.size else np.random.default_rng(seed).permutation(unique)
    members: list[list[int]] = [[] for _ in range(clients)]
    for i, group in enumerate(order.tolist()):
        members[i % clients].append(group)
    return _sorted([np.flatnonzero(np.isin(values, m)) for m in members])


def iid(n: int, clients: int, seed: Seed) -> Partition:
    """A seeded shuffle of range(n) split into `clients` parts whose sizes differ by at most 1."""
    _check_clients(clients, n)
    perm = np.random.default_rng(seed).permutation(n)
    return _sorted(np.array_split(perm, clients))


def dirichlet(
    labels: npt.ArrayLike, clients: int, alpha: float, seed: Seed, min_samples: int = 1
) -> Partition:
    """Label skew: each class split over clients in Dirichlet(alpha) proportions.

    Draws are repeated (from the same seeded generator, so still reproducible) until every
    client holds at least `min_samples`; a node with no data cannot take part in a round.
    """
    y = np.asarray(labels)
    _check_clients(clients, y.size)
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    if min_samples * clients > y.size:
        raise ValueError(f"{clients} clients x {min_samples} samples exceeds {y.size} samples")
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    for _ in range(MAX_DIRICHLET_TRIES):
        parts: list[list[npt.NDArray[np.int64]]] = [[] for _ in range(clients)]
        for c in classes.tolist():
            members = rng.permutation(np.flatnonzero(y == c))
            proportions = rng.dirichlet(np.full(clients, alpha))
            cuts = (np.cumsum(proportions)[:-1] * members.size).astype(np.int64)
            for client, chunk in enumerate(np.split(members, cuts)):
                parts[client].append(chunk)
        merged = [np.concatenate(p) if p else np.zeros(0, np.int64) for p in parts]
        if min(m.size for m in merged) >= min_samples:
            return _sorted(merged)
    raise ValueError(
        f"no Dirichlet({alpha}) draw in {MAX_DIRICHLET_TRIES} gave each of {clients} clients "
        f"{min_samples} samples; use a larger alpha or fewer clients"
    )


def quantity_skew(n: int, clients: int, alpha: float, seed: Seed, min_samples: int = 1) -> Partition:
    """IID contents, client sizes in Dirichlet(alpha) proportions (each at least `min_samples`)."""
    _check_clients(clients, n)
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    if min_samples * clients > n:
        raise ValueError(f"{clients} clients x {min_samples} samples exceeds {n} samples")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    spare = n - min_samples * clients
    extra = np.floor(rng.dirichlet(np.full(clients, alpha)) * spare).astype(np.int64)
    extra[: spare - int(extra.sum())] += 1  # floor leaves at most clients-1 unassigned
    sizes = extra + min_samples
    return _sorted(np.split(perm, np.cumsum(sizes)[:-1]))


def gateways(
    labels: npt.ArrayLike,
    clients: int,
    seed: Seed,
    normal_class: int = 0,
    max_families: int = 2,
) -> Partition:
    """NSL-KDD gateways: normal traffic split IID, plus one or two attack families per gateway.

    Gateway g's first family is attack class number g mod F (so with at least F gateways every
    family is seen somewhere); a seeded coin gives it a second, different family when
    `max_families` is 2. Each family's records are shared equally (seeded shuffle) by the
    gateways that see it. Records of families no gateway sees are left out.
    """
    y = np.asarray(labels)
    _check_clients(clients)
    if max_families not in (1, 2):
        raise ValueError(f"max_families must be 1 or 2, got {max_families}")
    rng = np.random.default_rng(seed)
    attacks = [int(c) for c in np.unique(y) if c != normal_class]
    families: list[set[int]] = []
    for g in range(clients):
        chosen = {attacks[g % len(attacks)]} if attacks else set()
        others = [a for a in attacks if a not in chosen]
        if max_families == 2 and others and rng.random() < 0.5:
            chosen.add(others[int(rng.integers(len(others)))])
        families.append(chosen)
    parts: list[list[npt.NDArray[np.int64]]] = [[] for _ in range(clients)]
    normal = rng.permutation(np.flatnonzero(y == normal_class))
    for g, chunk in enumerate(np.array_split(normal, clients)):
        parts[g].append(chunk)
    for attack in attacks:
        holders = [g for g in range(clients) if attack in families[g]]
        if not holders:  # fewer gateways than families: nobody sees this one
            continue
        members = rng.permutation(np.flatnonzero(y == attack))
        for g, chunk in zip(holders, np.array_split(members, len(holders))):
            parts[g].append(chunk)
    return _sorted([np.concatenate(p) for p in parts])


def cap(
    parts: Partition, max_samples: int, seed: Seed, labels: npt.ArrayLike | None = None
) -> Partition:
    """At most `max_samples` per client, drawn without replacement (seeded per client), because
    a node's memory bounds its sensor history.

    With `labels`, the draw is stratified: each class keeps its share of the client (rounded
    down, at least one record), the rest is filled at random, so a client's label skew survives
    the cap and a rare class it holds (NSL-KDD's U2R) is not silently dropped.
    """
    if max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, got {max_samples}")
    y = None if labels is None else np.asarray(labels)
    root = np.random.SeedSequence(seed)
    out: Partition = []
    for part, child in zip(parts, root.spawn(len(parts))):
        part = np.asarray(part, dtype=np.int64)
        if part.size > max_samples:
            rng = np.random.default_rng(child)
            if y is None:
                part = rng.choice(part, size=max_samples, replace=False)
            else:
                part = _stratified(part, y[part], max_samples, rng)
        out.append(np.sort(part))
    return out


def _stratified(
    part: npt.NDArray[np.int64],
    y: npt.NDArray[np.generic],
    size: int,
    rng: np.random.Generator,
) -> npt.NDArray[np.int64]:
    classes, counts = np.unique(y, return_counts=True)
    quota = np.minimum(np.maximum(1, counts * size // part.size), counts)
    while quota.sum() > size:  # only when there are more classes than places
        quota[int(np.argmax(quota))] -= 1
    chosen = [
        rng.choice(part[y == c], size=int(q), replace=False) for c, q in zip(classes, quota)
    ]
    taken = np.concatenate(chosen)
    rest = np.setdiff1d(part, taken)
    fill = rng.choice(rest, size=size - taken.size, replace=False)
    return np.concatenate([taken, fill]).astype(np.int64)


def label_histograms(parts: Partition, labels: npt.ArrayLike, n_classes: int) -> npt.NDArray[np.int64]:
    """(clients, n_classes) counts: what each client holds, for manifests and skew checks."""
    y = np.asarray(labels)
    return np.array(
        [np.bincount(y[p], minlength=n_classes)[:n_classes] for p in parts], dtype=np.int64
    ).reshape(len(parts), n_classes)
