"""`tinyfl fleet up|down|status`: an emulated node pool (QEMU boards or native processes).

`up` leaves the fleet running and exits (state in runs/<id>/fleet.json) unless --foreground, where
it stays, reports nodes that die, restarts them per --restart, and stops everything on Ctrl-C.
`down` stops exactly the processes fleet.json records, after checking each pid is still the
process that was started (start time and command line from /proc). `status` exits 0 when every
recorded node is up, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path

from tinyfl.cli import Subparsers
from tinyfl.cli.data import resolve_model_data
from tinyfl.data import DEFAULT_MODEL, MODEL_TASKS
from tinyfl.errors import TransportError, UsageError
from tinyfl.fleet.nodes import Emulator
from tinyfl.fleet.pool import (
    RESTART_POLICIES,
    Fleet,
    FleetConfig,
    coordinate_command,
    fleet_address,
    install_stop_signals,
)
from tinyfl.fleet.pool import supervisor_record as _supervisor_record
from tinyfl.fleet.state import (
    FleetState,
    Liveness,
    latest_run,
    read_state,
    stop_processes,
    verify,
)
from tinyfl.transport.mqtt import MqttTransport
from tinyfl.wire import Topics

SUMMARY = "start, inspect and stop an emulated fleet (QEMU Cortex-M4 boards or native nodes)"
RUNS_ROOT = Path("runs")


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("fleet", help=SUMMARY, description=__doc__)
    commands = parser.add_subparsers(title="subcommands", metavar="<subcommand>", dest="fleet_cmd")
    up = commands.add_parser(
        "up", help="partition data, start a broker and N nodes, wait for their hellos",
        description="Build the firmware if needed, partition the fleet's data of --data under "
        "--model's split into the run folder, start a private mosquitto (unless --broker) and N "
        "nodes, and wait until all have said hello.")
    up.add_argument("--nodes", type=int, required=True, metavar="N")
    up.add_argument("--emulator", choices=[e.value for e in Emulator], default="qemu",
                    help="QEMU Cortex-M4 boards, native processes, or the esp32dev main on the "
                         "Arduino test double (needs --sensor-replay; default: %(default)s)")
    up.add_argument("--model", metavar="DIR", help="model folder the nodes run")
    up.add_argument("--data", type=Path, metavar="FILE.npz",
                    help="the dataset the model was built from")
    up.add_argument("--task", choices=MODEL_TASKS,
                    help="short for --model models/NAME with its packaged data (default: har "
                         "when no --model is given)")
    up.add_argument("--broker", metavar="mqtt://HOST:PORT",
                    help="use this broker (default: a private mosquitto on free loopback ports, "
                         "provisioned: an account and ACL per node, TLS for the coordinator)")
    up.add_argument("--insecure", action="store_true",
                    help="the private broker without accounts (anyone on this machine can "
                         "publish): for experiments only")
    up.add_argument("--partition", metavar="SCHEME",
                    help="by-group|iid|dirichlet:ALPHA|quantity:ALPHA|gateways "
                    "(default: by-group when the data has groups, else iid)")
    up.add_argument("--seed", type=int, default=0)
    up.add_argument("--max-samples", type=int, default=512, metavar="K",
                    help="at most K samples per node (default: %(default)s)")
    up.add_argument("--fleet", default="fleet", metavar="NAME",
                    help="fleet name; topics are tinyfl/NAME/... (default: %(default)s)")
    up.add_argument("--run", type=Path, metavar="DIR",
                    help="run folder (default: runs/fleet-NAME-YYYYmmdd-HHMMSS)")
    up.add_argument("--hello-timeout", type=float, default=60.0, metavar="SECONDS")
    up.add_argument("--sensor-replay", type=int, default=0, metavar="HZ",
                    help="nodes play their data as a live sensor, HZ readings per second, and "
                         "fill their caches while rounds run (default: load it at boot)")
    up.add_argument("--labels", choices=("blob", "topic"), default="blob",
                    help="with --sensor-replay: the readings' labels from the "
                         "data (blob) or from each node's label topic, as `tinyfl label` sends "
                         "them (topic; none until then). Default: %(default)s")
    up.add_argument("--foreground", action="store_true",
                    help="stay up, supervise the nodes, stop everything on Ctrl-C")
    up.add_argument("--restart", choices=RESTART_POLICIES, default="no",
                    help="--foreground: restart a node that exits (default: %(default)s)")
    up.add_argument("--max-restarts", type=int, default=5, metavar="K",
                    help="--foreground: give up on a node after K restarts (default: %(default)s)")
    for name, text in (("down", "stop exactly the processes a fleet started"),
                       ("status", "show which nodes of a fleet are up")):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("--run", type=Path, metavar="DIR",
                         help="run folder (default: the newest runs/*/fleet.json)")
        if name == "down":
            sub.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                             help="SIGKILL what SIGTERM did not stop by then (default: 5)")
    return parser


def run(args: argparse.Namespace) -> int:
    command = getattr(args, "fleet_cmd", None)
    if command == "up":
        return up(args)
    if command == "down":
        return down(args)
    if command == "status":
        return status(args)
    raise UsageError("usage: tinyfl fleet up|down|status (see tinyfl fleet --help)")


def up(args: argparse.Namespace) -> int:
    if args.max_restarts < 0:
        raise UsageError(f"--max-restarts must be >= 0, got {args.max_restarts}")
    if args.restart != "no" and not args.foreground:
        raise UsageError("--restart needs --foreground (a detached fleet has no supervisor)")
    run_dir = args.run or RUNS_ROOT / f"fleet-{args.fleet}-{time.strftime('%Y%m%d-%H%M%S')}"
    task = args.task if args.task or args.model else DEFAULT_MODEL
    model, data = resolve_model_data(args.model, task, args.data)
    config = FleetConfig(nodes=args.nodes, emulator=Emulator(args.emulator), model=model,
                         data=data, run_dir=run_dir, fleet=args.fleet, broker_url=args.broker,
                         secure=not args.insecure,
                         partition=args.partition, seed=args.seed, max_samples=args.max_samples,
                         hello_timeout=args.hello_timeout, sensor_replay_hz=args.sensor_replay,
                         label_topic=args.labels == "topic")
    fleet = Fleet(config)
    ids = fleet.prepare()
    if args.foreground:
        fleet.supervisor = _supervisor_record()
    return asyncio.run(_up(fleet, ids, args))


async def _up(fleet: Fleet, ids: list[str], args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    remove = install_stop_signals(stop)
    try:
        up_task = asyncio.ensure_future(fleet.up(ids, progress=sys.stderr.isatty()))
        stop_task = asyncio.ensure_future(stop.wait())
        await asyncio.wait({up_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        stop_task.cancel()
        if not up_task.done():  # Ctrl-C while starting: up() stops what it started
            up_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await up_task
            print("interrupted; fleet stopped", file=sys.stderr)
            return 130
        up_task.result()
        fleet.save()
        state = fleet.state()
        print(f"fleet {state.fleet}: {len(ids)} nodes up ({state.emulator}), broker "
              f"{state.broker_url}, topics {state.prefix}/..., state {fleet.run_dir}/fleet.json",
              flush=True)
        if not args.foreground:
            print(f"coordinate with: {coordinate_command(state)} --model {state.task}", flush=True)
            print(f"stop with: tinyfl fleet down --run {fleet.run_dir}", flush=True)
            return 0
        print("supervising (Ctrl-C stops the fleet)", flush=True)
        try:
            await fleet.supervise(stop, args.restart, args.max_restarts)
        finally:
            fleet.stop()
            print("fleet stopped", flush=True)
        return 0
    finally:
        remove()


def _run_dir(args: argparse.Namespace) -> Path:
    return Path(args.run) if args.run is not None else latest_run(RUNS_ROOT)


def down(args: argparse.Namespace) -> int:
    run_dir = _run_dir(args)
    state = read_state(run_dir)
    # Supervisor first (it would restart nodes), then nodes (their will reaches the broker),
    # then the broker.
    order = {"supervisor": 0, "node": 1, "broker": 2}
    skipped = 0
    for role in sorted({p.role for p in state.processes}, key=order.__getitem__):
        group = [p for p in state.processes if p.role == role]
        for result in stop_processes(group, args.timeout):
            r = result.record
            name = r.node_id or r.role
            print(f"{name}: pid {r.pid} {result.outcome}")
            skipped += result.outcome.startswith("skipped")
    print(f"fleet {state.fleet} ({run_dir}) down" + (f"; {skipped} pid(s) left alone" if skipped
                                                      else ""))
    return 0


def status(args: argparse.Namespace) -> int:
    run_dir = _run_dir(args)
    state = read_state(run_dir)
    reported = _retained_status(state)
    up_count = 0
    for record in state.processes:
        live = verify(record)
        name = record.node_id or record.role
        mqtt = f", mqtt {reported[record.node_id]}" if record.node_id in reported else ""
        text = {Liveness.RUNNING: "up", Liveness.GONE: "down",
                Liveness.MISMATCH: "down (pid reused by another process)"}[live]
        print(f"{name:<12} {text:<5} pid {record.pid}{mqtt}")
        up_count += record.role == "node" and live is Liveness.RUNNING
    nodes = len(state.nodes)
    print(f"fleet {state.fleet}: {up_count}/{nodes} nodes up, broker {state.broker_url}")
    return 0 if up_count == nodes else 1


def _retained_status(state: FleetState, wait: float = 0.5) -> dict[str, str]:
    """Each node's retained `status` (online/offline) from the broker; {} if unreachable."""

    async def query() -> dict[str, str]:
        topics = Topics(state.prefix)
        transport = MqttTransport(connect_timeout=2.0, attempt_timeout=1.0)
        try:
            await transport.connect(fleet_address(state),
                                    client_id=f"tinyfl-status-{id(state)}")
        except TransportError:
            return {}
        found: dict[str, str] = {}
        try:
            await transport.subscribe(topics.all_nodes("status"), qos=0)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while (left := deadline - loop.time()) > 0:
                try:
                    message = await transport.receive(timeout=left)
                except (asyncio.TimeoutError, TimeoutError):
                    break
                parsed = topics.parse(message.topic)
                if parsed is not None:
                    found[parsed[1]] = message.payload.decode(errors="replace")
        finally:
            await transport.close()
        return found

    return asyncio.run(query())
