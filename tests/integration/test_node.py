"""Real node firmware against a real mosquitto: a native process and a QEMU Cortex-M4 board.

Each node connects, announces itself, receives a global head, trains on its NSL-KDD feature blob
and publishes a quantized update that the Python codec decodes. Bad frames are rejected with a
logged reason while the node stays connected and serves the next round.
"""

from __future__ import annotations

import itertools
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from support.broker import free_port
from support.mqtt_probe import MqttProbe
from support.nodes import FeatureData, load_features, make_blob, make_global, start_node, wait_until
from tinyfl.fleet import Emulator, NodeProcess, NodeSpec, build_firmware
from tinyfl.model.head import train_local
from tinyfl.rng import round_rng
from tinyfl.wire import Hello, Tensor, Update, decode, encode

pytestmark = [pytest.mark.firmware, pytest.mark.broker]
EMULATORS = [pytest.param(Emulator.NATIVE, id="native"),
             pytest.param(Emulator.QEMU, id="qemu", marks=pytest.mark.qemu)]
ROUND_TIMEOUT = 30.0
_ids = itertools.count()


@pytest.fixture(scope="session")
def features() -> FeatureData:
    return load_features()


@pytest.fixture(scope="session")
def images() -> dict[Emulator, Path]:
    return {e: build_firmware(e) for e in Emulator}


class NodeUnderTest:
    """A started node, a probe subscribed to its topics, and what it should be fed."""

    def __init__(self, node: NodeProcess, probe: MqttProbe, prefix: str, blob_seed: int,
                 features: FeatureData) -> None:
        self.node = node
        self.probe = probe
        self.prefix = prefix
        self.blob = make_blob(features, 400, blob_seed)
        self.id = node.spec.node_id

    def topic(self, leaf: str) -> str:
        return f"{self.prefix}/nodes/{self.id}/{leaf}"

    def publish_global(self, payload: bytes) -> None:
        self.probe.publish(f"{self.prefix}/global", payload, qos=1, retain=True)

    def wait_update(self, round_id: int, timeout: float = ROUND_TIMEOUT) -> Update:
        msg = self.probe.wait_for(self.topic("update"), timeout=timeout,
                                  predicate=lambda m: decode(m.payload).round_id == round_id,  # type: ignore[union-attr]
                                  )
        update = decode(msg.payload)
        assert isinstance(update, Update)
        return update

    def diagnostics(self) -> str:
        return f"--- node log ({self.node.log_path}) ---\n{self.node.log_text()[-4000:]}"


@pytest.fixture(params=EMULATORS)
def node(request: pytest.FixtureRequest, broker, images, features, tmp_path: Path) -> Iterator[NodeUnderTest]:  # type: ignore[no-untyped-def]
    emulator: Emulator = request.param
    n = next(_ids)
    prefix = f"tinyfl/test{n}"
    node_id = f"{emulator.value}-{n:02d}"
    probe = MqttProbe(broker.host, broker.port)
    probe.wait_connected()
    probe.subscribe(f"{prefix}/nodes/#")
    proc = start_node(emulator, images[emulator], tmp_path, node_id, make_blob(features, 400, n),
                      broker.host, broker.port, prefix)
    under_test = NodeUnderTest(proc, probe, prefix, n, features)
    try:
        yield under_test
    finally:
        proc.stop()
        probe.publish(f"{prefix}/global", b"", qos=1, retain=True)  # clear the retained round
        probe.close()


def wait_hello(t: NodeUnderTest) -> Hello:
    msg = t.probe.wait_for(t.topic("hello"), timeout=ROUND_TIMEOUT)
    hello = decode(msg.payload)
    assert isinstance(hello, Hello)
    return hello


def test_node_announces_itself(node: NodeUnderTest, broker) -> None:  # type: ignore[no-untyped-def]
    hello = wait_hello(node)
    assert node.probe.wait_for(node.topic("status"), timeout=5).payload == b"online"
    # Both are retained: a coordinator that starts later still learns about the node.
    with MqttProbe(broker.host, broker.port) as late:
        late.wait_connected()
        late.subscribe(node.topic("#"))
        assert late.wait_for(node.topic("status"), timeout=5).retain
        assert decode(late.wait_for(node.topic("hello"), timeout=5).payload) == hello
    assert hello.node_id == node.id
    assert hello.n_samples == 400
    assert (hello.embed_dim, hello.n_classes) == (64, 5)
    assert hello.model_hash == node.blob.model_hash
    assert hello.uplink_bits & 0b1111 == 0b1111
    # A float32 GLOBAL of its head fits what the node says it can receive.
    assert hello.max_payload >= len(encode(make_global(1, node.blob)))


