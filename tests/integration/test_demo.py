"""End to end, as a user runs it: `tinyfl demo` on 8 emulated Cortex-M4 boards.

A private mosquitto, 8 QEMU nodes holding the HAR fleet users' raw windows (each embeds them with
the compiled int8 backbone), 20 rounds of FedAvg with 8-bit uplinks over MQTT, then the
references, the exported model and the report. The federated head must end within 3 points of
the centrally trained head and at least 5 points above the mean local-only head; every node must
have taken part; the report and the exported model must be complete.
"""

from __future__ import annotations

import base64
import json
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinyfl.cli.main import main
from tinyfl.coordinator.metrics import read_metrics
from tinyfl.fleet.state import Liveness, read_state, verify
from tinyfl.model.artifacts import load_artifacts
from tinyfl.model.export import host_probabilities, litert_probabilities, sample_inputs
from tinyfl.provision import read_fleet
from tinyfl.report import load_baselines

NODES = 8
ROUNDS = 20


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    run_dir = tmp_path_factory.mktemp("demo") / "run"
    code = main(["demo", "--nodes", str(NODES), "--rounds", str(ROUNDS), "--uplink-bits", "8",
                 "--out", str(run_dir)])
    assert code == 0
    return run_dir, (run_dir / "report.html").read_text()


def test_federated_head_matches_central_and_beats_local_only(demo_run: tuple[Path, str]) -> None:
    run_dir, _ = demo_run
    records = read_metrics(run_dir / "metrics.jsonl")
    assert len(records) == ROUNDS
    assert all(r["status"] == "closed" and r["answered"] == NODES for r in records)
    assert json.loads((run_dir / "config.json").read_text())["engine"]["uplink_bits"] == 8
    refs = load_baselines(run_dir / "baselines.json")
    final = records[-1]["test_accuracy"]
    print(f"federated {final:.4f}, central {refs.central.accuracy:.4f}, "
          f"local-only {refs.local_only.mean_accuracy:.4f}")
    assert final >= refs.central.accuracy - 0.03
    assert final >= refs.local_only.mean_accuracy + 0.05
    # The nodes' 8-bit uplink costs well under a third of float32's on the wire.
    float32 = refs.curve("fedavg float32")
    assert float32 is not None
    assert sum(r["bytes_up"] for r in records) < 0.35 * sum(float32.bytes_up)


def test_every_node_embedded_its_windows_and_took_part(demo_run: tuple[Path, str]) -> None:
    run_dir, _ = demo_run
    ids = {f"node{i:02d}" for i in range(1, NODES + 1)}
    assert {n for r in read_metrics(run_dir / "metrics.jsonl") for n in r["answered_ids"]} == ids
    model_hash = load_artifacts("har").model_hash.hex()
    for node_id in ids:
        log = (run_dir / "nodes" / f"{node_id}.log").read_text()
        assert re.search(rf"raw windows through the har backbone {model_hash} -> \d+ embeddings",
                         log), log
    # The demo stopped exactly what it started.
    for proc in read_state(run_dir).processes:
        assert verify(proc) is not Liveness.RUNNING, proc


def test_report_is_self_contained(demo_run: tuple[Path, str]) -> None:
    run_dir, html = demo_run
    for name in ("accuracy.png", "bytes.png", "participation.png"):
        png = (run_dir / name).read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert base64.b64encode(png).decode() in html  # embedded, not linked
    assert "http://" not in html and "https://" not in html
    assert "model.tflite" in html


def test_exported_model_predicts_as_the_host(demo_run: tuple[Path, str]) -> None:
    run_dir, _ = demo_run
    art = load_artifacts("har")
    head = np.load(run_dir / "checkpoint.npz")["head"]
    codes = sample_inputs(art.input_shape, art.input_zero_point, 32, seed=3)
    probs = litert_probabilities((run_dir / "model.tflite").read_bytes(), codes)
    assert probs is not None
    expected = host_probabilities(art, head, codes)
    assert np.array_equal(probs.argmax(axis=1), expected.argmax(axis=1))
    assert np.abs(probs - expected).max() < 1e-5
    assert "tinyfl_deploy_model" in (run_dir / "model.h").read_text()


def test_the_same_flow_runs_with_100_native_nodes(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    code = main(["demo", "--emulator", "native", "--nodes", "100", "--rounds", "3", "--out",
                 str(run_dir)])
    assert code == 0
    # HAR's fleet has 18 users: more nodes than groups, so the demo says it shares samples iid
    assert "100 nodes but 18 fleet groups: partition iid" in capsys.readouterr().out
    records = read_metrics(run_dir / "metrics.jsonl")
    assert [r["answered"] for r in records] == [100, 100, 100]
    refs = load_baselines(run_dir / "baselines.json")
    assert len(refs.nodes) == 100
    assert records[-1]["test_accuracy"] >= refs.central.accuracy - 0.03
    assert (run_dir / "report.html").is_file() and (run_dir / "model.tflite").is_file()


def test_ctrl_c_stops_every_process_it_started(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinyfl.cli.main", "demo", "--emulator", "native", "--nodes", "4",
         "--partition", "iid", "--rounds", "1000000", "--out", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any("nodes online" in ln for ln in lines[-1:]):
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
    assert any("eligible nodes online" in ln for ln in lines), "".join(lines)
    time.sleep(1.0)  # a few rounds in
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(lines) + out
    assert "fleet stopped" in out
    recorded = read_state(run_dir).processes
    assert len(recorded) == 5  # broker + 4 nodes
    assert all(verify(p) is not Liveness.RUNNING for p in recorded)
    leftover = subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True, check=False)
    assert leftover.returncode == 1, leftover.stdout
    assert 1 <= len(read_metrics(run_dir / "metrics.jsonl")) < 1000000  # rounds done stay on disk


def test_the_runs_secrets_stay_in_its_provisioning_folder(demo_run: tuple[Path, str]) -> None:
    """The demo's private broker is provisioned: the run folder is its owner's only, and no
    password or key appears outside provision/ and the nodes' own config records."""
    run_dir, _ = demo_run
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    fleet, _, _ = read_fleet(run_dir / "provision")
    secrets = [fleet.coordinator_password, fleet.fleet_key.hex(), fleet.dealer_secret.hex()]
    for node in fleet.nodes.values():
        secrets += [node.password, node.frame_key.hex()]
    for path in run_dir.rglob("*"):
        rel = path.relative_to(run_dir)
        if not path.is_file() or rel.parts[0] == "provision" or path.suffix == ".cfg":
            continue
        data = path.read_bytes()
        leaked = [s[:4] for s in secrets if s.encode() in data]
        assert not leaked, f"{rel} holds secrets starting {leaked}"
    for cfg in (run_dir / "nodes").glob("*.cfg"):  # the node's own account, for its eyes only
        assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
