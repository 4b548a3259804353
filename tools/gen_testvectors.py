#!/usr/bin/env python3
"""Writes the golden wire vectors that both codecs are tested against (docs/WIRE.md).

    python tools/gen_testvectors.py           # (re)write testvectors/frames and testvectors/blobs
    python tools/gen_testvectors.py --check   # exit 1 if the files on disk differ from a fresh run

Deterministic: no randomness, no clock; running it twice gives identical bytes.

The bytes are built here straight from the spec with `struct`, not with the codec under test, so
the vectors are a second implementation. For each valid vector it writes:

  frames/NAME.bin          the frame
  frames/NAME.fields.txt   its fields in canonical text (tinyfl.wire.fields_text), computed here from
                           the inputs; the C++ test prints the same text from its own decoder
  frames/NAME.auth.txt     for a tagged frame: the topic and the (test) key it is signed with
  half.bin                 float32 -> binary16 conversions (u32 float bits, u16 half bits pairs)
  secagg/masks.txt         secure-aggregation round seeds and masks (docs/WIRE.md), one case a line
  secagg/noise.txt         node noise keys and discrete Gaussian samples (--dp distributed)
  frames/invalid/NAME.bin + NAME.reason   a frame each decoder must reject, and the status name
  labels/NAME.bin (.fields.txt, .auth.txt), labels/invalid/NAME.bin + NAME.reason   the same for
                           LABEL frames, which the firmware decodes but never encodes
  blobs/NAME.bin + NAME.fields.txt, blobs/invalid/NAME.bin + NAME.reason   the same for data blobs

and checks, before writing, that the Python codec decodes every valid vector to the same fields,
re-encodes it to the same bytes, and rejects every invalid one with the expected reason.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import struct
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "testvectors"
sys.path.insert(0, str(ROOT / "tools"))
from wire_spec import (
    GLOBAL,
    HELLO,
    INF,
    LABEL,
    NAN,
    REVEAL,
    TEST_KEY,
    TEST_TOPIC,
    UNMASK,
    UPDATE,
    BlobSpec,
    GlobalSpec,
    HelloSpec,
    LabelSpec,
    M,
    RevealSpec,
    T,
    UnmaskSpec,
    UpdateSpec,
    f16,
    f32,
    frame,
    head_8bit_per_row,
)

# ---------------------------------------------------------------------------------------------
# the vectors


Spec = HelloSpec | GlobalSpec | UpdateSpec | UnmaskSpec | RevealSpec | LabelSpec


def valid_frames() -> dict[str, Spec]:
    four_bit = T(4, 0, 3, 5, scales=[0.25], codes=list(range(-7, 8)))  # 15 values: 4 pad bits
    two_bit = T(2, 1, 3, 5, scales=[0.75, 0.0009765625, 3.0],
                codes=[(i % 3) - 1 for i in range(15)])  # 30 bits: 2 pad bits
    float_head = T(32, 0, 3, 5, values=[0.0, -0.0, 1.0, -1.5, 3.0e38, -3.0e38, 1.0e-45, 0.1,
                                        -0.2, 0.3, 1e-3, -1e-3, 42.0, 123456.789, -7.25])
    d64 = GlobalSpec(
        round_id=1000, embed_dim=64, n_classes=5, epochs=64, batch_size=1024, lr=0.01,
        prox_mu=0.001, clip_norm=2.0, uplink_bits=8, uplink_scale_mode=1, seed=0xFFFFFFFF,
        selected=[b"esp32-lab-07"],
        head=T(8, 1, 5, 65, scales=[0.004 * (j + 1) for j in range(5)],
               codes=[((i * 97 + 13) % 255) - 127 for i in range(5 * 65)]),
    )
    return {
        "hello": HelloSpec(),
        "hello_long_id_native": HelloSpec(
            node_id=b"Zz09_-abcdefghijklmnopqrstuvwxyz", fw_version=0x00FFFFFF, n_samples=0,
            free_ram=0xFFFFFFFF, max_payload=1, embed_dim=0, n_classes=65535, uplink_bits=0x01,
            board=0,
        ),
        "global_8bit_per_row": GlobalSpec(),
        "global_4bit_per_tensor": GlobalSpec(
            round_id=2, prox_mu=0.01, clip_norm=1.5, uplink_bits=4, uplink_scale_mode=0,
            selected=[b"node-01", b"node_02", b"Node3"], head=four_bit,
        ),
        "global_2bit": GlobalSpec(round_id=3, epochs=1, batch_size=1, uplink_bits=2, head=two_bit),
        "global_float32": GlobalSpec(round_id=4, lr=1e-4, uplink_bits=32, uplink_scale_mode=0,
                                     head=float_head),
        "global_d64_k5": d64,
        "update_8bit": UpdateSpec(),
        "update_4bit": UpdateSpec(
            round_id=8, loss=0.5, accuracy=1.0, update_norm=0.0,
            delta=T(4, 0, 3, 5, scales=[0.0625], codes=[7, -7, 0, 3, -3, 1, -1, 2, -2, 4, -4,
                                                         5, -5, 6, -6]),
        ),
        "update_2bit": UpdateSpec(
            round_id=9, loss=1.0, accuracy=0.0, update_norm=1.0e6,  # the norm saturates
            delta=T(2, 1, 2, 7, scales=[0.5, 0.25], codes=[1, -1, 0, 1, 1, -1, 0,
                                                           0, 0, -1, -1, 1, 0, 1]),
        ),
        "update_float32": UpdateSpec(
            round_id=10, loss=0.0,
            delta=T(32, 0, 3, 5, values=[(i - 7) * 0.015625 for i in range(15)]),
        ),
        "update_tagged": UpdateSpec(round_id=11, key=TEST_KEY),
        "hello_tagged": HelloSpec(key=TEST_KEY),
        "global_tagged": GlobalSpec(round_id=12, key=TEST_KEY),
        # scales that binary16 rounds (ties, a subnormal, saturation) and a tiny one that is 0
        "global_secagg": GlobalSpec(round_id=20, clip_norm=1.0, selected=[b"node-01", b"n2", b"n3"],
                                    secagg=(17, 0, 2, 1.0 / 127.0, 70000), key=TEST_KEY),
        # 9-bit values (the smallest modulus) over 15 values: 135 bits, 1 pad bit; 32-bit too
        "update_masked_9bit": UpdateSpec(round_id=20, masked=M(9, 3, 5, [(i * 97) % 512
                                                                         for i in range(15)])),
        "update_masked_32bit": UpdateSpec(round_id=20, key=TEST_KEY, masked=M(
            32, 2, 3, [0, 1, 0xFFFFFFFF, 0x80000000, 12345678, 0x7FFFFFFF])),
        "unmask": UnmaskSpec(key=TEST_KEY),
        "reveal": RevealSpec(key=TEST_KEY),
        "update_half_scales": UpdateSpec(
            round_id=13,
            delta=T(8, 1, 4, 2, scales=[1.0009765625 + 2 ** -11, 6.0e-8, 1.0e9, 1.0e-9],
                    codes=[1, -1, 127, -127, 3, 4, 5, 6]),
        ),
    }


def invalid_frames() -> dict[str, tuple[bytes, str]]:
    hello = HelloSpec()
    hb = hello.body()
    g = GlobalSpec
    u = UpdateSpec
    valid_hello = hello.to_bytes()
    four_bit_pad = T(4, 0, 3, 5, scales=[0.25], codes=list(range(-7, 8)), pad_value=0x1)
    two_bit_pad = T(2, 1, 3, 5, scales=[0.75, 0.5, 3.0], codes=[0] * 15, pad_value=0x2)
    head = head_8bit_per_row
    out: dict[str, tuple[bytes, str]] = {
        # frame
        "empty": (b"", "truncated"),
        "short_header": (valid_hello[:5], "truncated"),
        "bad_magic": (frame(HELLO, hb, magic=b"TX"), "bad_magic"),
        "bad_version": (frame(HELLO, hb, version=3), "bad_version"),
        "version_1": (frame(HELLO, hb, version=1), "bad_version"),
        "bad_type_9": (frame(9, hb), "bad_type"),
        "bad_type_0": (frame(0, hb), "bad_type"),
        "unknown_flag": (frame(HELLO, hb, flags=0x02), "bad_value"),
        "masked_hello": (frame(HELLO, hb, flags=0x01), "bad_value"),
        "masked_unmask": (frame(UNMASK, UnmaskSpec().body(), flags=0x01), "bad_value"),
        "bad_type_7": (frame(7, hb), "bad_type"),
        "masked_and_unknown_flag": (frame(HELLO, hb, flags=0x81), "bad_value"),
        "bad_auth_32": (frame(HELLO, hb, auth=32), "bad_value"),
        "bad_auth_4": (frame(HELLO, hb, auth=4), "bad_value"),
        "trailing_bytes": (valid_hello + b"\x00", "bad_crc"),
        "bad_crc": (frame(HELLO, hb, crc_xor=0x00000001), "bad_crc"),
        "truncated_frame": (valid_hello[:-1], "bad_crc"),
        "no_room_for_crc": (b"TF\x02\x01\x00\x00\x00\x00\x00", "truncated"),
        "no_room_for_tag": (frame(UPDATE, b"", key=TEST_KEY)[:-1], "truncated"),
        "truncated_body": (frame(HELLO, hb[:-1]), "truncated"),
        "body_trailing": (frame(HELLO, hb + b"\x00"), "bad_length"),
        "order_version_before_crc": (frame(HELLO, hb, version=1, crc_xor=1), "bad_version"),
        "order_crc_before_body": (frame(GLOBAL, g(epochs=0).body(), crc_xor=1), "bad_crc"),
        # hello
        "hello_node_id_bad_char": (replace(hello, node_id=b"node 01").to_bytes(), "bad_value"),
        "hello_node_id_slash": (replace(hello, node_id=b"node/01").to_bytes(), "bad_value"),
        "hello_node_id_empty": (replace(hello, node_id=b"").to_bytes(), "bad_value"),
        "hello_node_id_33": (replace(hello, node_id=b"a" * 33).to_bytes(), "bad_value"),
        "hello_node_id_non_ascii": (replace(hello, node_id="nödé".encode()).to_bytes(), "bad_value"),
        "hello_board_4": (replace(hello, board=4).to_bytes(), "bad_value"),
        "hello_uplink_unknown_bit": (replace(hello, uplink_bits=0x1F).to_bytes(), "bad_value"),
        # global
        "global_round_zero": (g(round_id=0).to_bytes(), "bad_value"),
        "global_epochs_0": (g(epochs=0).to_bytes(), "bad_value"),
        "global_epochs_65": (g(epochs=65).to_bytes(), "bad_value"),
        "global_batch_0": (g(batch_size=0).to_bytes(), "bad_value"),
        "global_batch_1025": (g(batch_size=1025).to_bytes(), "bad_value"),
        "global_lr_0": (g(lr=0.0).to_bytes(), "bad_value"),
        "global_lr_negative": (g(lr=-0.01).to_bytes(), "bad_value"),
        "global_lr_nan": (g(lr=NAN).to_bytes(), "non_finite"),
        "global_lr_inf": (g(lr=INF).to_bytes(), "non_finite"),
        "global_prox_mu_negative": (g(prox_mu=-1.0).to_bytes(), "bad_value"),
        "global_clip_norm_nan": (g(clip_norm=NAN).to_bytes(), "non_finite"),
        "global_uplink_bits_3": (g(uplink_bits=3).to_bytes(), "bad_value"),
        "global_uplink_scale_mode_2": (g(uplink_scale_mode=2).to_bytes(), "bad_value"),
        "global_reserved_nonzero": (g(reserved=1).to_bytes(), "bad_value"),
        "global_selected_bad_id": (g(selected=[b"ok", b"a+b"]).to_bytes(), "bad_value"),
        "global_selected_missing": (frame(GLOBAL, g(selected=[b"node-01"], n_selected=2).body()
                                          [: -len(head().to_bytes())]), "truncated"),
        "global_head_rows_mismatch": (g(n_classes=4).to_bytes(), "bad_value"),
        "global_head_cols_mismatch": (g(embed_dim=5).to_bytes(), "bad_value"),
        "global_bits_5": (g(head=replace(head(), bits=5)).to_bytes(), "bad_value"),
        "global_scale_mode_2": (g(head=replace(head(), scale_mode=2)).to_bytes(), "bad_value"),
        "global_float_scale_mode_1": (
            g(head=T(32, 1, 3, 5, scales=[1.0, 1.0, 1.0], values=[0.0] * 15)).to_bytes(),
            "bad_value"),
        "global_code_minus128": (g(head=replace(head(), codes=[-128] + head().codes[1:]))
                                 .to_bytes(), "bad_value"),
        "global_code_minus8": (g(head=T(4, 0, 3, 5, scales=[0.25], codes=[0] * 14 + [-8]))
                               .to_bytes(), "bad_value"),
        "global_code_minus2": (g(head=T(2, 0, 3, 5, scales=[0.25], codes=[1, -2] + [0] * 13))
                               .to_bytes(), "bad_value"),
        "global_padding_nonzero_4bit": (g(head=four_bit_pad).to_bytes(), "bad_value"),
        "global_padding_nonzero_2bit": (g(head=two_bit_pad).to_bytes(), "bad_value"),
        "global_scale_nan": (g(head=replace(head(), scales=[0.5, NAN, 0.5])).to_bytes(),
                             "non_finite"),
        "global_scale_inf": (g(head=replace(head(), scales=[INF, 0.5, 0.5])).to_bytes(),
                             "non_finite"),
        "global_scale_negative": (g(head=replace(head(), scales=[0.5, -0.5, 0.5])).to_bytes(),
                                  "bad_value"),
        "global_scale_negative_then_nan": (
            g(head=replace(head(), scales=[-0.5, NAN, 0.5])).to_bytes(), "bad_value"),
        "global_float_value_nan": (g(head=T(32, 0, 3, 5, values=[0.0] * 7 + [NAN] + [0.0] * 7))
                                   .to_bytes(), "non_finite"),
        "global_float_value_inf": (g(head=T(32, 0, 3, 5, values=[-INF] + [0.0] * 14))
                                   .to_bytes(), "non_finite"),
        "global_head_data_truncated": (frame(GLOBAL, g().body()[:-1]), "truncated"),
        "global_order_epochs_before_lr": (g(epochs=0, lr=NAN).to_bytes(), "bad_value"),
        # update
        "update_round_zero": (u(round_id=0).to_bytes(), "bad_value"),
        "update_stats_truncated": (frame(UPDATE, u().body()[:11]), "truncated"),
        "update_loss_nan": (u(loss=NAN).to_bytes(), "non_finite"),
        "update_loss_inf": (u(loss=INF).to_bytes(), "non_finite"),
        "update_loss_negative": (u(loss=-0.5).to_bytes(), "bad_value"),
        "update_accuracy_above_1": (u(accuracy=1.0625).to_bytes(), "bad_value"),
        "update_accuracy_nan": (u(accuracy=NAN).to_bytes(), "non_finite"),
        "update_norm_inf": (u(update_norm=INF).to_bytes(), "non_finite"),
        "update_norm_negative": (u(update_norm=-1.0).to_bytes(), "bad_value"),
        "update_code_minus128": (u(delta=T(8, 0, 1, 3, scales=[1.0], codes=[0, -128, 0]))
                                 .to_bytes(), "bad_value"),
        "update_float_value_nan": (u(delta=T(32, 0, 1, 3, values=[0.0, 0.0, NAN])).to_bytes(),
                                   "non_finite"),
        "update_bits_0": (u(delta=T(0, 0, 0, 0)).to_bytes(), "bad_value"),
        "update_tensor_header_truncated": (frame(UPDATE, u().body()[: -(15 + 6 + 2)]),
                                           "truncated"),
        # secure aggregation
        "global_secagg_one_selected": (g(selected=[b"n1"], secagg=(17, 0, 2, 0.01, 0)).to_bytes(),
                                       "bad_value"),
        "global_secagg_threshold_1": (g(selected=[b"a", b"b"], secagg=(17, 0, 1, 0.01, 0))
                                      .to_bytes(), "bad_value"),
        "global_secagg_threshold_above_n": (g(selected=[b"a", b"b"], secagg=(17, 0, 3, 0.01, 0))
                                            .to_bytes(), "bad_value"),
        "global_secagg_bits_8": (g(selected=[b"a", b"b"], secagg=(8, 0, 2, 0.01, 0)).to_bytes(),
                                 "bad_value"),
        "global_secagg_bits_33": (g(selected=[b"a", b"b"], secagg=(33, 0, 2, 0.01, 0)).to_bytes(),
                                  "bad_value"),
        "global_secagg_reserved": (g(selected=[b"a", b"b"], secagg=(17, 1, 2, 0.01, 0)).to_bytes(),
                                   "bad_value"),
        "global_secagg_scale_0": (g(selected=[b"a", b"b"], secagg=(17, 0, 2, 0.0, 0)).to_bytes(),
                                  "bad_value"),
        "global_secagg_scale_nan": (g(selected=[b"a", b"b"], secagg=(17, 0, 2, NAN, 0)).to_bytes(),
                                    "non_finite"),
        "global_secagg_noise_var_above": (g(selected=[b"a", b"b"],
                                             secagg=(17, 0, 2, 0.01, (1 << 24) + 1)).to_bytes(),
                                           "bad_value"),
        "global_secagg_missing": (frame(GLOBAL, g(selected=[b"a", b"b"]).body(), flags=1),
                                  "truncated"),
        "update_masked_bits_8": (u(masked=M(8, 1, 2, [1, 2])).to_bytes(), "bad_value"),
        "update_masked_padding": (u(masked=M(9, 1, 3, [1, 2, 3], pad_value=1)).to_bytes(),
                                  "bad_value"),
        "update_masked_truncated": (frame(UPDATE, u(masked=M(16, 2, 2, [1, 2, 3, 4])).body()[:-1],
                                          flags=1), "truncated"),
        "unmask_round_zero": (UnmaskSpec(round_id=0).to_bytes(), "bad_value"),
        "unmask_no_survivors": (UnmaskSpec(n_survivors=0).to_bytes(), "bad_value"),
        "unmask_no_dropped": (UnmaskSpec(dropped=[]).to_bytes(), "bad_value"),
        "unmask_bad_id": (UnmaskSpec(dropped=[b"a b"]).to_bytes(), "bad_value"),
        "reveal_empty": (RevealSpec(seeds=[]).to_bytes(), "bad_value"),
        "reveal_short_seed": (frame(REVEAL, RevealSpec().body()[:-1]), "truncated"),
        "reveal_trailing": (frame(REVEAL, RevealSpec().body() + b"\x00"), "bad_length"),
    }
    return out


def valid_labels() -> dict[str, LabelSpec]:
    eight = [(i * 1000, 1000, i % 3 - 1) for i in range(8)]  # back to back, the most allowed
    return {
        "label": LabelSpec(key=TEST_KEY),
        "label_crc": LabelSpec(round_id=0, seq=1),  # a fleet without keys, before any round
        "label_clear": LabelSpec(seq=0xFFFFFFFFFFFFFFFF, intervals=[], key=TEST_KEY),
        "label_eight": LabelSpec(intervals=eight, key=TEST_KEY),
        "label_extremes": LabelSpec(intervals=[(0, 1, 32767), (0xFFFFFFFE, 1, -1)],
                                    key=TEST_KEY),
    }


def invalid_labels() -> dict[str, tuple[bytes, str]]:
    lbl = LabelSpec
    nine = [(i * 1000, 1000, 1) for i in range(9)]
    return {
        "label_masked": (frame(LABEL, lbl().body(), flags=0x01), "bad_value"),
        "label_seq_zero": (lbl(seq=0).to_bytes(), "bad_value"),
        "label_nine_intervals": (lbl(intervals=nine).to_bytes(), "bad_value"),
        # the count is checked before the intervals: 9 announced, none present
        "label_count_before_intervals": (lbl(n=9, intervals=[]).to_bytes(), "bad_value"),
        "label_duration_zero": (lbl(intervals=[(0, 0, 1)]).to_bytes(), "bad_value"),
        "label_end_past_u32": (lbl(intervals=[(0xFFFFFFFF, 1, 1)]).to_bytes(), "bad_value"),
        "label_overlap": (lbl(intervals=[(0, 2000, 1), (1999, 10, 2)]).to_bytes(), "bad_value"),
        "label_unsorted": (lbl(intervals=[(5000, 10, 1), (0, 10, 2)]).to_bytes(), "bad_value"),
        "label_below_minus_one": (lbl(intervals=[(0, 10, -2)]).to_bytes(), "bad_value"),
        "label_interval_truncated": (frame(LABEL, lbl().body()[:-1]), "truncated"),
        "label_missing_interval": (lbl(n=4).to_bytes(), "truncated"),
        "label_trailing": (frame(LABEL, lbl().body() + b"\x00"), "bad_length"),
        "label_seq_truncated": (frame(LABEL, lbl().body()[:11]), "truncated"),
    }


def auth_invalid_frames() -> dict[str, tuple[bytes, str, str]]:
    """Frames a receiver holding TEST_KEY must refuse: (bytes, the topic they arrive on, reason)."""
    body = UpdateSpec().body()
    signed = frame(UPDATE, body, key=TEST_KEY)
    other_key = hashlib.sha256(b"tinyfl another key").digest()
    return {
        "tag_flipped": (frame(UPDATE, body, key=TEST_KEY, tag_xor=0x01), TEST_TOPIC, "bad_tag"),
        "other_topic": (signed, TEST_TOPIC.replace("node-01", "node-02"), "bad_tag"),
        "other_key": (frame(UPDATE, body, key=other_key), TEST_TOPIC, "bad_tag"),
        "body_changed": (signed[:6] + bytes([signed[6] ^ 1]) + signed[7:], TEST_TOPIC,
                         "bad_tag"),
        "crc_frame": (frame(UPDATE, body), TEST_TOPIC, "unauthenticated"),
        # the header is checked before the tag: a malformed frame never costs an HMAC
        "tagged_version_1": (frame(UPDATE, body, key=TEST_KEY, version=1), TEST_TOPIC,
                             "bad_version"),
    }


def mask_cases() -> bytes:
    """Lines `pair_seed round_id bits n round_seed v0,v1,...`: what a pair's mask is, computed
    here from the spec with hmac (HKDF-Expand written out), for every width of value and a
    mask long enough to cross into a second 8160-byte chunk."""

    def expand(prk: bytes, info: bytes, length: int) -> bytes:
        out, block, i = b"", b"", 1
        while len(out) < length:
            block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
            out, i = out + block, i + 1
        return out[:length]

    lines = []
    for k, (bits, n) in enumerate([(9, 15), (16, 390), (17, 7), (24, 100), (32, 2100), (15, 2)]):
        seed = hashlib.sha256(b"tinyfl pair seed %d" % k).digest()
        round_id = 0x01020304 * (k + 1) & 0xFFFFFFFF
        r = expand(seed, b"tinyfl round" + struct.pack("<I", round_id), 32)
        width = (bits + 7) // 8
        stream = b""
        chunk = 0
        while len(stream) < n * width:
            stream += expand(r, b"tinyfl mask" + struct.pack("<H", chunk), 8160)
            chunk += 1
        values = [int.from_bytes(stream[i * width:(i + 1) * width], "little") % (1 << bits)
                  for i in range(n)]
        lines.append(f"{seed.hex()} {round_id} {bits} {n} {r.hex()} "
                     + ",".join(str(v) for v in values))
    return ("\n".join(lines) + "\n").encode()


def noise_cases() -> bytes:
    """Lines `key s1,s2,... k` (a node's noise key from its pair seeds) and `noise k round var n
    v0,v1,...` (its discrete Gaussian noise of a round), from tinyfl.strategy.ddp: small and
    large variances, the largest the wire allows, and a case long enough to read a second
    8160-byte chunk of the bit stream."""
    from tinyfl.strategy.ddp import NOISE_VAR_MAX, node_noise, noise_key

    lines = []
    seeds = [hashlib.sha256(b"tinyfl pair seed %d" % k).digest() for k in range(3)]
    key = noise_key(seeds)
    lines.append(f"key {','.join(s.hex() for s in seeds)} {key.hex()}")
    for k, (var, n) in enumerate([(8, 3000), (70000, 390), (1, 50), (NOISE_VAR_MAX, 20),
                                  (1234, 64)]):
        round_id = 0x01020304 * (k + 1) & 0xFFFFFFFF
        values = node_noise(key, round_id, n, var)
        lines.append(f"noise {key.hex()} {round_id} {var} {n} "
                     + ",".join(str(int(v)) for v in values))
    return ("\n".join(lines) + "\n").encode()


def half_cases() -> bytes:
    """(float32 bits u32, binary16 bits u16) pairs: the conversion both sides must agree on."""
    values = [0.0, -0.0, 1.0, -1.0, 65504.0, 65519.0, 65520.0, 1.0e9, -1.0e9, 3.4e38,
              2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -25, 2.0 ** -26, 2.0 ** -14, 2.0 ** -14 - 2.0 ** -25,
              1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, 1.0e-9, 6.0e-8, 0.1, 1.0 / 127.0]
    x = 0x12345678  # a fixed LCG: many more values, deterministically
    for _ in range(2000):
        x = (x * 1664525 + 1013904223) & 0xFFFFFFFF
        exponent = 97 + (x >> 8) % 48  # 2^-30 .. 2^17: subnormal halves to saturation
        bits = (x & 0x807FFFFF) | (exponent << 23)
        values.append(struct.unpack("<f", struct.pack("<I", bits))[0])
    out = b""
    for v in values:
        out += struct.pack("<I", struct.unpack("<I", f32(v))[0]) + f16(v)
    return out


def valid_blobs() -> dict[str, BlobSpec]:
    features = BlobSpec(1, 3, 1.0 / 255.0, -128, [0, 1, 2, 1, 0],
                        [[(i * 7 + j * 31) % 256 - 128 for j in range(7)] for i in range(5)])
    raw = BlobSpec(2, 6, 0.05, 0, [5, 0, 3, 2],
                   [[(i * 13 - j * 5) % 256 - 128 for j in range(12)] for i in range(4)])
    empty = BlobSpec(1, 2, 0.5, 3, [], [], dim=4)
    return {"features": features, "raw_windows": raw, "empty": empty}


def invalid_blobs() -> dict[str, tuple[bytes, str]]:
    base = valid_blobs()["features"]
    good = base.to_bytes()
    corrupt = bytearray(good)
    corrupt[40] ^= 0x10
    return {
        "corrupt_crc": (bytes(corrupt), "bad_crc"),
        "truncated": (good[:-1], "truncated"),
        "short_header": (good[:20], "truncated"),
        "bad_magic": (replace(base, magic=b"TFDX").to_bytes(), "bad_magic"),
        "bad_version": (replace(base, version=2).to_bytes(), "bad_version"),
        "bad_kind": (replace(base, kind=3).to_bytes(), "bad_value"),
        "reserved_nonzero": (replace(base, reserved=1).to_bytes(), "bad_value"),
        "label_out_of_range": (replace(base, labels=[0, 1, 3, 1, 0]).to_bytes(), "bad_value"),
        "padding_nonzero": (replace(base, pad_value=1).to_bytes(), "bad_value"),
        "scale_zero": (replace(base, scale=0.0).to_bytes(), "bad_value"),
        "scale_negative": (replace(base, scale=-0.5).to_bytes(), "bad_value"),
        "scale_nan": (replace(base, scale=NAN).to_bytes(), "non_finite"),
        "zero_point_200": (replace(base, zero_point=200).to_bytes(), "bad_value"),
        "dim_zero": (BlobSpec(1, 3, 0.5, 0, [0, 1], [[], []], dim=0).to_bytes(), "bad_value"),
        "n_classes_zero": (replace(base, n_classes=0, labels=[0] * 5).to_bytes(), "bad_value"),
    }


# ---------------------------------------------------------------------------------------------
# output


def build() -> dict[Path, bytes]:
    sys.path.insert(0, str(ROOT / "host"))
    from tinyfl.errors import WireError
    from tinyfl.wire import DataBlob, decode, encode, fields_text, open_frame

    files: dict[Path, bytes] = {}
    problems: list[str] = []
    valid = [(f"frames/{n}", s) for n, s in valid_frames().items()]
    valid += [(f"labels/{n}", s) for n, s in valid_labels().items()]
    for name, spec in valid:
        data = spec.to_bytes()
        text = spec.fields()
        try:
            msg = open_frame(data, spec.topic(), spec.key)
            if fields_text(msg) != text:
                problems.append(f"{name}: Python decodes other fields")
            if encode(msg, key=spec.key, topic=spec.topic()) != data:
                problems.append(f"{name}: Python re-encodes other bytes")
        except WireError as exc:
            problems.append(f"{name}: Python rejects it: {exc}")
        files[OUT / f"{name}.bin"] = data
        files[OUT / f"{name}.fields.txt"] = text.encode()
        if spec.key is not None:
            files[OUT / f"{name}.auth.txt"] = auth_text(spec.topic(), spec.key)
    for name, (data, topic, reason) in auth_invalid_frames().items():
        try:
            open_frame(data, topic, TEST_KEY)
            problems.append(f"auth_invalid/{name}: Python accepts it")
        except WireError as exc:
            if exc.reason != reason:
                problems.append(f"auth_invalid/{name}: Python says {exc.reason}, not {reason}")
        files[OUT / "frames" / "auth_invalid" / f"{name}.bin"] = data
        files[OUT / "frames" / "auth_invalid" / f"{name}.reason"] = (reason + "\n").encode()
        files[OUT / "frames" / "auth_invalid" / f"{name}.auth.txt"] = auth_text(topic, TEST_KEY)
    files[OUT / "half.bin"] = half_cases()
    files[OUT / "secagg" / "masks.txt"] = mask_cases()
    files[OUT / "secagg" / "noise.txt"] = noise_cases()
    invalid = [(f"frames/invalid/{n}", c) for n, c in invalid_frames().items()]
    invalid += [(f"labels/invalid/{n}", c) for n, c in invalid_labels().items()]
    for name, (data, reason) in invalid:
        try:
            decode(data)
            problems.append(f"{name}: Python accepts it")
        except WireError as exc:
            if exc.reason != reason:
                problems.append(f"{name}: Python says {exc.reason}, expected {reason}")
        files[OUT / f"{name}.bin"] = data
        files[OUT / f"{name}.reason"] = (reason + "\n").encode()
    for name, blob in valid_blobs().items():
        data = blob.to_bytes()
        try:
            if DataBlob.from_bytes(data).to_bytes() != data:
                problems.append(f"blob {name}: Python re-encodes other bytes")
        except WireError as exc:
            problems.append(f"blob {name}: Python rejects it: {exc}")
        files[OUT / "blobs" / f"{name}.bin"] = data
        files[OUT / "blobs" / f"{name}.fields.txt"] = blob.fields().encode()
    for name, (data, reason) in invalid_blobs().items():
        try:
            DataBlob.from_bytes(data)
            problems.append(f"blob invalid/{name}: Python accepts it")
        except WireError as exc:
            if exc.reason != reason:
                problems.append(f"blob invalid/{name}: Python says {exc.reason}, expected {reason}")
        files[OUT / "blobs" / "invalid" / f"{name}.bin"] = data
        files[OUT / "blobs" / "invalid" / f"{name}.reason"] = (reason + "\n").encode()
    if problems:
        raise SystemExit("the Python codec disagrees with the spec vectors:\n  " + "\n  ".join(problems))
    return files


def auth_text(topic: str, key: bytes) -> bytes:
    return f"topic={topic}\nkey={key.hex()}\n".encode()


def owned(directory: Path) -> list[Path]:
    return [p for p in directory.glob("*") if p.suffix in (".bin", ".txt", ".reason")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the files on disk")
    args = parser.parse_args()
    files = build()
    dirs = {p.parent for p in files}
    if args.check:
        stale = [p for d in dirs for p in owned(d) if p not in files]
        differ = [p for p, b in files.items() if not p.exists() or p.read_bytes() != b]
        for p in stale + differ:
            print(f"out of date: {p.relative_to(ROOT)}")
        return 1 if stale or differ else 0
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        for p in owned(d):
            if p not in files:
                p.unlink()
    for p, b in sorted(files.items()):
        p.write_bytes(b)
    print(f"wrote {len(files)} files under {OUT.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
