#!/usr/bin/env python3
"""Uplink bytes per node per round: whole MQTT PUBLISH packets of one UPDATE, wire version 2,
with the CRC of a fleet without keys and with the 16-byte tag of a provisioned fleet.

    python bench/bench_uplink.py    # writes bench/results/uplink.json and bench/uplink.md

Computed by encoding real frames with the codec (`tinyfl.wire.encode`) and the packet size the
coordinator counts (`mqtt_publish_packet_size`), for the HAR head (6 classes x 64 + bias) and
the demo's topic naming. No network: the coordinator counts the same sizes on the wire
(tests/unit/test_mqtt_packet_size.py ties the formula to real packets).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from tinyfl.strategy.secagg import mask_bits_for
from tinyfl.transport.mqtt import mqtt_publish_packet_size
from tinyfl.wire import Masked, Tensor, Topics, Update, encode

HEAD = (6, 65)  # the HAR head: 6 classes, 64-dim embedding plus bias
LAYOUTS = {
    "demo": ("tinyfl/demo", "node01"),  # what `tinyfl demo` uses
    "shortest": ("tinyfl/f", "n"),  # one-letter fleet and node id: the floor
}


def delta(bits: int, per_row: bool) -> Tensor:
    rng = np.random.default_rng(0)
    if bits == 32:
        return Tensor.float32(rng.normal(0, 0.1, HEAD).astype(np.float32))
    qmax = (1 << (bits - 1)) - 1
    codes = rng.integers(-qmax, qmax + 1, HEAD)
    scales = np.full(HEAD[0] if per_row else 1, 0.01, np.float32)
    return Tensor.quantized(codes, scales, bits, per_row=per_row)


def packet(prefix: str, node_id: str, bits: int, per_row: bool, signed: bool) -> int:
    topic = Topics(prefix).update(node_id)
    update = Update(1, 100, 0.5, 0.9, 1.0, delta(bits, per_row))
    frame = encode(update, key=bytes(32), topic=topic) if signed else encode(update)
    return mqtt_publish_packet_size(topic, len(frame), 1)


def masked_packet(prefix: str, node_id: str, n_nodes: int, signed: bool = True) -> tuple[int, int]:
    """(mask bits, packet bytes) of a secure-aggregation UPDATE of 8-bit codes among n nodes."""
    bits = mask_bits_for(127, n_nodes)
    values = np.random.default_rng(0).integers(0, 1 << bits, HEAD).astype(np.uint32)
    topic = Topics(prefix).update(node_id)
    update = Update(1, 100, 0.5, 0.9, 1.0, Masked(bits, values))
    frame = encode(update, key=bytes(32), topic=topic) if signed else encode(update)
    return bits, mqtt_publish_packet_size(topic, len(frame), 1)


def fixed_part(prefix: str, node_id: str, signed: bool) -> dict[str, int]:
    """Everything of an UPDATE packet but the scales and the codes (docs/WIRE.md, UPDATE)."""
    topic = Topics(prefix).update(node_id)
    empty = Update(1, 100, 0.5, 0.9, 1.0, Tensor.quantized(np.zeros((0, 0), np.int8), [], 8,
                                                           per_row=True))
    frame = encode(empty, key=bytes(32), topic=topic) if signed else encode(empty)
    # the remaining-length field of a real 8-bit HAR update (2 bytes), not of this empty frame
    total = packet(prefix, node_id, 8, True, signed)
    scales_and_codes = 2 * HEAD[0] + HEAD[0] * HEAD[1]
    parts = {
        "mqtt_fixed_header": total - (2 + len(topic.encode()) + 2 + len(frame) + scales_and_codes),
        "topic": 2 + len(topic.encode()),
        "packet_id": 2,
        "frame_header": 6,
        "statistics": 4 + 4 + 3 * 2,  # round id, samples, loss/accuracy/norm as binary16
        "tensor_header": 6,
        "trailer": 16 if signed else 4,
    }
    parts["total"] = sum(parts.values())
    return parts


def measure() -> dict[str, Any]:
    out: dict[str, Any] = {"head": list(HEAD), "layouts": {}}
    for name, (prefix, node_id) in LAYOUTS.items():
        rows: dict[str, Any] = {"prefix": prefix, "node_id": node_id}
        for signed in (False, True):
            for per_row in (True, False):
                f32 = packet(prefix, node_id, 32, False, signed)
                sizes = {b: packet(prefix, node_id, b, per_row, signed) for b in (8, 4, 2)}
                key = f"{'tag' if signed else 'crc'}_{'per_row' if per_row else 'per_tensor'}"
                rows[key] = {"float32": f32, **{f"{b}bit": s for b, s in sizes.items()},
                             **{f"ratio_{b}bit": round(f32 / s, 2) for b, s in sizes.items()}}
            rows[f"fixed_{'tag' if signed else 'crc'}"] = fixed_part(prefix, node_id, signed)
        out["layouts"][name] = rows
    prefix, node_id = LAYOUTS["demo"]
    out["masked"] = {str(n): dict(zip(("mask_bits", "bytes"), masked_packet(prefix, node_id, n),
                                      strict=True)) for n in (2, 8, 33, 100, 1000)}
    return out


def markdown(res: dict[str, Any], when: str) -> str:
    lines = [
        "# Uplink bytes per node per round (wire version 2)",
        "",
        (f"Recorded {when} by `python bench/bench_uplink.py` ({platform.machine()}, Python "
         f"{platform.python_version()}). Whole MQTT PUBLISH packets (QoS 1) of one UPDATE of "
         f"the HAR head ({HEAD[0]} x {HEAD[1]}), encoded by the codec; `crc`: a fleet without "
         "keys, `tag`: a provisioned fleet (16-byte HMAC-SHA256 tag instead of the CRC, 12 "
         "bytes more). Raw numbers: `results/uplink.json`."),
        "",
        "| naming | trailer | scales | float32 | 8-bit | 4-bit | 2-bit | ratio 8 / 4 / 2 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rows in res["layouts"].values():
        for trailer in ("crc", "tag"):
            for mode in ("per_row", "per_tensor"):
                r = rows[f"{trailer}_{mode}"]
                lines.append(
                    f"| `{rows['prefix']}`, id `{rows['node_id']}` | {trailer} | "
                    f"{mode.replace('_', ' ')} | {r['float32']} B | {r['8bit']} B | {r['4bit']} B | "
                    f"{r['2bit']} B | {r['ratio_8bit']}x / {r['ratio_4bit']}x / {r['ratio_2bit']}x |")
    demo = res["layouts"]["demo"]
    fixed = demo["fixed_tag"]
    lines += [
        "",
        "## The fixed part of an UPDATE",
        "",
        ("Everything but the delta's scales and codes, for the demo's 31-byte topic "
         "`tinyfl/demo/nodes/node01/update` with a 16-byte tag (target: at most 80 bytes):"),
        "",
        "| part | bytes |",
        "|---|---|",
        *[f"| {k.replace('_', ' ')} | {v} |" for k, v in fixed.items() if k != "total"],
        f"| **total** | **{fixed['total']}** |",
        "",
        (f"With the CRC instead of the tag: {demo['fixed_crc']['total']} bytes. Version 1 "
         "carried 99 bytes here for the same topic with a CRC (7 + 31 MQTT, 16 frame header and "
         "CRC, 39 fields, 6 tensor header; bench/coordinator.md): the node id and model hash "
         "left the body (the topic and the round bind them), one loss replaced one per epoch, "
         "the statistics and scales became binary16, and the frame header lost its length and "
         "reserved bytes (the MQTT payload delimits the frame)."),
        "",
    ]
    lines += [
        "## Secure aggregation (`--secure-agg`)",
        "",
        ("A masked UPDATE of 8-bit codes carries b bits per value, b the fewest with 2^b > 2 n "
         "127 for n nodes in the round (docs/PRIVACY.md); demo naming, with the tag:"),
        "",
        "| nodes per round | mask bits | packet | vs the plain signed 8-bit update |",
        "|---|---|---|---|",
        *[f"| {n} | {m['mask_bits']} | {m['bytes']} B | "
          f"{m['bytes'] / demo['tag_per_row']['8bit']:.2f}x |" for n, m in res["masked"].items()],
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    res = measure()
    when = time.strftime("%Y-%m-%d")
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "uplink.json").write_text(json.dumps(res, indent=2) + "\n")
    (ROOT / "bench" / "uplink.md").write_text(markdown(res, when))
    print(markdown(res, when))
    return 0


if __name__ == "__main__":
    sys.exit(main())
