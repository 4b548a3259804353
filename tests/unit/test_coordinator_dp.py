"""Central DP in the round engine, on the in-memory broker with simulated nodes: epsilon per round
in the records and metrics.jsonl, Poisson selection, noise that is really added, re-clipping of
oversized updates, a resumed run bit-identical to an uninterrupted one, the budget refused up
front and enforced round by round, and the options' checks."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinyfl.cli.coordinate import plan_from_args, write_config
from tinyfl.cli.main import build_parser, main
from tinyfl.coordinator import (
    CHECKPOINT_NAME,
    METRICS_NAME,
    EngineConfig,
    RoundEngine,
    load_checkpoint,
    read_metrics,
    summary_table,
    synthetic_task,
)
from tinyfl.coordinator.attacks import scale
from tinyfl.coordinator.engine import RunResult
from tinyfl.coordinator.privacy import NOISE_KEY_NAME
from tinyfl.coordinator.progress import round_line
from tinyfl.coordinator.simnode import make_node_id, start_fleet
from tinyfl.errors import UsageError
from tinyfl.provision.keys import new_fleet
from tinyfl.strategy import get_strategy
from tinyfl.strategy.dp import epsilon_after
from tinyfl.transport.memory import MemoryBroker, MemoryTransport
from tinyfl.wire import Topics

TASK = synthetic_task(8, 3, seed=2, n_train=800, n_test=200)
TOPICS = Topics("tinyfl/dp")
NODES = 12
KEY = bytes(range(32))
CONFIG = EngineConfig(
    rounds=4, fraction=0.5, clip_norm=0.5, dp="central", dp_epsilon=6.0, epochs=1, lr=0.3,
    batch_size=8, seed=5, wait_nodes=NODES, wait_timeout=5.0, round_timeout=5.0,
)


# --secure-agg --dp distributed: the nodes add the noise; pair seeds from a fixed dealer secret
SECRETS = replace(new_fleet("dp", [make_node_id(i) for i in range(NODES)]),
                  dealer_secret=bytes(range(1, 33)))
DISTRIBUTED = EngineConfig(**{**CONFIG.to_dict(), "dp": "distributed", "secure_agg": True,
                              "min_clients": 2, "dp_noise_multiplier": None})


async def _run(config: EngineConfig, run_dir: Path | None = None, *, key: bytes | None = KEY,
               resume: bool = False, strategy: str = "fedavgm", **node_options: Any) -> RunResult:
    broker = MemoryBroker()
    keys = SECRETS.keyring() if config.secure_agg else None
    await start_fleet(TASK, NODES, topics=TOPICS, make_transport=lambda: MemoryTransport(broker),
                      samples=40, seed=3, keys=keys,
                      pair_seeds=SECRETS.seeds_of if config.secure_agg else None, **node_options)
    transport = MemoryTransport(broker)
    await transport.connect(client_id="coordinator")
    ckpt = load_checkpoint(run_dir / CHECKPOINT_NAME) if resume and run_dir else None
    engine = RoundEngine(transport, TOPICS, TASK, get_strategy(strategy), config,
                         run_dir=run_dir, resume_from=ckpt, round_id_clock=lambda: 0.0,
                         dp_noise_key=key, keys=keys)
    try:
        return await engine.run()
    finally:
        await transport.close()


def run(config: EngineConfig, run_dir: Path | None = None, **kw: Any) -> RunResult:
    return asyncio.run(asyncio.wait_for(_run(config, run_dir, **kw), 60))


def test_a_private_run_records_epsilon_per_round_within_its_budget(tmp_path: Path) -> None:
    result = run(CONFIG, tmp_path)
    records = read_metrics(tmp_path / METRICS_NAME)
    assert [r["round"] for r in records] == [1, 2, 3, 4] and result.stopped is None
    z = CONFIG.dp_noise_multiplier
    assert z is not None and z > 0
    for k, r in enumerate(records, 1):
        assert r["epsilon"] == pytest.approx(epsilon_after(k, z, 0.5, 1e-5))
        assert r["dp_delta"] == 1e-5 and r["dp_rounds"] == k
    eps = [r["epsilon"] for r in records]
    assert eps == sorted(eps) and eps[-1] <= 6.0
    closed = [r for r in records if r["status"] == "closed"]
    assert closed, records
    for r in closed:  # fixed denominator m = q * 12 nodes
        assert r["dp_noise_std"] == pytest.approx(z * 0.5 / (0.5 * NODES))
    assert len({r["selected"] for r in records}) > 1 or records[0]["selected"] < NODES
    assert "epsilon" in summary_table(records, TASK.class_names)
    assert f"eps {eps[-1]:.3g}" in round_line(records[-1], 4)


def test_the_noise_is_added_and_comes_from_the_key(tmp_path: Path) -> None:
    """Same seed, same nodes, same selection: only the noise key differs, so only the noise can
    tell the heads apart; and with a negligible noise multiplier the head is the noiseless one."""
    one = run(CONFIG, key=KEY)
    again = run(CONFIG, key=KEY)
    other = run(CONFIG, key=b"\x01" * 32)
    assert np.array_equal(one.head, again.head)
    assert [r["answered_ids"] for r in one.records] == [r["answered_ids"] for r in other.records]
    quiet_config = replace(CONFIG, dp_epsilon=None, dp_noise_multiplier=1e-9)
    quiet = run(quiet_config, key=KEY)
    quiet_other = run(quiet_config, key=b"\x01" * 32)
    assert np.allclose(quiet.head, quiet_other.head, atol=1e-6)
    gap = float(np.linalg.norm(one.head - other.head))
    assert gap > 0.05, gap  # fails if no noise were added


def test_the_coordinator_clips_updates_that_nodes_did_not(tmp_path: Path) -> None:
    result = run(CONFIG, tamper=scale(100.0))  # every node sends 100x its clipped delta
    closed = [r for r in result.records if r["status"] == "closed"]
    assert closed and all(r["dp_clipped"] == r["answered"] for r in closed)
    honest = run(CONFIG)
    assert all(r.get("dp_clipped", 0) == 0 for r in honest.records)


def test_a_resumed_distributed_run_is_bit_identical(tmp_path: Path) -> None:
    """The nodes' noise is a function of their keys and the round id: a run resumed after 2
    rounds ends bit for bit where an uninterrupted one ends, epsilon included."""
    first = run(replace(DISTRIBUTED, rounds=2), tmp_path / "resumed", key=None)
    assert [r["dp_rounds"] for r in first.records] == [1, 2]
    assert not (tmp_path / "resumed" / NOISE_KEY_NAME).exists()  # no noise on the coordinator
    resumed = run(DISTRIBUTED, tmp_path / "resumed", resume=True, key=None)
    straight = run(DISTRIBUTED, tmp_path / "straight", key=None)
    assert np.array_equal(resumed.head, straight.head)
    records = read_metrics(tmp_path / "resumed" / METRICS_NAME)
    expected = read_metrics(tmp_path / "straight" / METRICS_NAME)
    assert [r["epsilon"] for r in records] == [r["epsilon"] for r in expected]
    assert [r.get("dp_node_var") for r in records] == [r.get("dp_node_var") for r in expected]
    assert any("dp_node_var" in r for r in records)
    assert "epsilon" in summary_table(records, TASK.class_names)  # the live table shows it


def test_a_distributed_run_stops_before_a_round_over_the_budget() -> None:
    config = replace(EngineConfig(**{**DISTRIBUTED.to_dict(), "dp_noise_multiplier": None,
                                     "rounds": 2}), rounds=5)
    assert config.privacy is not None and config.privacy.epsilon(2) <= 6.0
    result = run(config)
    assert [r["round"] for r in result.records] == [1, 2]
    assert result.stopped is not None and "privacy budget: round 3" in result.stopped


def test_a_resumed_private_run_is_bit_identical(tmp_path: Path) -> None:
    """The first session creates the run's noise key; the resumed one reads it, continues the
    charged rounds from the checkpoint and ends where an uninterrupted run with that key ends."""
    run_dir = tmp_path / "resumed"
    first = run(replace(CONFIG, rounds=2), run_dir, key=None)
    assert [r["dp_rounds"] for r in first.records] == [1, 2]
    assert (run_dir / NOISE_KEY_NAME).stat().st_mode & 0o777 == 0o600  # a secret
    ckpt = load_checkpoint(run_dir / CHECKPOINT_NAME)
    assert ckpt.privacy["charged"] == 2 and ckpt.privacy["expected_clients"] == 6.0
    resumed = run(CONFIG, run_dir, key=None, resume=True)
    key = (run_dir / NOISE_KEY_NAME).read_bytes()
    straight = run(CONFIG, tmp_path / "straight", key=key)
    assert np.array_equal(resumed.head, straight.head)
    records = read_metrics(run_dir / METRICS_NAME)
    expected = read_metrics(tmp_path / "straight" / METRICS_NAME)
    assert [r["epsilon"] for r in records] == [r["epsilon"] for r in expected]
    assert [r["test_accuracy"] for r in records] == [r["test_accuracy"] for r in expected]


def test_the_engine_stops_before_a_round_over_the_budget() -> None:
    """Noise calibrated for 2 rounds, 5 asked for (what a resumed run with more --rounds would
    do if nothing refused it up front): 2 rounds run, then the run stops, saying why."""
    config = replace(EngineConfig(**{**CONFIG.to_dict(), "dp_noise_multiplier": None,
                                     "rounds": 2}), rounds=5)
    result = run(config)
    assert [r["round"] for r in result.records] == [1, 2]
    assert result.stopped is not None and "privacy budget: round 3" in result.stopped
    assert all(r["epsilon"] <= 6.0 for r in result.records)


def test_a_run_over_the_budget_is_refused_up_front(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    base = ["coordinate", "--broker", "mqtt://127.0.0.1:9", "--fleet", "lab", "--task",
            "synthetic:d=4,k=2", "--clip-norm", "1", "--fraction", "0.2", "--dp", "central"]
    out = tmp_path / "run"
    plan = plan_from_args(build_parser().parse_args(
        [*base, "--dp-epsilon", "2", "--rounds", "10", "--out", str(out)]))
    assert plan.config.dp_noise_multiplier is not None
    write_config(plan)
    resume = ["coordinate", "--broker", "mqtt://127.0.0.1:9", "--out", str(out), "--resume"]
    same = plan_from_args(build_parser().parse_args([*resume, "--rounds", "10"]))
    assert same.config.dp_noise_multiplier == plan.config.dp_noise_multiplier  # from config.json
    saved = json.loads((out / "config.json").read_text())["engine"]
    assert saved["dp"] == "central" and saved["dp_epsilon"] == 2.0
    with pytest.raises(UsageError) as info:
        plan_from_args(build_parser().parse_args([*resume, "--rounds", "40"]))
    message = str(info.value)
    assert "40 rounds" in message and "reach epsilon" in message and "over the budget" in message
    assert "noise multiplier" in message and "would fit 40 rounds" in message
    assert main([*resume, "--rounds", "40"]) == 2
    assert "over the budget --dp-epsilon 2" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--dp", "central", "--dp-epsilon", "1"], "--dp central needs --clip-norm > 0"),
        (["--dp", "central", "--clip-norm", "1"], "needs --dp-epsilon"),
        (["--dp", "central", "--clip-norm", "1", "--clients-per-round", "3", "--dp-epsilon",
          "1"], "use --fraction"),
        (["--dp", "distributed", "--clip-norm", "1", "--dp-epsilon", "1"],
         "add --secure-agg"),
        (["--dp", "central", "--secure-agg", "--min-clients", "2", "--clip-norm", "1",
          "--dp-epsilon", "1"], "not both"),
        (["--dp", "distributed", "--secure-agg", "--min-clients", "2", "--clip-norm", "1",
          "--dp-epsilon", "1", "--strategy", "median"], "combine it with fedavg"),
        (["--dp-epsilon", "1"], "need --dp central"),
        (["--dp-delta", "1e-6"], "need --dp central"),
        (["--dp", "central", "--clip-norm", "1", "--dp-epsilon", "1", "--strategy", "median"],
         "combine it with fedavg"),
        (["--dp", "central", "--clip-norm", "1", "--dp-noise-multiplier", "1", "--dp-delta",
          "2"], "--dp-delta must be in (0, 1)"),
    ],
)
def test_dp_options_are_checked_before_connecting(
    extra: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["coordinate", "--broker", "mqtt://127.0.0.1:9", "--fleet", "lab", "--task",
            "synthetic:d=4,k=2"]
    assert main([*base, *extra]) == 2
    assert fragment in capsys.readouterr().err


def test_epsilon_and_noise_multiplier_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["coordinate", "--dp", "central", "--dp-epsilon", "1", "--dp-noise-multiplier", "1"])
    assert info.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_demo_takes_the_dp_options_and_checks_them_before_the_fleet_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tinyfl.cli.demo import _dp_fields, settings_from_args

    base = ["demo", "--out", str(tmp_path / "demo"), "--rounds", "5"]
    args = build_parser().parse_args([*base, "--dp", "central", "--clip-norm", "0.2",
                                      "--fraction", "0.5", "--dp-epsilon", "2"])
    config = EngineConfig(rounds=5, **_dp_fields(settings_from_args(args)))
    assert config.privacy is not None and config.privacy.epsilon(5) <= 2.0
    assert main([*base, "--dp", "distributed", "--clip-norm", "0.2", "--dp-epsilon", "2"]) == 2
    assert "add --secure-agg" in capsys.readouterr().err
    assert main([*base, "--dp", "central", "--dp-epsilon", "2"]) == 2
    assert "--clip-norm > 0" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()  # refused before anything was written
