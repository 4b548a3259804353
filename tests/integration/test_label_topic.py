"""The operator's label topic end to end: a provisioned mosquitto (accounts, ACL, TLS for the
coordinator's account), a node (a native process, then an emulated Cortex-M4 board) playing its
HAR blob as a live sensor with its labels taken from its label topic instead of the blob
(`--labels topic`; on QEMU a word the loader writes), and `tinyfl label` sending it a
signed schedule. The intervals must show in the node's stream counters (the classes of the
schedule seen, no other class although the blob holds them, unlabelled windows outside the
intervals), and a forged frame, an unsigned one and a replay of the accepted one must be refused
and logged. Then the round binding: once the node has seen a newer round (a signed retained
GLOBAL that does not select it), `tinyfl label` sends that round's id, and after a reboot (which
forgets the last seq) the node refuses the first schedule, of an older round, but takes a replay
of the current round's one: the limit docs/WIRE.md states.
"""

from __future__ import annotations

import asyncio
import io
import re
import secrets
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from support.nodes import wait_until
from tinyfl.cli.main import main
from tinyfl.data.packaged import cached
from tinyfl.fleet import Emulator, NodeProcess
from tinyfl.fleet.pool import Fleet, FleetConfig, coordinate_command
from tinyfl.provision import read_keyring
from tinyfl.transport.mqtt import MqttTransport
from tinyfl.wire import Global, Label, LabelInterval, Tensor, encode

pytestmark = [pytest.mark.firmware, pytest.mark.broker]

NODE = "node01"
REPLAY_S = 12  # seconds of replay: the schedule (5 s) fits after the node came up
# readings per second: 20 HAR windows (128 readings) a second natively, 10 on the emulated
# Cortex-M4, which embeds a window in about 10 million instructions
RATE_HZ = {Emulator.NATIVE: 2560, Emulator.QEMU: 1280}
SCHEDULE = "1@0+2,none@2+1,4@3+2"  # class 1 for 2 s, none for 1 s, class 4 for 2 s
ACCEPTED = re.compile(r"labels: seq ([0-9a-f]{16}), round (\d+), 3 intervals")
ACCEPTED_ANY = re.compile(r"labels: seq ([0-9a-f]{16}), round (\d+), \d+ intervals")
COUNTERS = re.compile(r"labels: (\d+) accepted, (\d+) refused; per class seen ([\d,]+)")
STREAM_DONE = re.compile(r"stream: \d+ readings, (\d+) windows, \d+ embedded \(crc32 [0-9a-f]{8}\), "
                         r"(\d+) unlabelled, (\d+) mixed, (\d+) overruns, .*; replay done")


