"""The coordinator's pure parts: seeded selection, the GLOBAL seed trick, evaluation, tasks, data
partitions, simulated nodes and the terminal output."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from tinyfl.coordinator import (
    evaluate,
    global_seed,
    load_task,
    round_seed,
    round_size,
    select_nodes,
    summary_table,
    synthetic_task,
)
from tinyfl.coordinator.progress import Progress
from tinyfl.coordinator.simnode import SimNode, partition
from tinyfl.data.dataset import load_dataset
from tinyfl.data.packaged import cached
from tinyfl.data.splits import quantize, split_rows
from tinyfl.errors import UsageError
from tinyfl.fleet.partition import build_partition
from tinyfl.model.artifacts import load_artifacts
from tinyfl.model.tflite import ModelError
from tinyfl.report import plan_node_data
from tinyfl.rng import round_rng
from tinyfl.transport.memory import MemoryBroker, MemoryTransport
from tinyfl.wire import Global, Tensor, Topics, Update, decode, encode

IDS = [f"node-{i:02d}" for i in range(20)]


def test_selection_depends_on_seed_and_round_only() -> None:
    a = select_nodes(IDS, 5, seed=1, round_no=3)
    assert a == select_nodes(reversed(IDS), 5, seed=1, round_no=3)  # announcement order
    assert len(a) == 5 and len(set(a)) == 5 and list(a) == sorted(a)
    assert a != select_nodes(IDS, 5, seed=1, round_no=4)
    assert a != select_nodes(IDS, 5, seed=2, round_no=3)
    assert select_nodes(IDS, 50, seed=1, round_no=3) == tuple(IDS)
    # every node gets picked over many rounds (uniform, not stuck on a subset)
    picked = {n for r in range(1, 60) for n in select_nodes(IDS, 5, seed=1, round_no=r)}
    assert picked == set(IDS)


def test_round_size() -> None:
    assert round_size(10, 4, None) == 4
    assert round_size(3, 4, None) == 3
    assert round_size(10, None, 0.25) == 3  # ceil
    assert round_size(2, None, 0.1) == 1  # at least one
    assert round_size(10, None, 0.1, min_clients=4) == 4  # enough to reach quorum
    assert round_size(3, None, 0.1, min_clients=4) == 3
    assert round_size(0, None, 0.5) == 0
    assert round_size(7, None, None) == 7


def test_the_global_seed_cancels_the_wire_round_out_of_the_node_generator() -> None:
    """A node seeds with mix32(seed ^ fnv(id) ^ round_id * golden): with the coordinator's seed
    field, the same logical round draws the same numbers whatever round id carries it."""
    a = global_seed(7, 3, wire_round=3)
    b = global_seed(7, 3, wire_round=12)
    assert a != b
    assert round_rng(a, "node-1", 3).next() == round_rng(b, "node-1", 12).next()
    assert round_rng(a, "node-1", 3).next() != round_rng(a, "node-2", 3).next()
    assert round_seed(7, 3) != round_seed(7, 4)


def test_evaluation_matches_hand_computed_accuracy_and_f1() -> None:
    # 2 features, 3 classes; head picks class = argmax of (x0, x1, 0.5)
    head = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0.5]], np.float32)
    x = np.array([[1, 0], [0, 1], [0, 0], [1, 0], [0, 1]], np.float32)
    y = np.array([0, 1, 2, 1, 2], np.uint8)
    # predictions: 0, 1, 2, 0, 1
    ev = evaluate(head, x, y)
    assert ev.accuracy == pytest.approx(3 / 5)
    # class 0: tp1 fp1 fn0 -> 2/3; class 1: tp1 fp1 fn1 -> 1/2; class 2: tp1 fp0 fn1 -> 2/3
    assert ev.f1 == pytest.approx((2 / 3, 1 / 2, 2 / 3))
    assert ev.macro_f1 == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    assert ev.loss > 0


def test_tasks_by_name() -> None:
    task = load_task("synthetic:d=4,k=2,seed=1")
    assert (task.embed_dim, task.n_classes, task.head_shape) == (4, 2, (2, 5))
    assert task.model_hash == load_task("synthetic:d=4,k=2,seed=1").model_hash
    assert task.model_hash != load_task("synthetic:d=4,k=2,seed=2").model_hash
    for bad in ("synthetic:q=1", "synthetic:d=x"):
        with pytest.raises(UsageError):
            load_task(bad)
    for missing in ("mnist", "/nonexistent/model"):
        with pytest.raises(ModelError, match="not a model folder"):
            load_task(missing)


def test_a_model_task_scores_on_the_folders_test_set_which_the_numpy_backbone_reproduces(
        tmp_path: Path) -> None:
    task = load_task("har")
    art = load_artifacts("har")
    assert (task.embed_dim, task.n_classes, task.model_hash) == (64, 6, art.model_hash)
    assert task.test_x.shape == (2996, 64) and task.train_x is None
    # test.npz holds LiteRT's embeddings of the held-out groups' windows; the numpy backbone,
    # bit-exact with the node, computes the same from the data file (a sample of them here).
    data = load_dataset(cached("har").data)
    test = data.select(split_rows(data, art.split).test)
    rows = np.arange(0, len(test), 37)
    codes = quantize(test.x[rows], art.input_scale, art.input_zero_point).reshape(len(rows), -1)
    assert np.array_equal(art.dequantize(art.embed(codes)), task.test_x[rows])
    assert np.array_equal(test.y, task.test_y)
    # The initial head scores what model build recorded for it, and a run can start from it.
    recorded = art.metadata["head_init"]["test_accuracy"]
    head = task.initial_head("init")
    assert evaluate(head, task.test_x, task.test_y).accuracy == pytest.approx(recorded, abs=1e-9)
    assert not task.initial_head("zeros").any()
    with pytest.raises(UsageError, match="not a readable .npy"):
        task.initial_head(str(art.folder / "backbone.tflite"))
    np.save(tmp_path / "head.npy", np.zeros((6, 64), np.float32))
    with pytest.raises(UsageError, match=r"shape \(6, 65\)"):
        task.initial_head(str(tmp_path / "head.npy"))


def test_a_model_task_with_data_trains_on_exactly_the_fleets_samples() -> None:
    fetched = cached("nsl-kdd")
    task = load_task("nsl-kdd", fetched.data)
    art = load_artifacts("nsl-kdd")
    assert (task.embed_dim, task.n_classes, task.model_hash) == (64, 5, art.model_hash)
    assert task.test_x.shape == (22544, 64)  # every KDDTest+ record
    # The training rows are the embeddings of exactly the records `tinyfl data partition` puts
    # on the nodes (the backbone's source rows left out), as the node's backbone computes them.
    assert task.train_x is not None and task.train_y is not None
    fleet = build_partition(load_dataset(fetched.data), art, clients=1, scheme="iid", seed=0,
                            max_samples=10**6)
    (data,) = plan_node_data(fleet, art, capacity=10**6)

    def rows(x: np.ndarray, y: np.ndarray) -> list[bytes]:  # type: ignore[type-arg]
        return sorted(bytes([int(label)]) + r.tobytes() for r, label in zip(x, y))

    assert rows(task.train_x, task.train_y) == rows(data.x, data.y)
    assert load_task("nsl-kdd").train_x is None  # only when asked for
    with pytest.raises(UsageError, match="not the data file"):
        load_task("har", fetched.data)

def test_partitions_are_fixed_by_seed_and_skewed_by_alpha() -> None:
    task = synthetic_task(4, 4, seed=0, n_train=4000, n_test=10)
    assert task.train_x is not None and task.train_y is not None
    a = partition(task.train_x, task.train_y, 5, 100, seed=1)
    b = partition(task.train_x, task.train_y, 5, 100, seed=1)
    assert all(np.array_equal(pa[0], pb[0]) for pa, pb in zip(a, b))
    skewed = partition(task.train_x, task.train_y, 5, 100, seed=1, alpha=0.1)
    top_share = np.mean([np.bincount(y, minlength=4).max() / 100 for _, y in skewed])
    iid_share = np.mean([np.bincount(y, minlength=4).max() / 100 for _, y in a])
    assert top_share > iid_share + 0.2
    with pytest.raises(UsageError):
        partition(task.train_x, task.train_y, 1, 5000, seed=1)


def test_a_simulated_node_serves_like_the_firmware() -> None:
    task = synthetic_task(8, 3, seed=0, n_train=300, n_test=10)
    assert task.train_x is not None and task.train_y is not None
    topics = Topics("tinyfl/sim")
    node = SimNode(
        "sim-1",
        task.train_x[:50],
        task.train_y[:50],
        model_hash=task.model_hash,
        n_classes=3,
        topics=topics,
        transport=MemoryTransport(MemoryBroker()),
        uplink_bits=0x03,
    )
    head = Tensor.float32(np.zeros(task.head_shape, np.float32))

    def g(round_id: int, **kw: object) -> bytes:
        fields: dict[str, object] = {
            "round_id": round_id,
            "model_hash": task.model_hash,
            "embed_dim": 8,
            "n_classes": 3,
            "epochs": 2,
            "batch_size": 8,
            "lr": 0.2,
            "prox_mu": 0.0,
            "clip_norm": 0.0,
            "uplink_bits": 4,
            "uplink_scale_mode": 1,
            "seed": 5,
            "selected": (),
            "head": head,
        }
        fields.update(kw)
        return encode(Global(**fields))  # type: ignore[arg-type]

    frame = node.serve_global(g(2))
    assert frame is not None
    update = decode(frame)
    assert isinstance(update, Update)
    assert (update.round_id, update.n_samples) == (2, 50)
    assert update.delta.bits == 4 and update.delta.shape == task.head_shape
    assert node.serve_global(g(2)) == frame  # asked again: the same bytes, not retrained
    assert node.stats.resent == 1 and node.stats.served == [2]
    assert node.serve_global(g(1)) is None  # stale
    assert node.serve_global(g(3, selected=("other",))) is None
    assert node.serve_global(g(4, model_hash=b"\x00" * 8)) is None
    assert node.serve_global(g(5, uplink_bits=32)) is None  # not offered in its HELLO
    assert node.serve_global(b"junk") is None
    assert dict(node.stats.ignored) == {
        "stale_round": 1,
        "not_selected": 1,
        "wrong_model": 1,
        "unsupported": 1,
        "truncated": 1,
    }
    assert node.serve_global(g(6, selected=("sim-1",))) is not None
    # the same GLOBAL content gives the same update (deterministic node)
    twin = SimNode(
        "sim-1",
        task.train_x[:50],
        task.train_y[:50],
        model_hash=task.model_hash,
        n_classes=3,
        topics=topics,
        transport=MemoryTransport(MemoryBroker()),
    )
    assert twin.serve_global(g(2)) == frame
    assert node.hello().max_payload == 2048 - 4 - len(topics.global_)  # as the firmware says


def test_progress_is_silent_off_a_tty_and_live_on_one() -> None:
    record = {
        "round": 2,
        "status": "closed",
        "answered": 3,
        "selected": 4,
        "test_accuracy": 0.75,
        "train_loss": 0.5,
        "bytes_up": 1234,
        "bytes_down": 5000,
        "wall_time_s": 0.25,
        "late": 1,
        "dropped": 0,
        "rejected": 0,
        "macro_f1": 0.5,
        "f1": {"a": 0.5, "b": 0.25},
    }
    quiet = io.StringIO()
    p = Progress(quiet, live=False, rounds=5)
    p.collecting(2, 1, 4, 0.1)
    p.round_done(record)
    assert quiet.getvalue() == ""
    tty = io.StringIO()
    p = Progress(tty, live=True, rounds=5)
    p.round_done(record)
    line = tty.getvalue()
    assert "round   2/5" in line and "answered 3/4" in line and "75.0%" in line
    assert "1.2 kB" in line and line.endswith("\n")
    skipped = {"round": 3, "status": "skipped", "reason": "only 1 eligible"}
    table = summary_table([record, skipped], ["a", "b"])
    assert "1 of 2 rounds closed" in table and "final F1" not in table  # last round has none
    assert "skipped" in table
