"""`tinyfl coordinate`: run federated rounds on a fleet of nodes over MQTT.

Every option that decides what the run computes is validated before anything connects, so a typo
exits with code 2 and one line. A run folder (`--out`, default runs/<time>-<fleet>) receives
config.json, metrics.jsonl (one line per round) and checkpoint.npz (after every round);
`--resume --out DIR` continues that run where its checkpoint ends, with the checkpoint's
settings (options that would change the result must match or be left out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from tinyfl.cli import Subparsers
from tinyfl.cli.broker_options import CREDENTIALS_HELP, broker_from_args
from tinyfl.cli.fleet_options import add_fleet_options, keys_from_args, prefix_from_args
from tinyfl.coordinator.checkpoint import load_checkpoint
from tinyfl.coordinator.config import RESUME_LOCKED, EngineConfig
from tinyfl.coordinator.metrics import read_metrics
from tinyfl.coordinator.privacy import check_dp_strategy
from tinyfl.coordinator.progress import Progress, summary_table
from tinyfl.coordinator.run_folder import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    METRICS_NAME,
    RunPlan,
    coordinate,
    write_config,
)
from tinyfl.coordinator.task import load_task
from tinyfl.errors import UsageError
from tinyfl.strategy import Strategy, get_strategy, parse_strategy_spec, strategy_params
from tinyfl.transport.address import BrokerAddress
from tinyfl.wire import Topics

SUMMARY = "run federated training rounds on a fleet over MQTT"
DEFAULTS = EngineConfig()

log = logging.getLogger(__name__)


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "coordinate",
        help=SUMMARY,
        description=(
            "Select nodes, broadcast the global head, collect quantized updates, aggregate, "
            "evaluate and checkpoint, round after round. Nodes are found from their retained "
            "hello/status topics under tinyfl/<fleet>/. " + CREDENTIALS_HELP
        ),
    )
    add_fleet_options(
        parser,
        keys_help="sign every GLOBAL with the fleet key and count only HELLOs and UPDATEs that "
        "verify under their node's key. Without it frames carry a CRC and anyone on the broker "
        "may speak for a node.",
    )
    what = parser.add_argument_group("what")
    what.add_argument(
        "--model",
        metavar="DIR",
        help="the model folder the nodes run (tinyfl model build --out DIR); the run scores "
        "every round on its held-out test set (taken from the run with --resume)",
    )
    what.add_argument(
        "--task",
        help="short for --model models/NAME (e.g. har, nsl-kdd), or synthetic[:d=64,k=6,seed=0] "
        "for tests",
    )
    what.add_argument(
        "--initial-head",
        metavar="zeros|init|PATH",
        help="the head round 1 starts from: zeros (default), init (the model folder's "
        "head_init.npy, its pretraining head) or a .npy file of shape (classes, embedding + 1)",
    )
    what.add_argument(
        "--strategy",
        help="aggregation, e.g. fedavg, fedprox:mu=0.01, fedavgm:momentum=0.9, fedadam:eta=0.01, "
        "median, trimmed-mean:trim=0.1, norm-bounded (default fedavg)",
    )
    rounds = parser.add_argument_group("rounds")
    rounds.add_argument("--rounds", type=int, help=f"rounds to run (default {DEFAULTS.rounds})")
    pick = rounds.add_mutually_exclusive_group()
    pick.add_argument("--clients-per-round", type=int, metavar="K", help="nodes per round")
    pick.add_argument("--fraction", type=float, metavar="F", help="share of eligible nodes")
    rounds.add_argument(
        "--min-clients",
        type=int,
        metavar="M",
        help=f"updates needed to close a round (default {DEFAULTS.min_clients})",
    )
    rounds.add_argument(
        "--round-timeout",
        type=float,
        metavar="S",
        help=f"seconds to collect updates, extended once below quorum "
        f"(default {DEFAULTS.round_timeout:g})",
    )
    rounds.add_argument(
        "--round-interval",
        type=float,
        metavar="S",
        help="at least S seconds from one round's start to the next, for nodes that collect "
        "data while the run goes on (default: back to back)",
    )
    rounds.add_argument("--seed", type=int, help=f"run seed (default {DEFAULTS.seed})")
    rounds.add_argument(
        "--straggler-backoff",
        type=int,
        metavar="R",
        help="rounds a selected node that sent no accepted update sits out, doubling with each "
        f"miss in a row up to 16; 0 = off (default {DEFAULTS.straggler_backoff})",
    )
    train = parser.add_argument_group("local training (sent to the nodes)")
    train.add_argument("--epochs", type=int, help=f"default {DEFAULTS.epochs}")
    train.add_argument("--batch-size", type=int, help=f"default {DEFAULTS.batch_size}")
    train.add_argument("--lr", type=float, help=f"default {DEFAULTS.lr:g}")
    train.add_argument("--clip-norm", type=float, help="L2 bound on updates, 0 = off (default 0)")
    train.add_argument(
        "--secure-agg", action="store_true", default=None,
        help="secure aggregation (docs/PRIVACY.md): nodes mask their codes with pairwise masks "
        "so the coordinator learns only the survivors' sum; needs --clip-norm > 0 (the common "
        "scale) and nodes provisioned with pairwise seeds",
    )
    train.add_argument(
        "--secure-agg-threshold", type=int, metavar="T",
        help="fewest survivors for which nodes help unmask a round (default: a majority of "
        "the selected)",
    )
    train.add_argument(
        "--uplink-bits", type=int, help=f"8, 4, 2 or 32 (default {DEFAULTS.uplink_bits})"
    )
    train.add_argument(
        "--uplink-scale",
        dest="uplink_scale_mode",
        type=_scale_mode,
        metavar="row|tensor",
        help="one quantization scale per row of the update, or one for all (default row)",
    )
    train.add_argument(
        "--downlink-bits", type=int, help="global head as 32-bit floats or 8-bit codes (default 32)"
    )
    add_dp_options(parser)
    run = parser.add_argument_group("run")
    run.add_argument("--out", type=Path, help="run folder (default runs/<time>-<fleet>)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out")
    run.add_argument(
        "--wait-nodes",
        type=int,
        metavar="N",
        help="eligible nodes to wait for before round 1 (default max(M, K))",
    )
    run.add_argument(
        "--wait-timeout",
        type=float,
        metavar="S",
        help=f"seconds to wait for them (default {DEFAULTS.wait_timeout:g})",
    )
    return parser


def add_dp_options(parser: argparse.ArgumentParser) -> None:
    """--dp, --dp-epsilon | --dp-noise-multiplier, --dp-delta (also used by `tinyfl demo`)."""
    dp = parser.add_argument_group(
        "differential privacy (docs/PRIVACY.md)",
        "node-level DP: every update clipped to --clip-norm, Gaussian noise on the average "
        "(or discrete Gaussian noise from the nodes on the secure sum), epsilon(delta) accounted "
        "over the rounds and recorded in metrics.jsonl")
    dp.add_argument(
        "--dp", choices=("central", "distributed"),
        help="central: the coordinator adds the noise to the aggregate (DP-FedAvg; nodes are "
        "sampled with probability --fraction); distributed: every node adds its share of "
        "discrete Gaussian noise to its codes under secure aggregation (needs --secure-agg), "
        "so the coordinator never sees a less noisy value")
    amount = dp.add_mutually_exclusive_group()
    amount.add_argument(
        "--dp-epsilon", type=float, metavar="EPS",
        help="privacy budget: the noise multiplier is calibrated so that --rounds fit it, and a "
        "run that would exceed it is refused or stopped")
    amount.add_argument(
        "--dp-noise-multiplier", type=float, metavar="Z",
        help="noise std over the clip norm; epsilon is then only reported")
    dp.add_argument("--dp-delta", type=float, metavar="DELTA",
                    help=f"the delta epsilon is reported at (default {DEFAULTS.dp_delta:g})")


def check_dp(config: EngineConfig, strategy: Strategy) -> None:
    """What differential privacy needs before anything connects: a strategy that averages, and
    rounds within the budget (UsageError with the epsilon reached and a noise that fits)."""
    if config.privacy is not None:
        check_dp_strategy(strategy)
        config.check_privacy_budget()


def _scale_mode(text: str) -> int:
    modes = {"row": 1, "tensor": 0}
    if text not in modes:
        raise argparse.ArgumentTypeError("choose row or tensor")
    return modes[text]


_OPTION = {  # EngineConfig field -> command-line option, for messages
    "rounds": "--rounds",
    "clients_per_round": "--clients-per-round",
    "fraction": "--fraction",
    "min_clients": "--min-clients",
    "round_timeout": "--round-timeout",
    "round_interval": "--round-interval",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "lr": "--lr",
    "clip_norm": "--clip-norm",
    "uplink_bits": "--uplink-bits",
    "uplink_scale_mode": "--uplink-scale",
    "downlink_bits": "--downlink-bits",
    "seed": "--seed",
    "wait_nodes": "--wait-nodes",
    "wait_timeout": "--wait-timeout",
    "initial_head": "--initial-head",
    "straggler_backoff": "--straggler-backoff",
    "secure_agg": "--secure-agg",
    "secure_agg_threshold": "--secure-agg-threshold",
    "dp": "--dp",
    "dp_noise_multiplier": "--dp-noise-multiplier",
    "dp_epsilon": "--dp-epsilon",
    "dp_delta": "--dp-delta",
}


def plan_from_args(args: argparse.Namespace) -> RunPlan:
    """Everything checked before connecting: UsageError (exit 2) with the fix for mistakes."""
    broker = broker_from_args(args, credentials=True)
    if args.model is not None:
        if args.task is not None:
            raise UsageError("give --model DIR or --task NAME, not both")
        args.task = str(args.model)
    if args.resume:
        return _resume_plan(args, broker)
    topics = Topics(prefix_from_args(args))
    out = args.out or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{_fleet_slug(topics)}"
    if (out / CHECKPOINT_NAME).exists() or (out / CONFIG_NAME).exists():
        raise UsageError(f"{out} already holds a run: add --resume to continue it, or pick --out")
    if not args.task:
        raise UsageError("--model DIR is required (or --task NAME for models/NAME)")
    given = _given_config(args)
    config = EngineConfig(**given)
    strategy = parse_strategy_spec(args.strategy or "fedavg")
    check_dp(config, strategy)
    task = load_task(args.task)
    task.initial_head(config.initial_head)  # a bad --initial-head fails before connecting
    return RunPlan(broker, topics, task, args.task, strategy, config, out, None, keys_from_args(args))


def _fleet_slug(topics: Topics) -> str:
    return topics.prefix.replace("/", "-")


def _given_config(args: argparse.Namespace) -> dict[str, Any]:
    """The EngineConfig fields set on the command line (None = not given)."""
    names = {f.name for f in fields(EngineConfig)}
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _resume_plan(args: argparse.Namespace, broker: BrokerAddress) -> RunPlan:
    """The run in --out with its own settings; --fleet/--prefix may be left out (the run's)."""
    if args.out is None:
        raise UsageError("--resume needs --out DIR, the folder of the run to continue")
    out: Path = args.out
    config_path = out / CONFIG_NAME
    if not config_path.is_file():
        raise UsageError(f"{out} holds no run to resume (no {CONFIG_NAME})")
    try:
        saved = json.loads(config_path.read_text())
        saved_engine: dict[str, Any] = dict(saved["engine"])
        saved_strategy: dict[str, Any] = dict(saved["strategy"])
        task_spec = str(saved["task"])
        saved_prefix = str(saved["prefix"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{config_path} is not a run configuration: {exc}") from None
    topics = Topics(prefix_from_args(args) if args.fleet or args.prefix else saved_prefix)
    checkpoint = (
        load_checkpoint(out / CHECKPOINT_NAME) if (out / CHECKPOINT_NAME).exists() else None
    )
    if checkpoint is not None:
        saved_engine = dict(checkpoint.config.get("engine", saved_engine))
        saved_strategy = dict(checkpoint.config.get("strategy", saved_strategy))
    given = _given_config(args)
    conflicts = [
        f"{_OPTION[name]} {given[name]} (the run used {saved_engine.get(name)})"
        for name in RESUME_LOCKED
        if name in given and given[name] != saved_engine.get(name)
    ]
    if args.task and args.task != task_spec:
        conflicts.append(f"--task {args.task} (the run used {task_spec})")
    if topics.prefix != saved_prefix:
        conflicts.append(f"topic prefix {topics.prefix} (the run used {saved_prefix})")
    name = saved_strategy.pop("name", "fedavg")
    strategy = get_strategy(name, **saved_strategy)
    if args.strategy and strategy_params(parse_strategy_spec(args.strategy)) != strategy_params(
        strategy
    ):
        conflicts.append(f"--strategy {args.strategy} (the run used {strategy_params(strategy)})")
    if conflicts:
        raise UsageError(
            "--resume continues a run with its own settings; these differ: " + "; ".join(conflicts)
        )
    keys = keys_from_args(args)
    if saved.get("authenticated") and keys is None:
        raise UsageError(f"the run in {out} signs its frames: give --keys (the fleet's "
                         "coordinator.json) to resume it")
    merged = {**saved_engine, **given}
    config = EngineConfig(**merged)
    check_dp(config, strategy)
    task = load_task(task_spec)
    return RunPlan(broker, topics, task, task_spec, strategy, config, out, checkpoint, keys)


def run(args: argparse.Namespace) -> int:
    plan = plan_from_args(args)
    write_config(plan)
    if plan.resume_from is not None:
        log.info(
            "resuming %s after round %d of %d",
            plan.run_dir,
            plan.resume_from.round,
            plan.config.rounds,
        )
    live = sys.stdout.isatty() and not getattr(args, "quiet", False)
    progress = Progress(sys.stdout, live=live, rounds=plan.config.rounds)
    try:
        result = asyncio.run(coordinate(plan, progress))
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: what was done is on disk
        progress.clear()
        sys.stdout.write(
            summary_table(read_metrics(plan.run_dir / METRICS_NAME), plan.task.class_names)
        )
        print(f"stopped; the run continues with --resume --out {plan.run_dir}")
        raise
    sys.stdout.write(summary_table(result.records, plan.task.class_names))
    if result.stopped:
        print(f"stopped early: {result.stopped}")
    print(f"run folder: {plan.run_dir}")
    return 0
