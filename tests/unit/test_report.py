"""Run reports: the references (central, local-only, simulated federated), baselines.json, the
plots, report.html and `tinyfl report`, plus the `answered_ids` field of metrics.jsonl.

Everything runs for real: heads trained by the node's numpy SGD, federated runs through the
RoundEngine and simulated nodes on the in-memory broker, PNGs drawn by matplotlib.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from tinyfl.cli.main import main
from tinyfl.coordinator import EngineConfig, RoundEngine, load_task, read_metrics
from tinyfl.coordinator.simnode import SimNode
from tinyfl.coordinator.task import Task, evaluate
from tinyfl.data import partition
from tinyfl.errors import UsageError
from tinyfl.report import (
    Baselines,
    NodeData,
    central_head,
    compute_baselines,
    load_baselines,
    local_only,
    render_html,
    render_plots,
    save_baselines,
    simulated_federated,
    task_node_data,
    write_report,
)
from tinyfl.report.baselines import plan_node_data
from tinyfl.strategy import get_strategy
from tinyfl.transport.memory import MemoryBroker, MemoryTransport
from tinyfl.wire import Topics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Converges within 30 rounds on the skewed partition below (lr 0.5, 2 epochs): FedAvg ends
# within a point or two of the central head there.
CONFIG = EngineConfig(rounds=30, epochs=2, batch_size=16, lr=0.5, seed=0)


@pytest.fixture(scope="module")
def task() -> Task:
    return load_task("synthetic:d=8,k=3")


@pytest.fixture(scope="module")
def nodes(task: Task) -> list[NodeData]:
    """Six nodes with Dirichlet(0.3) label skew: most hold one or two classes."""
    assert task.train_y is not None
    parts = partition.dirichlet(task.train_y[:3000], 6, 0.3, 1)
    return task_node_data(task, parts, capacity=150)


@pytest.fixture(scope="module")
def baselines(task: Task, nodes: list[NodeData]) -> Baselines:
    return compute_baselines(task, nodes, CONFIG, bits=(32, 8))


def test_node_data_keeps_the_newest_samples_like_the_node_cache(task: Task) -> None:
    assert task.train_x is not None and task.train_y is not None
    parts = [np.arange(0, 300), np.arange(300, 350)]
    first, second = task_node_data(task, parts, capacity=100)
    assert (first.node_id, second.node_id) == ("node01", "node02")
    np.testing.assert_array_equal(first.x, task.train_x[200:300])  # the last 100 of 300
    np.testing.assert_array_equal(first.y, task.train_y[200:300])
    assert second.n_samples == 50
    with pytest.raises(UsageError):
        task_node_data(task, parts, node_ids=["a"])


def test_central_beats_local_only_on_label_skew(
    task: Task, nodes: list[NodeData], baselines: Baselines
) -> None:
    skewed = [np.bincount(n.y, minlength=3).max() / n.n_samples for n in nodes]
    assert np.mean(skewed) > 0.7  # the partition is really skewed
    assert baselines.central.accuracy >= baselines.local_only.mean_accuracy + 0.2
    assert baselines.central.samples == sum(n.n_samples for n in nodes)
    assert baselines.central.epochs == max(CONFIG.rounds * CONFIG.epochs, 30)
    assert (baselines.central.lr, baselines.central.batch_size) == (0.05, 32)  # model build's fit
    assert set(baselines.local_only.per_node) == {n.node_id for n in nodes}
    # a node that saw one class mostly predicts it: no better than the class share
    assert min(baselines.local_only.per_node.values()) < 0.5
    # the same inputs give the same references (seeded shuffles)
    assert central_head(task, nodes, CONFIG) == baselines.central
    assert local_only(task, nodes, CONFIG) == baselines.local_only


def test_simulated_fedavg_gets_close_to_central_and_8_bit_costs_fewer_bytes(
    baselines: Baselines,
) -> None:
    f32 = baselines.curve("fedavg float32")
    f8 = baselines.curve("fedavg 8-bit")
    assert f32 is not None and f8 is not None
    assert len(f32.accuracy) == len(f8.accuracy) == CONFIG.rounds
    assert f32.final_accuracy > baselines.local_only.mean_accuracy + 0.2
    assert abs(f32.final_accuracy - baselines.central.accuracy) < 0.03
    assert abs(f8.final_accuracy - f32.final_accuracy) < 0.02
    assert all(b8 < b32 for b8, b32 in zip(f8.bytes_up, f32.bytes_up))
    assert f8.bytes_down == f32.bytes_down  # the global head travels as float32 both times


def test_simulated_fedprox_sends_mu(task: Task, nodes: list[NodeData]) -> None:
    curve = simulated_federated(task, nodes, CONFIG, bits=4, strategy="fedprox:mu=0.1", rounds=2)
    assert curve.label == "fedprox 4-bit"
    assert curve.strategy == {"name": "fedprox", "mu": 0.1}
    assert len(curve.accuracy) == 2


def test_baselines_json_round_trip(tmp_path: Path, baselines: Baselines) -> None:
    path = tmp_path / "baselines.json"
    save_baselines(path, baselines)
    loaded = load_baselines(path)
    assert loaded == baselines
    assert json.loads(path.read_text())["version"] == 1
    path.write_text('{"version": 1, "task": "x"}')
    with pytest.raises(UsageError, match="not a baselines file"):
        load_baselines(path)


def fake_records(n: int) -> list[dict[str, object]]:
    return [
        {
            "round": i,
            "status": "skipped" if i == 2 else "closed",
            "reason": "only 1 eligible node(s) online, quorum is 2" if i == 2 else None,
            "selected": 3,
            "answered": 2,
            "answered_ids": ["node01", "node03"] if i % 2 else ["node02", "node03"],
            "answered_samples": ({"node01": 10 * i, "node03": 40} if i % 2
                                 else {"node02": 10 * i, "node03": 40}),
            "online": 3,
            "test_accuracy": 0.3 + 0.1 * i,
            "macro_f1": 0.2 + 0.1 * i,
            "bytes_up": 600,
            "bytes_down": 1500,
        }
        for i in range(1, n + 1)
    ]


def test_plots_are_deterministic_pngs(baselines: Baselines) -> None:
    records = fake_records(5)
    images = render_plots(records, baselines)
    assert set(images) == {"accuracy.png", "bytes.png", "participation.png", "samples.png"}
    for png in images.values():
        assert png.startswith(PNG_SIGNATURE) and len(png) > 1000
        assert b"matplotlib" not in png.lower()  # no Software metadata
    assert render_plots(records, baselines) == images
    # no rounds, no baselines, or records without answered_ids still draw
    for png in render_plots([], None).values():
        assert png.startswith(PNG_SIGNATURE)
    old = [{k: v for k, v in r.items() if k not in ("answered_ids", "answered_samples")}
           for r in records]
    assert render_plots(old, None)["participation.png"].startswith(PNG_SIGNATURE)
    assert render_plots(old, None)["samples.png"] != images["samples.png"]  # the no-data note


def test_report_html_embeds_images_and_settings_and_escapes(baselines: Baselines) -> None:
    records = fake_records(3)
    hostile = "tinyfl/<script>alert('x')</script>"
    config = {"task": "synthetic:d=8,k=3", "prefix": hostile, "engine": {"lr": 0.25}}
    images = render_plots(records, baselines)
    page = render_html(
        title=f"TinyFL run on {hostile}",
        config=config,
        records=records,
        baselines=baselines,
        images=images,
        model_file="model.tflite",
    )
    assert "<script>" not in page and "&lt;script&gt;" in page
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert [base64.b64decode(e) for e in embedded] == list(images.values())
    assert "engine.lr" in page and "0.25" in page
    assert 'href="model.tflite"' in page
    assert "http://" not in page and "https://" not in page  # nothing external
    assert "60.00%" in page  # the final test accuracy
    gap = (0.6 - baselines.central.accuracy) * 100
    assert f"{gap:+.2f} points" in page
    assert "quorum is 2" in page  # the skipped round's reason


def test_write_report_on_a_real_engine_run(
    tmp_path: Path, task: Task, nodes: list[NodeData], baselines: Baselines
) -> None:
    run_dir = tmp_path / "run"
    config = EngineConfig(rounds=3, epochs=1, lr=0.5, clients_per_round=4, seed=2)
    curve = simulated_federated(task, nodes, config, run_dir=run_dir)
    records = read_metrics(run_dir / "metrics.jsonl")
    assert [r["test_accuracy"] for r in records] == list(curve.accuracy)
    ids = {n.node_id for n in nodes}
    for r in records:  # the new metrics field: who was averaged in
        assert r["answered_ids"] == sorted(r["answered_ids"])
        assert len(r["answered_ids"]) == r["answered"] == 4 and set(r["answered_ids"]) <= ids
    with pytest.raises(UsageError, match="already holds a run"):
        simulated_federated(task, nodes, config, run_dir=run_dir)

    (run_dir / "model.tflite").write_bytes(b"TFL3")
    html_path = write_report(run_dir, baselines)
    assert html_path == run_dir / "report.html"
    names = {p.name for p in run_dir.iterdir()}
    assert {"accuracy.png", "bytes.png", "participation.png", "samples.png",
            "baselines.json"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    page = html_path.read_text()
    assert "central head" in page and "tinyfl/simulated" in page and "model.tflite" in page
    assert load_baselines(run_dir / "baselines.json") == baselines
    # round 0: the zero head's score, recorded by the run folder's config.json
    start = json.loads((run_dir / "config.json").read_text())["initial"]
    assert start["head"] == "zeros"
    assert start["test_accuracy"] == evaluate(task.initial_head(), task.test_x,
                                              task.test_y).accuracy
    assert f"starting head (zeros), round 0</td><td>{start['test_accuracy']:.2%}" in page

    # the CLI redraws the same page from the folder (baselines.json included)
    assert main(["report", "--run", str(run_dir)]) == 0
    assert html_path.read_text() == page


def test_report_cli_refuses_a_folder_without_a_run(tmp_path: Path) -> None:
    assert main(["report", "--run", str(tmp_path)]) == 2
    with pytest.raises(UsageError, match="no metrics.jsonl"):
        write_report(tmp_path)


def test_answered_ids_of_a_skipped_round_are_the_accepted_updates(task: Task) -> None:
    """Two of three nodes answer, the quorum is three: the round is skipped after the deadline
    and its extension, and answered_ids names the two whose updates were accepted."""

    async def scenario() -> list[dict[str, object]]:
        broker = MemoryBroker()
        topics = Topics("tinyfl/skip")
        assert task.train_x is not None and task.train_y is not None
        sims = [
            SimNode(
                f"n{i}",
                task.train_x[i * 20 : (i + 1) * 20],
                task.train_y[i * 20 : (i + 1) * 20],
                model_hash=task.model_hash,
                n_classes=task.n_classes,
                topics=topics,
                transport=MemoryTransport(broker),
                answer_delay=30.0 if i == 1 else 0.0,
            )
            for i in range(3)
        ]
        await asyncio.gather(*(s.start() for s in sims))
        transport = MemoryTransport(broker)
        await transport.connect(client_id="coordinator")
        config = EngineConfig(rounds=1, min_clients=3, round_timeout=0.2, wait_timeout=2.0)
        engine = RoundEngine(
            transport, topics, task, get_strategy("fedavg"), config, round_id_clock=lambda: 0.0
        )
        try:
            result = await engine.run()
        finally:
            await transport.close()
            await asyncio.gather(*(s.stop() for s in sims))
        return result.records

    (record,) = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert record["status"] == "skipped"
    assert record["answered"] == 2 and record["answered_ids"] == ["n0", "n2"]


def test_node_data_is_the_backbone_of_the_blobs() -> None:
    """What the emulated nodes train on: their blobs' windows through the int8 backbone."""
    from tinyfl.data.dataset import load_dataset
    from tinyfl.data.packaged import cached
    from tinyfl.fleet.partition import build_partition
    from tinyfl.model.artifacts import load_artifacts

    artifacts = load_artifacts("har")
    plan = build_partition(load_dataset(cached("har").data), artifacts, 4, "by-group", 0, 512)
    data = plan_node_data(plan, artifacts)
    assert [d.node_id for d in data] == [n.node_id for n in plan.nodes]
    for node, d in zip(plan.nodes, data):
        blob = node.blob
        assert blob.n_samples == d.n_samples <= 512 and d.x.shape == (d.n_samples, 64)
        np.testing.assert_array_equal(d.x, artifacts.dequantize(artifacts.embed(blob.samples)))
        np.testing.assert_array_equal(d.y, blob.labels)
    # a node with a smaller cache keeps its newest windows
    small = plan_node_data(plan, artifacts, capacity=10)[0]
    np.testing.assert_array_equal(small.y, plan.nodes[0].blob.labels[-10:])
    np.testing.assert_array_equal(small.x, data[0].x[-10:])


def test_a_private_run_shows_epsilon_in_the_report_and_the_plot() -> None:
    plain = fake_records(4)
    private = [{**r, "epsilon": 0.5 * r["round"], "dp_delta": 1e-5,  # type: ignore[operator]
                "dp_rounds": r["round"]} for r in plain]
    page = render_html(title="dp", config=None, records=private, baselines=None, images={})
    assert "<th>epsilon</th>" in page and "(2.000, 1e-05)-DP after 4 charged round(s)" in page
    assert "epsilon" not in render_html(title="x", config=None, records=plain, baselines=None,
                                        images={})
    with_eps = render_plots(private, None)["accuracy.png"]
    assert with_eps.startswith(PNG_SIGNATURE)
    assert with_eps != render_plots(plain, None)["accuracy.png"]  # the epsilon curve is drawn