@pytest.mark.parametrize("bits", [8, 4, 2, 32])
def test_node_trains_and_sends_quantized_update(node: NodeUnderTest, bits: int) -> None:
    wait_hello(node)
    node.publish_global(encode(make_global(1, node.blob, uplink_bits=bits, epochs=4)))
    update = node.wait_update(1)
    assert update.n_samples == 400
    assert np.isfinite(update.loss) and 0.0 < update.loss
    # the zero head starts at ln(5) = 1.61 per sample; 4 epochs of training get well below it
    assert update.loss < 1.0, f"loss did not decrease over local epochs: {update.loss}"
    assert 0.0 <= update.accuracy <= 1.0
    assert update.accuracy > 0.5  # NSL-KDD is far from chance after a few epochs
    assert update.delta.bits == bits and update.delta.shape == (5, 65)
    delta = update.delta.dequantized()
    assert np.all(np.isfinite(delta)) and np.any(delta != 0)


def test_node_rejects_bad_globals_and_serves_next_round(node: NodeUnderTest) -> None:
    wait_hello(node)
    good = make_global(1, node.blob)
    frame = encode(good)
    nan_head = bytearray(encode(replace(good, round_id=2)))
    bad_frames = {
        "truncated": frame[:5],  # shorter than the frame header
        "bad_crc": frame[:-1] + bytes([frame[-1] ^ 0xFF]),
        "bad_magic": b"XX" + frame[2:],
        "wrong_model": encode(replace(good, round_id=3, model_hash=b"\x00" * 8)),
        "wrong_shape": encode(replace(good, round_id=4, embed_dim=63,
                                      head=Tensor.float32(np.zeros((5, 64), np.float32)))),
    }
    # A NaN in the float head: valid framing and CRC, invalid content.
    nan_at = len(nan_head) - 4 - 4  # the last head value
    nan_head[nan_at:nan_at + 4] = struct.pack("<f", float("nan"))
    nan_head[-4:] = struct.pack("<I", zlib.crc32(bytes(nan_head[:-4])))
    bad_frames["non_finite"] = bytes(nan_head)
    for reason, payload in bad_frames.items():
        node.publish_global(payload)
        wait_until(lambda r=reason: r in node.node.log_text(), 15, f"node to log '{reason}'",
                   node.diagnostics)
    node.publish_global(encode(replace(good, round_id=10)))
    update = node.wait_update(10)
    assert update.n_samples == 400
    statuses = [m.payload for m in node.probe.messages() if m.topic == node.topic("status")]
    assert b"offline" not in statuses, "node dropped its session over a bad frame"
    assert node.node.alive


def test_node_survives_oversized_message(node: NodeUnderTest) -> None:
    wait_hello(node)
    node.publish_global(b"\x00" * 20000)
    wait_until(lambda: "larger than the receive buffer" in node.node.log_text(), 15,
               "the node to drop the oversized message", node.diagnostics)
    node.publish_global(encode(make_global(5, node.blob)))
    assert node.wait_update(5).round_id == 5


def test_node_ignores_rounds_it_is_not_selected_for(node: NodeUnderTest) -> None:
    wait_hello(node)
    node.publish_global(encode(make_global(1, node.blob, selected=("someone-else",))))
    node.publish_global(encode(make_global(2, node.blob, selected=("someone-else", node.id))))
    update = node.wait_update(2)
    assert update.round_id == 2
    assert not [m for m in node.probe.messages()
                if m.topic == node.topic("update") and decode(m.payload).round_id == 1]  # type: ignore[union-attr]


@pytest.mark.parametrize("emulator", EMULATORS)
def test_node_reconnects_after_broker_restart(emulator: Emulator, fresh_broker, images,  # type: ignore[no-untyped-def]
                                              features: FeatureData, tmp_path: Path) -> None:
    prefix, node_id = "tinyfl/restart", f"{emulator.value}-r"
    blob = make_blob(features, 300, 99)
    node = start_node(emulator, images[emulator], tmp_path, node_id, blob, fresh_broker.host,
                      fresh_broker.port, prefix, keep_alive_s=2)
    probe = MqttProbe(fresh_broker.host, fresh_broker.port)
    try:
        probe.wait_connected()
        probe.subscribe(f"{prefix}/nodes/#")
        probe.wait_for(f"{prefix}/nodes/{node_id}/hello", timeout=ROUND_TIMEOUT)
        fresh_broker.restart()
        probe.wait_connected(timeout=20)  # the probe resubscribes by itself
        # The node notices the dead session (no PINGRESP), reconnects with backoff and announces
        # itself again on the new broker, which kept nothing (no persistence).
        probe.wait_for(f"{prefix}/nodes/{node_id}/hello", timeout=45)
        probe.publish(f"{prefix}/global", encode(make_global(1, blob)), qos=1, retain=True)
        msg = probe.wait_for(f"{prefix}/nodes/{node_id}/update", timeout=ROUND_TIMEOUT)
        update = decode(msg.payload)
        assert isinstance(update, Update) and update.round_id == 1
    except AssertionError:
        print(node.log_text()[-3000:])
        raise
    finally:
        node.stop()
        probe.close()


