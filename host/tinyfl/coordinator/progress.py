"""What a person at a terminal sees: one live line per round, then a summary table.

On a TTY the current round's line updates in place (answers so far, seconds elapsed) and stays
on screen when the round closes, with its accuracy and bytes. Anywhere else (CI logs, pipes,
systemd) the live lines would be noise, so nothing is printed per round: metrics.jsonl has it all.
The summary table is the command's result and is printed either way.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

__all__ = ["Progress", "format_bytes", "summary_table"]

LIVE_INTERVAL = 0.1  # seconds between redraws of the live line


def format_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * float(v):5.1f}%"


def _num(v: Any, fmt: str) -> str:
    return "-" if v is None else format(float(v), fmt)


def round_line(record: Mapping[str, Any], rounds: int) -> str:
    """`round  3/10  answered 8/8  acc 81.2%  loss 0.412  up 4.1 kB  down 13.0 kB  0.52 s`,
    with `  eps 1.23` after it in a differentially private run (epsilon spent so far)."""
    head = f"round {record['round']:>3}/{rounds}"
    eps = f"  eps {_num(record['epsilon'], '.3g')}" if "epsilon" in record else ""
    if record.get("status") == "skipped":
        return f"{head}  skipped: {record.get('reason', '')}{eps}"
    return (
        f"{head}  answered {record['answered']}/{record['selected']}"
        f"  acc {_pct(record.get('test_accuracy'))}"
        f"  loss {_num(record.get('train_loss'), '.3f')}"
        f"  up {format_bytes(record.get('bytes_up'))}"
        f"  down {format_bytes(record.get('bytes_down'))}"
        f"  {record.get('wall_time_s', 0.0):.2f} s{eps}"
    )


class Progress:
    """Live per-round lines on `stream` when `live` (a TTY), silent otherwise."""

    def __init__(self, stream: TextIO, *, live: bool, rounds: int) -> None:
        self.stream = stream
        self.live = live
        self.rounds = rounds
        self._last_draw = 0.0

    def _draw(self, text: str, *, force: bool = False) -> None:
        if not self.live:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < LIVE_INTERVAL:
            return
        self._last_draw = now
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()

    def waiting(self, eligible: int, online: int, wanted: int) -> None:
        self._draw(f"waiting for nodes: {eligible} eligible of {online} online, want {wanted}")

    def collecting(self, round_no: int, answered: int, selected: int, elapsed: float) -> None:
        self._draw(
            f"round {round_no:>3}/{self.rounds}  answered {answered}/{selected}  {elapsed:.1f} s"
        )

    def round_done(self, record: Mapping[str, Any]) -> None:
        if self.live:
            self._draw(round_line(record, self.rounds), force=True)
            self.stream.write("\n")
            self.stream.flush()

    def clear(self) -> None:
        if self.live:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def summary_table(records: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> str:
    """A plain-text table of every round, then the final per-class F1 and totals; with an
    `epsilon` column (spent after the round, at the record's dp_delta) in a private run."""
    if not records:
        return "no rounds were run\n"
    private = any("epsilon" in r for r in records)
    header = (
        f"{'round':>5} {'status':>7} {'answered':>9} {'late':>5} {'drop':>5} {'rej':>4} "
        f"{'train_loss':>10} {'test_acc':>8} {'macro_f1':>8} {'up':>9} {'down':>9} {'time':>7}"
        + (f" {'epsilon':>8}" if private else "")
    )
    lines = [header, "-" * len(header)]
    for r in records:
        answered = f"{r.get('answered', 0)}/{r.get('selected', 0)}"
        lines.append(
            f"{r['round']:>5} {r.get('status', ''):>7} {answered:>9} {r.get('late', 0):>5} "
            f"{r.get('dropped', 0):>5} {r.get('rejected', 0):>4} "
            f"{_num(r.get('train_loss'), '.4f'):>10} {_pct(r.get('test_accuracy')):>8} "
            f"{_num(r.get('macro_f1'), '.3f'):>8} {format_bytes(r.get('bytes_up')):>9} "
            f"{format_bytes(r.get('bytes_down')):>9} {r.get('wall_time_s', 0.0):>6.2f}s"
            + (f" {_num(r.get('epsilon'), '.3f'):>8}" if private else "")
        )
    last = records[-1]
    closed = sum(1 for r in records if r.get("status") == "closed")
    up = sum(int(r.get("bytes_up") or 0) for r in records)
    down = sum(int(r.get("bytes_down") or 0) for r in records)
    lines.append("-" * len(header))
    lines.append(
        f"{closed} of {len(records)} rounds closed; {format_bytes(up)} up, "
        f"{format_bytes(down)} down; final test accuracy {_pct(last.get('test_accuracy')).strip()}"
    )
    if private and last.get("epsilon") is not None:
        lines.append(f"privacy: ({float(last['epsilon']):.3f}, {last.get('dp_delta')})-DP at the "
                     f"node level after {last.get('dp_rounds')} charged round(s)")
    f1 = last.get("f1") or {}
    if f1:
        lines.append(
            "final F1: " + ", ".join(f"{name} {_num(f1.get(name), '.3f')}" for name in class_names)
        )
    return "\n".join(lines) + "\n"
