"""The run folder: one owner for what a run writes and what later commands read.

    <run>/config.json       the run's settings: task (model folder), prefix, broker (its URL
                            without user or password), engine,
                            strategy, and `initial`: the starting head's score (round 0)
    <run>/metrics.jsonl     one line per round (tinyfl.coordinator.metrics)
    <run>/checkpoint.npz    the head and the strategy's state after the last round (checkpoint)

`RunPlan` is a validated run (where, what, how, what it resumes); `write_config`/`read_config`
are the only writer and reader of config.json; `coordinate` connects and runs every round.
`tinyfl coordinate`, `tinyfl demo`, the report's simulated references and `tinyfl export` all go
through here, so the schema is one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyfl.aio import cancel_and_wait
from tinyfl.coordinator.checkpoint import CHECKPOINT_NAME, Checkpoint
from tinyfl.coordinator.config import EngineConfig
from tinyfl.coordinator.engine import RoundEngine, RunResult
from tinyfl.coordinator.metrics import METRICS_NAME
from tinyfl.coordinator.progress import Progress
from tinyfl.coordinator.task import Task, evaluate
from tinyfl.errors import UsageError
from tinyfl.files import atomic_write, private_dir
from tinyfl.strategy import Strategy, strategy_params
from tinyfl.transport.address import BrokerAddress, public_url
from tinyfl.transport.mqtt import MqttTransport
from tinyfl.wire import Keyring, Topics

__all__ = [
    "CHECKPOINT_NAME",
    "CONFIG_NAME",
    "METRICS_NAME",
    "RunPlan",
    "coordinate",
    "read_config",
    "write_config",
]

CONFIG_NAME = "config.json"


@dataclass
class RunPlan:
    """A validated run: where, what, how, and what it resumes from."""

    broker: str | BrokerAddress  # a URL, or an address with credentials (never written down)
    topics: Topics
    task: Task
    task_spec: str  # what config.json records and --resume loads: a model folder or synthetic:...
    strategy: Strategy
    config: EngineConfig
    run_dir: Path
    resume_from: Checkpoint | None
    keys: Keyring | None = field(default=None, repr=False)  # a provisioned fleet's keys


def write_config(plan: RunPlan) -> None:
    """config.json: the run's settings, what --resume reads when no checkpoint exists yet."""
    private_dir(plan.run_dir)
    start = evaluate(plan.task.initial_head(plan.config.initial_head), plan.task.test_x,
                     plan.task.test_y)
    record = {
        "task": plan.task_spec,
        "model_hash": plan.task.model_hash.hex(),
        "prefix": plan.topics.prefix,
        # Without user and password: a run folder is shared, copied and committed.
        "broker": public_url(plan.broker),
        # whether frames are signed (never the keys): a resumed run needs --keys again
        "authenticated": plan.keys is not None,
        "engine": plan.config.to_dict(),
        "strategy": strategy_params(plan.strategy),
        "initial": {"head": plan.config.initial_head, "test_accuracy": start.accuracy,
                    "test_loss": start.loss, "macro_f1": start.macro_f1},
    }
    atomic_write(plan.run_dir / CONFIG_NAME, (json.dumps(record, indent=2) + "\n").encode())


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """config.json of a run folder, None when there is none; UsageError when it is unreadable."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a run configuration: {exc}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{path} is not a run configuration (not a JSON object)")
    return doc


async def coordinate(plan: RunPlan, progress: Progress | None) -> RunResult:
    """Connect, run every round, disconnect; SIGTERM stops like Ctrl-C (the last checkpoint
    stays, so `--resume` continues)."""
    transport = MqttTransport()
    client_id = f"tinyfl-coordinator-{plan.topics.prefix.replace('/', '-')}-{os.getpid()}"
    await transport.connect(plan.broker, client_id=client_id)
    engine = RoundEngine(transport, plan.topics, plan.task, plan.strategy, plan.config,
                         run_dir=plan.run_dir, resume_from=plan.resume_from, progress=progress,
                         keys=plan.keys)
    loop = asyncio.get_running_loop()
    main = asyncio.ensure_future(engine.run())
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(cancel_and_wait(main)))
    try:
        return await main
    except asyncio.CancelledError:
        await cancel_and_wait(main)
        raise KeyboardInterrupt from None
    finally:
        await transport.close()
