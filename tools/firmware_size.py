#!/usr/bin/env python3
"""Flash and RAM per component of a firmware image, read from the GNU ld map file.

The PlatformIO build of `qemu_cortex_m4` runs this after linking, so every build prints where the
bytes go. With --check it also enforces the node's budgets and fails the build when an allocator
(malloc/free/operator new/_sbrk) got linked into the image:

  core (trainer, quantizer, codec, MQTT client, node, crypto): at most 24 KiB flash and 16 KiB RAM,
  not counting the sample cache, the model, the backbone and the stack;
  privacy (secure aggregation and the noise of distributed DP: secagg.o, hkdf.o, wire_secagg.o,
  noise.o), optional code outside the core: at most 6 KiB flash and 1 KiB RAM.

The backbone (int8 kernels, model registry, window loader) and its scratch are reported on their
own lines: the model build keeps weights within 48 KB and activations within 16 KB, and
TINYFL_BACKBONE_ARENA sizes the scratch the node reserves. The DSP stage a model may carry
(tinyfl/dsp.h, dsp_stage.h) is its own line too; its work buffers share the backbone's scratch.
The persisted state (state_store.o, node_state.o) is the "persist" line, outside the core budget
for now; so are the operator's labels (wire_label.o, label.o: the LABEL decoder and the label
schedule, tinyfl/label.h), the "labels" line, linked only into an image whose main takes them.

Usage: firmware_size.py MAP [--check] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

FLASH_OUTPUT_SECTIONS = {".isr_vector", ".text", ".ARM.exidx", ".init_array", ".rodata"}
RAM_OUTPUT_SECTIONS = {".data", ".bss"}
CORE_COMPONENTS = ("trainer", "quantizer", "codec", "mqtt", "node", "crypto")
CORE_FLASH_BUDGET = 24 * 1024
CORE_RAM_BUDGET = 16 * 1024
PRIVACY_COMPONENT = "privacy"
PRIVACY_FLASH_BUDGET = 6 * 1024
PRIVACY_RAM_BUDGET = 1024
ALLOCATOR_SYMBOLS = ("malloc", "free", "calloc", "realloc", "_sbrk", "_sbrk_r", "_malloc_r",
                     "_Znwj", "_Znaj", "_Znwm", "_Znam", "_ZdlPv", "_ZdaPv")

# Object file (archive member) -> component. Unlisted objects of the core count as "node".
COMPONENT_OF_OBJECT = {
    "head.o": "trainer",
    "quant.o": "quantizer",
    "rng.o": "quantizer",
    "wire.o": "codec",
    "wire_secagg.o": "privacy",
    "crc32.o": "codec",
    "blob.o": "codec",
    "mqtt.o": "mqtt",
    "sha256.o": "crypto",
    "hmac.o": "crypto",
    "hkdf.o": "privacy",
    "secagg.o": "privacy",
    "noise.o": "privacy",
    "backbone.o": "backbone",
    "backbone_kernels.o": "backbone",
    "samples.o": "backbone",
    "dsp.o": "dsp",  # the DSP stage a model may carry: counted with the model, outside the core
    "dsp_mel.o": "dsp",
    "dsp_stage.o": "dsp",
    # The persisted state (tinyfl/state_store.h, node_state.h): outside the core for now, whose
    # budget is spent; it watches the node from the main's loop, so node.o does not grow.
    "state_store.o": "persist",
    "node_state.o": "persist",
    # The operator's label topic (tinyfl/label.h): the Node only routes its messages to a hook.
    "wire_label.o": "labels",
    "label.o": "labels",
}

# Members of tinyfl::Node -> component, for splitting the one static Node object of a main.
COMPONENT_OF_NODE_MEMBER = {
    "mqtt_rx_": "mqtt", "mqtt_tx_": "mqtt", "mqtt_": "mqtt",
    "trainer_": "trainer", "head_": "trainer", "global_head_": "trainer", "result_": "trainer",
    "codes_": "quantizer", "scales_": "quantizer",
}
# `ptype /o` rows of direct members: "/* offset | size */    type name[N];" or, for a member of
# class type, "/* offset | size */    class X {" ... "                               } name;"
NODE_MEMBER_LINE = re.compile(r"^/\*\s+\d+\s+\|\s+(\d+) \*/    (\S.*)$")
NODE_NESTED_END = re.compile(r"^ {31}} (\w+);$")

INPUT_LINE = re.compile(r"^\s+(\S+)?\s*0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")
OUTPUT_LINE = re.compile(r"^(\.\S+)\s+0x([0-9a-f]+)")


@dataclass
class Usage:
    flash: int = 0
    ram: int = 0
    objects: dict[str, int] = field(default_factory=dict)


def component_of(path: str, section: str) -> str:
    """Which part of the node an input section belongs to."""
    if "sample_cache" in section or "sample_storage" in section:
        return "sample cache"
    if "model_blob" in section:  # the backbone's weights, when a target compiles one in
        return "model"
    if "backbone_work" in section:
        return "backbone scratch"
    if ".stack" in section:
        return "stack"
    if re.search(r"state_(record|keeper|store|file)", section):  # a main's persisted-state objects
        return "persist"
    member = re.search(r"\(([^)]+)\)$", path)
    obj = member.group(1) if member else Path(path).name
    if "libtinyfl_models" in path:  # also the generated libtinyfl_models_registry.a
        return "backbone"
    if "libtinyfl" in path:
        return COMPONENT_OF_OBJECT.get(obj, "node")
    if "port_" in path or "/src/" in path and "/lib" not in path:
        return "port + main"
    if obj.startswith("lib_a-") or "libc" in path or "libm" in path or "libgcc" in path or "crt" in obj:
        return "C library"
    return "port + main"


def node_layout(elf: Path) -> dict[str, int] | None:
    """RAM of a tinyfl::Node per component, from the ELF's debug info (gdb's `ptype /o`)."""
    gdb = shutil.which("gdb-multiarch") or shutil.which("gdb") or shutil.which("arm-none-eabi-gdb")
    if gdb is None or not elf.is_file():
        return None
    out = subprocess.run([gdb, "-batch", "-ex", "ptype /o tinyfl::Node", str(elf)],
                         capture_output=True, text=True, timeout=60, check=False).stdout
    sizes: dict[str, int] = {}
    nested_size = 0

    def add(member: str, size: int) -> None:
        comp = COMPONENT_OF_NODE_MEMBER.get(member, "node")
        sizes[comp] = sizes.get(comp, 0) + size

    for line in out.splitlines():
        m = NODE_MEMBER_LINE.match(line)
        if m and m.group(2).endswith("{"):
            nested_size = int(m.group(1))
        elif m:
            name = re.search(r"(\w+)(\[\d+\])*;$", m.group(2))
            if name:
                add(name.group(1), int(m.group(1)))
        elif nested_size and (end := NODE_NESTED_END.match(line)):
            add(end.group(1), nested_size)
            nested_size = 0
    total = re.search(r"total size \(bytes\):\s+(\d+) \*/\s*\n\s*}\s*$", out)
    if not sizes or total is None:
        return None
    sizes["node"] = sizes.get("node", 0) + int(total.group(1)) - sum(sizes.values())  # padding
    return sizes


def parse_map(text: str, node_split: dict[str, int] | None = None) -> dict[str, Usage]:
    """Sums input-section sizes per component and memory (flash/RAM) from a GNU ld map."""
    usage: dict[str, Usage] = {}
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("Linker script and memory map"))
    except StopIteration:
        raise SystemExit("error: not a GNU ld map file (no 'Linker script and memory map')")
    output = ""
    pending_name = ""
    for line in lines[start:]:
        out = OUTPUT_LINE.match(line)
        if out:
            output = out.group(1)
            continue
        if line.startswith(" ") and line.strip().startswith(".") and len(line.split()) == 1:
            pending_name = line.strip()  # long input-section names wrap onto the next line
            continue
        m = INPUT_LINE.match(line)
        if not m or not output:
            pending_name = ""
            continue
        name = m.group(1) or pending_name
        pending_name = ""
        size = int(m.group(3), 16)
        path = m.group(4).strip()
        if size == 0 or not name or not name.startswith(".") or "load address" in path:
            continue
        in_flash = output in FLASH_OUTPUT_SECTIONS or output == ".data"
        in_ram = output in RAM_OUTPUT_SECTIONS or output == ".stack"
        if not (in_flash or in_ram):
            continue
        comp = component_of(path, name if output != ".stack" else ".stack")
        if node_split and output == ".bss" and re.search(r"4nodeE$", name):
            # The one static Node object: its members belong to different components.
            for member_comp, member_size in node_split.items():
                usage.setdefault(member_comp, Usage()).ram += member_size
            continue
        u = usage.setdefault(comp, Usage())
        if in_flash:
            u.flash += size
        if in_ram:
            u.ram += size
        u.objects[path] = u.objects.get(path, 0) + size
    return usage


def allocator_symbols(text: str) -> list[str]:
    """Allocator functions that made it into the image (defined in a kept input section)."""
    found = []
    for sym in ALLOCATOR_SYMBOLS:
        if re.search(rf"^\s+0x[0-9a-f]+\s+{re.escape(sym)}$", text, re.MULTILINE):
            found.append(sym)
    return found


def report(usage: dict[str, Usage]) -> str:
    rows = [f"{'component':<16} {'flash':>8} {'RAM':>8}"]
    order = list(CORE_COMPONENTS) + sorted(k for k in usage if k not in CORE_COMPONENTS)
    for comp in order:
        if comp in usage:
            rows.append(f"{comp:<16} {usage[comp].flash:>8} {usage[comp].ram:>8}")
    core_flash = sum(usage[c].flash for c in CORE_COMPONENTS if c in usage)
    core_ram = sum(usage[c].ram for c in CORE_COMPONENTS if c in usage)
    rows.append(f"{'core total':<16} {core_flash:>8} {core_ram:>8}"
                f"   (budget {CORE_FLASH_BUDGET} / {CORE_RAM_BUDGET})")
    privacy = usage.get(PRIVACY_COMPONENT, Usage())
    rows.append(f"{'privacy total':<16} {privacy.flash:>8} {privacy.ram:>8}"
                f"   (budget {PRIVACY_FLASH_BUDGET} / {PRIVACY_RAM_BUDGET}, outside the core)")
    total_flash = sum(u.flash for u in usage.values())
    total_ram = sum(u.ram for u in usage.values())
    rows.append(f"{'image total':<16} {total_flash:>8} {total_ram:>8}")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("map", type=Path)
    parser.add_argument("--check", action="store_true", help="fail when a budget is exceeded")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON")
    args = parser.parse_args()
    text = args.map.read_text()
    elf = args.map.with_name("program.elf")
    usage = parse_map(text, node_layout(elf))
    print(report(usage))
    allocators = allocator_symbols(text)
    core_flash = sum(usage[c].flash for c in CORE_COMPONENTS if c in usage)
    core_ram = sum(usage[c].ram for c in CORE_COMPONENTS if c in usage)
    privacy = usage.get(PRIVACY_COMPONENT, Usage())
    if args.json:
        args.json.write_text(json.dumps({
            "components": {k: {"flash": v.flash, "ram": v.ram} for k, v in usage.items()},
            "core": {"flash": core_flash, "ram": core_ram},
            "privacy": {"flash": privacy.flash, "ram": privacy.ram},
            "allocators": allocators,
        }, indent=2) + "\n")
    failures = []
    if allocators:
        failures.append(f"allocator linked: {', '.join(allocators)}")
    if core_flash > CORE_FLASH_BUDGET:
        failures.append(f"core flash {core_flash} > {CORE_FLASH_BUDGET}")
    if core_ram > CORE_RAM_BUDGET:
        failures.append(f"core RAM {core_ram} > {CORE_RAM_BUDGET}")
    if privacy.flash > PRIVACY_FLASH_BUDGET:
        failures.append(f"privacy flash {privacy.flash} > {PRIVACY_FLASH_BUDGET}")
    if privacy.ram > PRIVACY_RAM_BUDGET:
        failures.append(f"privacy RAM {privacy.ram} > {PRIVACY_RAM_BUDGET}")
    for f in failures:
        print(f"error: {f}", file=sys.stderr)
    if not allocators:
        print("no allocator linked (malloc/free/operator new/_sbrk absent)")
    return 1 if args.check and failures else 0


if __name__ == "__main__":
    sys.exit(main())
