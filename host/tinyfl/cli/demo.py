"""`tinyfl demo`: the whole story in one command, on this machine.

A private mosquitto on a free loopback port, an emulated fleet (8 QEMU Cortex-M4 boards by
default) holding the fleet's raw sensor windows (the HAR model and data unless --model and --data
name yours), the coordinator running federated rounds over MQTT (each board embeds its windows
with the int8 backbone and trains the head), then
the references computed by the same code path (centrally trained head, local-only heads, float32
FedAvg with simulated nodes), the deployable model exported, and a report:

    runs/<id>/metrics.jsonl, config.json, checkpoint.npz   the federated run
    runs/<id>/baselines.json                               the references
    runs/<id>/model.tflite, model.h                        backbone + trained head + softmax
    runs/<id>/report.html, *.png                           the report
    runs/<id>/data/, nodes/, broker/                       node data blobs and logs

Ctrl-C stops the nodes and the broker; the rounds done so far stay on disk.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tinyfl.aio import cancel_and_wait
from tinyfl.cli import Subparsers
from tinyfl.cli.coordinate import add_dp_options, check_dp
from tinyfl.cli.data import resolve_model_data
from tinyfl.coordinator.config import EngineConfig
from tinyfl.coordinator.engine import RunResult
from tinyfl.coordinator.export_run import DEFAULT_SAMPLES, export_run
from tinyfl.coordinator.progress import Progress, summary_table
from tinyfl.coordinator.run_folder import CONFIG_NAME, RunPlan, coordinate, write_config
from tinyfl.coordinator.task import Task, load_task
from tinyfl.data import DEFAULT_MODEL
from tinyfl.errors import UsageError
from tinyfl.fleet.nodes import Emulator
from tinyfl.fleet.pool import Fleet, FleetConfig, install_stop_signals
from tinyfl.strategy import parse_strategy_spec
from tinyfl.wire import Topics, default_prefix

if TYPE_CHECKING:  # tinyfl.report loads matplotlib: only when the demo gets that far
    from tinyfl.report import Baselines

SUMMARY = "train a head across an emulated fleet end to end and write a report (HAR by default)"
RUNS_ROOT = Path("runs")
FLEET_NAME = "demo"
# Local training of the demo: 2 epochs at lr 0.05 per round. On the HAR by-user partition this
# reaches the central head within about a point in 20 rounds (bench/federated.md); the engine's
# generic defaults (1 epoch, lr 0.1) oscillate about a point lower.
DEMO_EPOCHS = 2
DEMO_LR = 0.05
# --stream: HAR's 50 Hz sped up 40 times, so 512 windows of 128 readings play in 33 s, while
# rounds 3 s apart (20 by default) watch the caches fill
STREAM_HZ = 2000
STREAM_INTERVAL = 3.0
T = TypeVar("T")


@dataclass(frozen=True)
class DemoSettings:
    nodes: int
    emulator: Emulator
    rounds: int
    uplink_bits: int
    partition: str | None
    strategy: str
    epochs: int
    batch_size: int
    lr: float
    seed: int
    run_dir: Path
    hello_timeout: float
    model: str
    data: Path
    initial_head: str
    insecure: bool
    secure_agg: bool = False
    dp: str | None = None
    dp_epsilon: float | None = None
    dp_noise_multiplier: float | None = None
    dp_delta: float | None = None
    clip_norm: float | None = None
    fraction: float | None = None
    sensor_replay: int = 0
    round_interval: float = 0.0


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo", help=SUMMARY, description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = EngineConfig()
    parser.add_argument("--nodes", type=int, default=8, metavar="N",
                        help="emulated nodes (default: %(default)s)")
    parser.add_argument("--emulator", choices=[e.value for e in Emulator], default="qemu",
                        help="QEMU Cortex-M4 boards, native processes, or the esp32dev main on the "
                             "Arduino test double (needs --stream; default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=20, help="default: %(default)s")
    parser.add_argument("--uplink-bits", type=int, default=8, choices=(32, 8, 4, 2),
                        help="bits per update value on the uplink (default: %(default)s)")
    parser.add_argument("--model", metavar="DIR",
                        help="model folder (default: models/har with the packaged HAR data)")
    parser.add_argument("--data", type=Path, metavar="FILE.npz",
                        help="the dataset --model was built from")
    parser.add_argument("--partition", metavar="SCHEME",
                        help="by-group, iid, dirichlet:ALPHA, quantity:ALPHA, gateways or auto "
                        "(default: auto, by-group when the data has at least as many fleet "
                        "groups as nodes, else iid; the demo says which)")
    parser.add_argument("--initial-head", default="zeros", metavar="zeros|init|PATH",
                        help="the head round 1 starts from (default: %(default)s; init: the "
                        "model folder's pretraining head)")
    parser.add_argument("--strategy", default="fedavg",
                        help="e.g. fedavg, fedprox:mu=0.01 (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=DEMO_EPOCHS,
                        help="local epochs per round (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help="default: %(default)s")
    parser.add_argument("--lr", type=float, default=DEMO_LR, help="default: %(default)s")
    parser.add_argument("--seed", type=int, default=0, help="partition and run seed")
    parser.add_argument("--secure-agg", action="store_true",
                        help="secure aggregation: the coordinator sees only the sum of the "
                        "updates (needs --clip-norm > 0; docs/PRIVACY.md)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="run folder (default: runs/<time>-demo)")
    parser.add_argument("--insecure", action="store_true",
                        help="an open private broker instead of the provisioned one (an account "
                             "and ACL per node, TLS for the coordinator)")
    parser.add_argument("--clip-norm", type=float, metavar="C",
                        help="L2 bound on every update, 0 = off (default 0; --dp and "
                        "--secure-agg need it)")
    parser.add_argument("--fraction", type=float, metavar="Q",
                        help="share of the nodes each round trains (with --dp: the probability "
                        "that a round samples a node; default: every node)")
    add_dp_options(parser)
    parser.add_argument("--hello-timeout", type=float, default=120.0, metavar="SECONDS",
                        help="how long the fleet may take to boot (default: %(default)s)")
    parser.add_argument("--stream", action="store_true",
                        help=f"nodes on a live sensor: --sensor-replay {STREAM_HZ} and "
                        f"--round-interval {STREAM_INTERVAL:g} unless given; accuracy rises "
                        "as the data arrives (samples.png in the report)")
    parser.add_argument("--sensor-replay", type=int, default=0, metavar="HZ",
                        help="nodes play their data as a live sensor, HZ readings per second, "
                        "so their caches fill while the rounds run (default: loaded at boot)")
    parser.add_argument("--round-interval", type=float, default=None, metavar="S",
                        help="at least S seconds from one round's start to the next (default: "
                        "back to back)")
    return parser


def settings_from_args(args: argparse.Namespace) -> DemoSettings:
    if not 1 <= args.nodes <= 1000:
        raise UsageError(f"--nodes must be 1..1000, got {args.nodes}")
    if args.rounds < 1:
        raise UsageError(f"--rounds must be >= 1, got {args.rounds}")
    run_dir = args.out or RUNS_ROOT / f"{time.strftime('%Y%m%d-%H%M%S')}-demo"
    if (run_dir / CONFIG_NAME).exists() or (run_dir / "fleet.json").exists():
        raise UsageError(f"{run_dir} already holds a run; pick another --out")
    model, data = resolve_model_data(args.model, None if args.model else DEFAULT_MODEL,
                                     args.data)
    return DemoSettings(
        nodes=args.nodes, emulator=Emulator(args.emulator), rounds=args.rounds,
        uplink_bits=args.uplink_bits, partition=args.partition, strategy=args.strategy,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        run_dir=run_dir, hello_timeout=args.hello_timeout, model=model, data=data,
        initial_head=args.initial_head, insecure=args.insecure,
        secure_agg=args.secure_agg,
        dp=args.dp, dp_epsilon=args.dp_epsilon, dp_noise_multiplier=args.dp_noise_multiplier,
        dp_delta=args.dp_delta, clip_norm=args.clip_norm, fraction=args.fraction,
        sensor_replay=args.sensor_replay or (STREAM_HZ if args.stream else 0),
        round_interval=(args.round_interval if args.round_interval is not None
                        else STREAM_INTERVAL if args.stream else 0.0),
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    engine_config = EngineConfig(
        rounds=settings.rounds, epochs=settings.epochs, batch_size=settings.batch_size,
        lr=settings.lr, uplink_bits=settings.uplink_bits, seed=settings.seed,
        # a Poisson sample (--dp) may be small: any answer closes a private round; the sum of
        # one update is that update, so secure aggregation needs two
        wait_nodes=settings.nodes,
        min_clients=(2 if settings.secure_agg else 1 if settings.dp
                     else max(1, settings.nodes // 2)),
        initial_head=settings.initial_head, secure_agg=settings.secure_agg,
        round_interval=settings.round_interval,
        **_dp_fields(settings),
    )  # checks the training options before anything starts
    if settings.secure_agg and settings.insecure:
        raise UsageError("--secure-agg needs the provisioned fleet (its pairwise seeds): drop "
                         "--insecure")
    strategy = parse_strategy_spec(settings.strategy)
    check_dp(engine_config, strategy)
    partition = settings.partition or "auto"  # the fleet says which it picked
    say(f"demo: {settings.nodes} {settings.emulator.value} nodes, model {settings.model}, "
        f"{settings.rounds} rounds, {settings.uplink_bits}-bit uplink, {partition}, run folder "
        f"{settings.run_dir}")
    say(f"loading the test set and the int8 backbone ({settings.model}) ...")
    task = load_task(settings.model)
    task.initial_head(settings.initial_head)  # a bad --initial-head fails before the fleet starts
    fleet = Fleet(FleetConfig(
        nodes=settings.nodes, emulator=settings.emulator, model=settings.model,
        data=settings.data, run_dir=settings.run_dir, fleet=FLEET_NAME, partition=partition,
        seed=settings.seed, hello_timeout=settings.hello_timeout, secure=not settings.insecure,
        sensor_replay_hz=settings.sensor_replay))
    ids = fleet.prepare()
    plan = RunPlan(broker="", topics=Topics(default_prefix(FLEET_NAME)), task=task,
                   task_spec=settings.model, strategy=strategy, config=engine_config,
                   run_dir=settings.run_dir, resume_from=None)
    result = asyncio.run(_federate(fleet, ids, plan))
    sys.stdout.write(summary_table(result.records, task.class_names))

    say("references: central head, local-only heads and float32 FedAvg on the nodes' data ...")
    t0 = time.monotonic()
    refs = references(task, fleet, settings.strategy, engine_config)
    say(f"references done in {time.monotonic() - t0:.1f} s")
    export_model(settings.run_dir)
    from tinyfl.report import write_report

    html = write_report(settings.run_dir, refs)
    say(verdict(result.records[-1].get("test_accuracy"), refs))
    say(f"report: {html}")
    return 0


def _dp_fields(settings: DemoSettings) -> dict[str, Any]:
    """The differential privacy options given (EngineConfig's defaults for the others)."""
    given = {"dp": settings.dp, "dp_epsilon": settings.dp_epsilon,
             "dp_noise_multiplier": settings.dp_noise_multiplier, "dp_delta": settings.dp_delta,
             "clip_norm": settings.clip_norm, "fraction": settings.fraction}
    return {k: v for k, v in given.items() if v is not None}


def references(task: Task, fleet: Fleet, strategy: str, config: EngineConfig) -> Baselines:
    """The references on exactly the data the nodes hold: the fleet's own partition (the blobs
    it wrote) embedded by the numpy backbone that is bit-exact with the nodes'."""
    from tinyfl.report import compute_baselines, plan_node_data

    nodes = plan_node_data(fleet.partition, fleet.artifacts)
    return compute_baselines(task, nodes, config, bits=(32,), strategy=strategy)


def export_model(run_dir: Path) -> None:
    """runs/<id>/model.tflite and model.h: backbone + the run's head + softmax, checked against
    the host computation with LiteRT before it is written (as `tinyfl export`)."""
    done = export_run(run_dir, run_dir / "model.tflite", run_dir / "model.h",
                      samples=DEFAULT_SAMPLES)
    say(f"exported {run_dir / 'model.tflite'} ({done.size:,} bytes) and model.h; {done.verdict}")


def verdict(final: object, refs: Baselines) -> str:
    """One line: where the federated head ended against the references."""
    from tinyfl.report.baselines import curve_label

    if not isinstance(final, (int, float)):
        return "no round closed: no federated accuracy to compare"
    float32 = refs.curve(curve_label("fedavg", 32))
    central, local = refs.central.accuracy, refs.local_only.mean_accuracy
    parts = [f"federated {100 * final:.1f}%",
             f"central {100 * central:.1f}% ({100 * (final - central):+.1f} pts)",
             f"local-only mean {100 * local:.1f}% ({100 * (final - local):+.1f} pts)"]
    if float32 is not None and float32.accuracy:
        parts.append(f"float32 FedAvg (simulated) {100 * float32.accuracy[-1]:.1f}%")
    return "test accuracy: " + ", ".join(parts)


async def _federate(fleet: Fleet, ids: list[str], plan: RunPlan) -> RunResult:
    """Fleet up, rounds, fleet down; Ctrl-C or SIGTERM at any point stops every process."""
    stop = asyncio.Event()
    remove = install_stop_signals(stop)
    try:
        say(f"starting {len(ids)} nodes and waiting for their hellos ...")
        t0 = time.monotonic()
        await _until_stopped(fleet.up(ids, progress=sys.stderr.isatty()), stop)
        fleet.save()  # fleet.json: `tinyfl fleet down --run` can clean up after a hard crash
        say(f"fleet up in {time.monotonic() - t0:.1f} s, broker {fleet.broker_url}")
        plan.broker = fleet.coordinator or fleet.broker_url  # provisioned: TLS and an account
        plan.keys = fleet.secrets.keyring() if fleet.secrets is not None else None  # signed frames
        write_config(plan)
        live = sys.stdout.isatty()
        progress = Progress(sys.stdout, live=live, rounds=plan.config.rounds)
        return await _until_stopped(coordinate(plan, progress), stop)
    finally:
        remove()
        fleet.stop()
        say("fleet stopped")


async def _until_stopped(work: Awaitable[T], stop: asyncio.Event) -> T:
    """Runs `work` unless `stop` is set first; then cancels it and raises KeyboardInterrupt."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not task.done():
        with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
            await cancel_and_wait(task)
        raise KeyboardInterrupt
    return task.result()


def say(text: str) -> None:
    print(text, flush=True)