@pytest.mark.parametrize("emulator", EMULATORS)
def test_broker_announces_dead_node_offline(emulator: Emulator, broker, images,  # type: ignore[no-untyped-def]
                                            features: FeatureData, tmp_path: Path) -> None:
    prefix, node_id = f"tinyfl/will{next(_ids)}", f"{emulator.value}-w"
    node = start_node(emulator, images[emulator], tmp_path, node_id, make_blob(features, 100, 5),
                      broker.host, broker.port, prefix, keep_alive_s=2)
    with MqttProbe(broker.host, broker.port) as probe:
        probe.wait_connected()
        probe.subscribe(f"{prefix}/nodes/{node_id}/status")
        assert probe.wait_for(f"{prefix}/nodes/{node_id}/status", timeout=ROUND_TIMEOUT).payload == b"online"
        node.kill()  # power loss: no DISCONNECT, so the broker publishes the last will
        assert probe.wait_for(f"{prefix}/nodes/{node_id}/status", timeout=15).payload == b"offline"


@pytest.mark.qemu
def test_serial_board_through_bridge(broker, images, features: FeatureData,  # type: ignore[no-untyped-def]
                                     tmp_path: Path) -> None:
    """A board whose only pipe is a serial line (UART0 as a listening socket here, USB serial on
    a Nano 33 BLE) reaches the broker through `tinyfl bridge` and serves a round."""
    prefix, node_id = f"tinyfl/bridge{next(_ids)}", "serial-board"
    serial_port = free_port()
    blob = make_blob(features, 200, 17)
    blob_path = tmp_path / "board.blob"
    blob.write(blob_path)
    node = NodeProcess(NodeSpec(node_id, blob_path, tmp_path, Emulator.QEMU, serial_listen_port=serial_port),
                       images[Emulator.QEMU], broker.host, broker.port, prefix)
    node.start()
    bridge = subprocess.Popen(
        [sys.executable, "-m", "tinyfl.cli.main", "bridge", "--port", f"socket://127.0.0.1:{serial_port}",
         "--broker", broker.url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with MqttProbe(broker.host, broker.port) as probe:
            probe.wait_connected()
            probe.subscribe(f"{prefix}/nodes/#")
            hello = decode(probe.wait_for(f"{prefix}/nodes/{node_id}/hello", timeout=ROUND_TIMEOUT).payload)
            assert isinstance(hello, Hello) and hello.board == 1 and hello.n_samples == 200
            probe.publish(f"{prefix}/global", encode(make_global(1, blob, uplink_bits=4)), qos=1, retain=True)
            update = decode(probe.wait_for(f"{prefix}/nodes/{node_id}/update", timeout=ROUND_TIMEOUT).payload)
            assert isinstance(update, Update) and update.round_id == 1 and update.delta.bits == 4
            probe.publish(f"{prefix}/global", b"", qos=1, retain=True)
    finally:
        bridge.terminate()
        out = bridge.communicate(timeout=10)[0]
        node.stop()
    assert bridge.returncode == 0, out


def test_node_update_matches_numpy_reference(node: NodeUnderTest) -> None:
    """The firmware's local round (native x86 or emulated Cortex-M4F) equals the numpy reference
    of the trainer run on the same samples with the same seed: same shuffles, same SGD, same
    clipping; the float32 delta agrees to float rounding and the 8-bit one to its quantization."""
    wait_hello(node)
    rng = np.random.default_rng(3)
    head = (rng.standard_normal((5, 65)) * 0.1).astype(np.float32)
    settings = {"epochs": 3, "batch_size": 8, "lr": 0.3, "prox_mu": 0.01, "clip_norm": 2.0}
    for round_id, bits in ((1, 32), (2, 8)):
        g = make_global(round_id, node.blob, head=Tensor.float32(head), uplink_bits=bits,
                        seed=777, **settings)
        node.publish_global(encode(g))
        update = node.wait_update(round_id)
        ref = train_local(head, node.blob.values(), node.blob.labels,
                          rng=round_rng(777, node.id, round_id), **settings)
        # the statistics travel as binary16: equal to the reference's after that rounding
        half = 2.0**-11
        assert update.loss == pytest.approx(ref.epoch_loss[-1], rel=half)
        assert update.accuracy == pytest.approx(ref.accuracy, abs=1.0 / 400 + half)
        assert update.update_norm == pytest.approx(ref.update_norm, rel=half)
        delta = update.delta.dequantized()
        if bits == 32:
            np.testing.assert_allclose(delta, ref.delta, rtol=1e-4, atol=1e-5)
        else:
            scales = update.delta.scales[:, None]
            assert np.all(np.abs(delta - ref.delta) <= scales * 1.001 + 1e-6)
