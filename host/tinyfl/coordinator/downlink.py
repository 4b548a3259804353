"""What the coordinator broadcasts each round: the head as it travels and the GLOBAL frame
(docs/WIRE.md), signed with the fleet key on a provisioned fleet."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from tinyfl.coordinator.config import EngineConfig
from tinyfl.coordinator.selection import global_seed, round_seed
from tinyfl.coordinator.task import Task
from tinyfl.quant import quantize
from tinyfl.rng import round_rng
from tinyfl.wire import Global, Keyring, SecAgg, Tensor, Topics, encode

__all__ = ["Downlink"]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]


class Downlink:
    """Builds one run's GLOBALs (task, settings and keys fixed)."""

    def __init__(self, task: Task, config: EngineConfig, prox_mu: float, topics: Topics,
                 keys: Keyring | None) -> None:
        self.task = task
        self.config = config
        self.prox_mu = prox_mu
        self.topics = topics
        self.keys = keys
        self._warned_broadcast = False

    def tensor(self, head: F32, number: int) -> Tensor:
        """The head as broadcast: float32, or 8-bit per-row codes with stochastic rounding from
        the round's seed (unbiased, so quantization noise does not drift the head one way)."""
        if self.config.downlink_bits == 32:
            return Tensor.float32(head)
        rng = round_rng(round_seed(self.config.seed, number), "coordinator", number)
        codes, scales = quantize(head, self.config.downlink_bits, 1, rng)
        return Tensor.quantized(codes, scales, self.config.downlink_bits, per_row=True)

    def frame(self, number: int, wire: int, selected: tuple[str, ...], head: Tensor,
              secagg: SecAgg | None = None) -> bytes:
        cfg = self.config
        return encode(
            Global(
                round_id=wire,
                model_hash=self.task.model_hash,
                embed_dim=self.task.embed_dim,
                n_classes=self.task.n_classes,
                epochs=cfg.epochs,
                batch_size=cfg.batch_size,
                lr=cfg.lr,
                prox_mu=self.prox_mu,
                clip_norm=cfg.clip_norm,
                uplink_bits=cfg.uplink_bits,
                uplink_scale_mode=cfg.uplink_scale_mode if cfg.uplink_bits != 32 else 0,
                seed=global_seed(cfg.seed, number, wire),
                selected=selected,
                head=head,
                secagg=secagg,
            ),
            key=None if self.keys is None else self.keys.fleet_key,
            topic=self.topics.global_,
        )

    def frame_for(self, number: int, wire: int, selected: tuple[str, ...], head: Tensor, *,
                  all_eligible: bool, max_payload: Callable[[str], int]) -> bytes:
        """GLOBAL with the selected ids, or with none ("every node") when every eligible node
        is selected anyway or when the list would not fit a selected node's receive buffer
        (`max_payload(id)`). Updates from nodes outside `selected` are dropped either way, so
        the choice changes bytes, not results."""
        if all_eligible:
            return self.frame(number, wire, (), head)
        frame = self.frame(number, wire, selected, head)
        smallest = min(max_payload(n) for n in selected)
        if len(frame) <= smallest:
            return frame
        if not self._warned_broadcast:
            self._warned_broadcast = True
            log.warning(
                "a GLOBAL listing %d selected nodes is %d bytes, more than a selected node "
                "accepts (%d); broadcasting to every node instead (unselected answers are "
                "dropped). Use fewer --clients-per-round or --downlink-bits 8 to avoid it.",
                len(selected), len(frame), smallest,
            )
        return self.frame(number, wire, (), head)
