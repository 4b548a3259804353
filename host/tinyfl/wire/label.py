"""The LABEL frame's body (docs/WIRE.md, "LABEL"): a schedule of label intervals an operator sends
to one node, relative to the moment the node receives it.

    Label(round_id, seq, (LabelInterval(start_ms=0, duration_ms=5000, label=2), ...))

The codec checks what the spec states (seq >= 1, at most MAX_INTERVALS intervals, each at least
1 ms long, in order and not overlapping, labels >= NO_LABEL); whether a label is one of a node's
classes is the node's business, as it is for every shape the decoders cannot know.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyfl.errors import WireError
from tinyfl.wire.fields import Reader, Writer

__all__ = ["MAX_INTERVALS", "NO_LABEL", "Label", "LabelInterval", "read_label", "write_label"]

MAX_INTERVALS = 8
NO_LABEL = -1  # an interval during which the node has no label
MAX_LABEL = 0x7FFF
U32_MAX = 0xFFFFFFFF
U64_MAX = (1 << 64) - 1


@dataclass(frozen=True)
class LabelInterval:
    """`label` (a class, or NO_LABEL) from start_ms for duration_ms after the node's receipt."""

    start_ms: int
    duration_ms: int
    label: int

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.duration_ms


@dataclass(frozen=True)
class Label:
    """One node's new label schedule. `round_id`: the newest round the sender saw (0: none);
    `seq`: strictly increasing per node (the node refuses a seq not above its last)."""

    round_id: int
    seq: int
    intervals: tuple[LabelInterval, ...]


def _check_interval(iv: LabelInterval, previous_end: int, i: int) -> None:
    if iv.duration_ms < 1 or iv.end_ms > U32_MAX:
        raise WireError("bad_value", f"interval {i}: duration_ms must be >= 1 and end by 2^32 - 1 ms")
    if iv.start_ms < previous_end:
        raise WireError("bad_value", f"interval {i} starts before the previous one ends")
    if iv.label < NO_LABEL:
        raise WireError("bad_value", f"interval {i}: label {iv.label} (a class >= 0, or -1)")


def read_label(r: Reader) -> Label:
    round_id = r.u32("round_id")
    seq = int.from_bytes(r.take(8, "seq"), "little")
    if seq == 0:
        raise WireError("bad_value", "seq must be >= 1")
    n = r.u8("n")
    if n > MAX_INTERVALS:
        raise WireError("bad_value", f"{n} intervals, at most {MAX_INTERVALS}")
    intervals: list[LabelInterval] = []
    previous_end = 0
    for i in range(n):
        raw = r.take(10, f"interval {i}")
        iv = LabelInterval(int.from_bytes(raw[0:4], "little"), int.from_bytes(raw[4:8], "little"),
                           int.from_bytes(raw[8:10], "little", signed=True))
        _check_interval(iv, previous_end, i)
        previous_end = iv.end_ms
        intervals.append(iv)
    r.finish("LABEL")
    return Label(round_id, seq, tuple(intervals))


def write_label(w: Writer, msg: Label) -> None:
    """Writes the body; a field no decoder would accept raises WireError before any byte is
    packed that `struct` could not hold (a seq past 2^64, a label past i16)."""
    if not 1 <= msg.seq <= U64_MAX:
        raise WireError("bad_value", "seq must be 1..2^64 - 1")
    if len(msg.intervals) > MAX_INTERVALS:
        raise WireError("bad_value", f"{len(msg.intervals)} intervals, at most {MAX_INTERVALS}")
    w.pack("IQB", msg.round_id, msg.seq, len(msg.intervals), what="LABEL")
    for i, iv in enumerate(msg.intervals):
        if not NO_LABEL <= iv.label <= MAX_LABEL:
            raise WireError("bad_value", f"interval {i}: label {iv.label} (a class 0..32767, or -1)")
        w.pack("IIh", iv.start_ms, iv.duration_ms, iv.label, what=f"interval {i}")
