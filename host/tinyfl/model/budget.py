"""Does a backbone fit a board? Flash and RAM of each target in one table, checked at build time.

A node image holds the node core (trainer, quantizer, codec, MQTT client, node), the C library,
its port and main, and the compiled backbone blobs (flash); in RAM the core's state, the port's
buffers, the backbone's scratch arena (`TINYFL_BACKBONE_ARENA`, at least the blob's planned arena)
and the sample cache (`TINYFL_CACHE_CAPACITY` embeddings of d int8 values plus a label each).

The core figures are measured on the qemu_cortex_m4 image (bench/firmware.md, from the linker
map): core 18,640 B flash / 13,576 B RAM, C library 4,798 / 101, port and main 1,410 / 4,116,
backbone kernels 4,383 B flash. Other boards' ports differ (the Arduino cores add their own
runtime, not counted here), so the check is a lower bound there and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BOARDS", "Board", "Budget", "check_budget"]

CORE_FLASH = 18_640 + 4_798 + 1_410 + 4_383  # core + C library + port/main + backbone kernels
CORE_RAM = 13_576 + 101 + 4_116
STACK = 8 * 1024
CACHE_CAPACITY = 512  # TINYFL_CACHE_CAPACITY default


@dataclass(frozen=True)
class Board:
    name: str
    flash: int  # bytes an application image may use
    ram: int  # bytes of RAM for static data and stack
    measured: bool  # whether the core figures were measured on this board's image
    note: str


BOARDS = {
    "qemu_cortex_m4": Board("qemu_cortex_m4", 512 * 1024, 128 * 1024, True,
                            "QEMU mps2-an386 as the linker script trims it (512 KiB / 128 KiB)"),
    "esp32dev": Board("esp32dev", 1_310_720, 180 * 1024, False,
                      "ESP32 default partition table app slot; static DRAM segment of ESP-IDF"),
    "nano33ble": Board("nano33ble", 983_040, 256 * 1024, False,
                       "nRF52840 1 MiB flash less the Arduino bootloader; 256 KiB RAM"),
}


@dataclass(frozen=True)
class Budget:
    board: Board
    flash_used: int
    ram_used: int
    lines: tuple[str, ...]

    @property
    def fits(self) -> bool:
        return self.flash_used <= self.board.flash and self.ram_used <= self.board.ram

    def report(self) -> str:
        verdict = "fits" if self.fits else "does NOT fit"
        head = (f"{self.board.name}: {verdict}: flash {self.flash_used:,} of {self.board.flash:,} "
                f"B, RAM {self.ram_used:,} of {self.board.ram:,} B")
        if not self.board.measured:
            head += " (core measured on qemu_cortex_m4; the board's Arduino runtime comes on top)"
        return "\n".join([head, *("  " + line for line in self.lines)])


def check_budget(board: str, blob_bytes: int, arena_bytes: int, embed_dim: int,
                 cache_capacity: int = CACHE_CAPACITY) -> Budget:
    """The flash and RAM a node with this backbone needs on `board`, with the parts listed."""
    if board not in BOARDS:
        raise ValueError(f"unknown board {board!r}; choose {', '.join(BOARDS)}")
    cache = cache_capacity * (embed_dim + 1)
    flash = CORE_FLASH + blob_bytes
    ram = CORE_RAM + STACK + arena_bytes + cache
    lines = (
        (f"flash: node core, C library, port and kernels {CORE_FLASH:,} + backbone blob "
         f"{blob_bytes:,}"),
        (f"RAM: node core and port {CORE_RAM:,} + stack {STACK:,} + backbone arena "
         f"{arena_bytes:,} + sample cache {cache:,} ({cache_capacity} x {embed_dim + 1})"),
    )
    return Budget(BOARDS[board], flash, ram, lines)
