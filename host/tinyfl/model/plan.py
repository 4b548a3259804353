"""The arena plan: where each intermediate tensor of a backbone lives in the node's one scratch
arena, computed once on the host so the node needs no planner and its RAM need is known before
flashing.

Why this way: a graph with branches (residual ADDs) keeps some tensors alive across several
layers, so the v1 scheme (alternate between the two ends of the arena) no longer works. Each
tensor is live from the step that writes it to the last step that reads it; two tensors whose
live ranges meet never share bytes, in particular a layer's inputs and its output never overlap
(no kernel runs in place). Placement is greedy by size, largest first, each tensor at the lowest
4-byte aligned offset that does not overlap a placed tensor it is live with (the usual "greedy by
size" offset assignment; optimal placement is NP-hard, and this is what TFLite Micro's greedy
memory planner does too). The model input and the embedding are the caller's buffers, never in
the arena.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyfl.model.graph import Graph
from tinyfl.model.layers import input_sizes, output_size
from tinyfl.model.tflite import ModelError, TfliteModel

__all__ = ["ALIGN", "REF_EMBEDDING", "REF_INPUT", "ArenaPlan", "arena_bytes", "plan_arena"]

ALIGN = 4
REF_INPUT = 0xFFFFFFFF  # a layer operand that is the caller's model input
REF_EMBEDDING = 0xFFFFFFFE  # ... that is the caller's embedding buffer
MAX_ARENA = 0xFFFFFFF0


@dataclass(frozen=True)
class ArenaPlan:
    """Per step: (input refs, output ref), each an arena offset or REF_INPUT / REF_EMBEDDING;
    `arena_bytes` is the scratch the node needs."""

    refs: tuple[tuple[tuple[int, ...], int], ...]
    arena_bytes: int
    offsets: dict[int, int]  # tensor index -> arena offset


def _live_ranges(graph: Graph) -> dict[int, tuple[int, int, int]]:
    """tensor -> (first step, last step, bytes) for every tensor the arena holds."""
    ranges: dict[int, tuple[int, int, int]] = {}
    for i, step in enumerate(graph.steps):
        if step.output != graph.output:
            ranges[step.output] = (i, i, output_size(step.layer))
        for t in step.inputs:
            if t in ranges:
                first, _, size = ranges[t]
                ranges[t] = (first, i, size)
    return ranges


def _place(ranges: dict[int, tuple[int, int, int]]) -> dict[int, int]:
    placed: list[tuple[int, int, int, int]] = []  # offset, end, first, last
    offsets: dict[int, int] = {}
    for t, (first, last, size) in sorted(ranges.items(), key=lambda kv: (-kv[1][2], kv[1][0])):
        busy = sorted((o, e) for o, e, f, la in placed if not (la < first or last < f))
        offset = 0
        for o, e in busy:
            if offset + size <= o:
                break
            offset = max(offset, -(-e // ALIGN) * ALIGN)
        offsets[t] = offset
        placed.append((offset, offset + size, first, last))
    return offsets


def plan_arena(graph: Graph) -> ArenaPlan:
    """The arena plan of a prepared graph (ModelError if it cannot be addressed)."""
    offsets = _place(_live_ranges(graph))
    total = max((offsets[t] + r[2] for t, r in _live_ranges(graph).items()), default=0)
    if total > MAX_ARENA:
        raise ModelError(f"arena of {total} bytes does not fit the blob's u32 offsets")

    def ref(t: int) -> int:
        if t == graph.input:
            return REF_INPUT
        if t == graph.output:
            return REF_EMBEDDING
        return offsets[t]

    refs = tuple((tuple(ref(t) for t in s.inputs), ref(s.output)) for s in graph.steps)
    for step, (ins, _) in zip(graph.steps, refs, strict=True):
        assert len(ins) == len(input_sizes(step.layer))
    return ArenaPlan(refs, total, offsets)


def arena_bytes(model: TfliteModel) -> int:
    """The scratch arena (bytes) the node needs to run this backbone, besides its input and
    embedding buffers: what the firmware blob's header declares. ModelError if the node cannot
    run the model."""
    from tinyfl.model.graph import prepare

    return plan_arena(prepare(model)).arena_bytes