@pytest.fixture(params=[Emulator.NATIVE, Emulator.QEMU], ids=["native", "qemu"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fleet]:
    emulator: Emulator = request.param
    config = FleetConfig(nodes=1, emulator=emulator, model="har", data=cached("har").data,
                         run_dir=tmp_path / "run", fleet="labels",
                         max_samples=REPLAY_S * RATE_HZ[emulator] // 128,
                         sensor_replay_hz=RATE_HZ[emulator], label_topic=True)
    fleet = Fleet(config, out=io.StringIO())
    yield fleet
    fleet.stop()


def publish(fleet: Fleet, topic: str, frame: bytes, retain: bool = False) -> None:
    """One QoS 1 message from the coordinator's account, as a stranger holding it would send."""
    async def send() -> None:
        transport = MqttTransport(connect_timeout=10.0)
        await transport.connect(fleet.coordinator, client_id=f"test-{secrets.token_hex(4)}")
        try:
            await transport.publish(topic, frame, qos=1, retain=retain)
        finally:
            await transport.close()

    asyncio.run(send())


def refusals(node: NodeProcess) -> list[str]:
    return re.findall(r"LABEL refused: (\w+)", node.log_text())


def a_round_for_someone_else(round_id: int) -> Global:
    """A valid GLOBAL that selects only another node: a node skips it and takes its round id as
    its last (docs/WIRE.md, "Node behaviour on GLOBAL") without looking at model or shape."""
    return Global(round_id=round_id, model_hash=bytes(8), embed_dim=1, n_classes=2, epochs=1,
                  batch_size=1, lr=0.1, prox_mu=0.0, clip_norm=0.0, uplink_bits=8,
                  uplink_scale_mode=1, seed=1, selected=("node99",),
                  head=Tensor.float32(np.zeros((2, 2), np.float32)))


def test_labels_from_the_topic_reach_the_stream_and_forgeries_do_not(
        fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    windows = fleet.config.max_samples
    per_class = 2 * fleet.config.sensor_replay_hz // 128  # windows in a 2-s interval
    ids = fleet.prepare()
    asyncio.run(fleet.up(ids, progress=False))
    node = fleet.nodes[NODE]
    connect = shlex.split(coordinate_command(fleet.state()))[2:]  # the coordinator's account
    keys_file = Path(connect[connect.index("--keys") + 1])
    topic = fleet.config.topics.label(NODE)

    assert main(["label", *connect, "--node", NODE, "--schedule", SCHEDULE]) == 0
    printed = capsys.readouterr().out
    sent = re.search(r"\(signed, round (\d+), seq (\d+), \d+ B\)", printed)
    assert sent is not None, printed
    wait_until(lambda: ACCEPTED.search(node.log_text()) is not None, 10, "the node taking the labels",
               node.log_text)
    accepted = ACCEPTED.search(node.log_text())
    assert accepted is not None and int(accepted[1], 16) == int(sent[2])

    # the same bytes again (a replay), a frame under another key (a forgery), an unsigned one
    intervals = (LabelInterval(0, 2000, 1), LabelInterval(2000, 1000, -1), LabelInterval(3000, 2000, 4))
    key = read_keyring(keys_file).key_of(NODE)
    assert key is not None
    replay = Label(int(sent[1]), int(sent[2]), intervals)
    publish(fleet, topic, encode(replay, key=key, topic=topic))
    forged = Label(int(sent[1]), int(sent[2]) + 1, (LabelInterval(0, 60000, 0),))
    publish(fleet, topic, encode(forged, key=bytes(32), topic=topic))
    publish(fleet, topic, encode(forged))
    wait_until(lambda: len(refusals(node)) >= 3, 10, "three refusals", node.log_text)
    assert refusals(node) == ["stale_round", "bad_tag", "unauthenticated"]

    # the operator's errors, before anything is sent
    assert main(["label", *connect, "--node", "node99", "--label", "1"]) == 2  # not provisioned
    assert main(["label", *connect, "--node", NODE, "--label", "6"]) == 2  # HAR has 6 classes
    assert main(["label", *connect[:connect.index("--keys")], *connect[connect.index("--keys") + 2:],
                 "--node", NODE, "--label", "1"]) == 2  # a signing node, and no keys given
    errors = capsys.readouterr().err
    assert "unknown node node99" in errors and "has 6 classes" in errors
    assert "signs its frames" in errors

    wait_until(lambda: STREAM_DONE.search(node.log_text()) is not None, 40, "the end of the replay",
               node.log_text)
    done = STREAM_DONE.search(node.log_text())
    counters = COUNTERS.findall(node.log_text())
    assert done is not None and counters, node.log_text()
    n_accepted, n_refused, seen_text = counters[-1]
    seen = [int(v) for v in seen_text.split(",")]
    assert (int(n_accepted), int(n_refused)) == (1, 3)
    assert int(done[1]) == windows
    # 2 s of each class: per_class windows each, fewer when the loop lags (a label is read when
    # its readings are fed) and the windows across a change are mixed
    assert per_class // 2 <= seen[1] <= per_class + 1, seen
    assert per_class // 2 <= seen[4] <= per_class + 1, seen
    assert sum(seen) == seen[1] + seen[4], seen  # the blob's own labels were not used
    unlabelled, mixed, overruns = int(done[2]), int(done[3]), int(done[4])
    assert unlabelled >= 1  # before the schedule, in its gap and after it
    assert sum(seen) + unlabelled + mixed + overruns == windows

    # A newer round: `tinyfl label` puts the retained GLOBAL's (verified) round id in the frame.
    keyring = read_keyring(keys_file)
    round_id = int(time.time())
    topics = fleet.config.topics
    publish(fleet, topics.global_, encode(a_round_for_someone_else(round_id), key=keyring.fleet_key,
                                          topic=topics.global_), retain=True)
    wait_until(lambda: f"GLOBAL of round {round_id} ignored: not_selected" in node.log_text(), 10,
               "the node skipping the newer round", node.log_text)
    assert main(["label", *connect, "--node", NODE, "--label", "2", "--for", "1"]) == 0
    current = re.search(r"\(signed, round (\d+), seq (\d+)", capsys.readouterr().out)
    assert current is not None and int(current[1]) == round_id
    wait_until(lambda: len(ACCEPTED_ANY.findall(node.log_text())) == 2, 10, "the second schedule",
               node.log_text)

    # A reboot forgets the last seq, not the round (the retained GLOBAL comes back at once).
    node.kill()
    fleet.start_node(NODE)
    wait_until(lambda: f"GLOBAL of round {round_id} ignored: not_selected" in node.log_text(), 20,
               "the rebooted node seeing the round", node.log_text)
    publish(fleet, topic, encode(replay, key=key, topic=topic))  # of round 0: refused for good
    this_round = Label(round_id, int(current[2]), (LabelInterval(0, 1000, 2),))
    publish(fleet, topic, encode(this_round, key=key, topic=topic))  # taken again, once
    publish(fleet, topic, encode(this_round, key=key, topic=topic))
    wait_until(lambda: len(refusals(node)) >= 2, 10, "the rebooted node's refusals", node.log_text)
    assert refusals(node) == ["stale_round", "stale_round"]
    assert len(ACCEPTED_ANY.findall(node.log_text())) == 1
    with capsys.disabled():
        print(f"\nlabel topic: seen per class {seen}, {unlabelled} unlabelled, {mixed} mixed of "
              f"{windows} windows ({fleet.config.emulator.value}); "
              f"{time.monotonic() - started:.1f} s")
