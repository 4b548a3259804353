#!/usr/bin/env python3
"""Firmware benchmark: instruction counts of the node core on the emulated Cortex-M4F, and flash/RAM
per component of the node image. Writes bench/results/firmware.json and bench/firmware.md.

Instruction counts come from QEMU's deterministic instruction counting (`-icount shift=0`: one
instruction per virtual nanosecond; SysTick on the 25 MHz clock ticks once per 40 instructions),
so they are the same on every run and every machine. The image is firmware/src/bench/main.cpp,
built as the `qemu_bench` env with the same flags as the node (-Os, Cortex-M4F hard float).

Crypto (docs/CRYPTO.md): SHA-256, HMAC-SHA256 and HKDF-Expand are measured in the bench image,
and so is their flash, since the node image links them only once frames carry tags. So is the
DSP stage (docs/DSP.md), which the node image does not link yet.

Targets (issue: node firmware): one-sample training step of a d x k head <= 8*d*k instructions;
core <= 24 KiB flash and <= 16 KiB RAM besides the sample cache and the model; the optional
privacy code (secure aggregation, distributed DP's noise) is its own component, <= 6 KiB flash.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import firmware_size

LINE = re.compile(r"^bench (\S+) instructions_per_op=([\d.]+)(?: per_weight=([\d.]+))?")


def run(cmd: list[str], timeout: float) -> str:
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def instruction_counts() -> dict[str, dict[str, float]]:
    run(["pio", "run", "-s", "-e", "qemu_bench"], timeout=600)
    out = run(["qemu-system-arm", "-machine", "mps2-an386", "-icount", "shift=0", "-nographic",
               "-monitor", "none", "-serial", "stdio", "-semihosting-config", "enable=on,target=native",
               "-kernel", ".pio/build/qemu_bench/program.elf"], timeout=300)
    results: dict[str, dict[str, float]] = {}
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            entry = {"instructions": float(m.group(2))}
            if m.group(3):
                entry["per_weight"] = float(m.group(3))
            results[m.group(1)] = entry
    if "bench done" not in out or not results:
        raise SystemExit(f"benchmark image did not finish:\n{out}")
    return results


def crypto_size() -> dict[str, int]:
    """Flash and RAM of the crypto component (sha256.o, hmac.o) in the bench image, which links
    every crypto function the benchmark calls (instruction_counts() built it)."""
    map_path = ROOT / ".pio/build/qemu_bench/firmware.map"
    usage = firmware_size.parse_map(map_path.read_text()).get("crypto", firmware_size.Usage())
    return {"flash": usage.flash, "ram": usage.ram}


# Map input sections of the DSP objects: ".text.<symbol>" or ".rodata.<symbol>", size, (object).
DSP_SECTION = re.compile(
    r"^ \.(?:text|rodata)\.(\S+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+\S*\((dsp(?:_mel)?\.o)\)$",
    re.MULTILINE)
DSP_BLOCKS = (("statistics", ("time_stats", "shape_q4", "bit_length", "isqrt")),
              ("spectral bands", ("spectral_bands",)))


def dsp_size() -> dict[str, int]:
    """Flash of the DSP stage's code and tables in the bench image, which links every block, by
    block: statistics (dsp_time_stats and its helpers), mel (all of dsp_mel.o), spectral bands,
    and the spectral core the bands and the mel block share (window, FFT, power spectrum, log2,
    feature rule, the 2 KiB cosine table)."""
    text = (ROOT / ".pio/build/qemu_bench/firmware.map").read_text()
    out = {"statistics": 0, "mel": 0, "spectral bands": 0, "spectral core": 0}
    for symbol, size, obj in DSP_SECTION.findall(text):
        block = "mel" if obj == "dsp_mel.o" else next(
            (name for name, keys in DSP_BLOCKS if any(k in symbol for k in keys)), "spectral core")
        out[block] += int(size, 16)
    return out


def cpu_seconds(pid: int, ticks_per_second: int) -> float:
    """User plus system CPU time of a process so far, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks_per_second


def idle_cpu(seconds: float = 10.0) -> dict[str, float]:
    """Host CPU an idle, connected node uses (QEMU board sleeping in WFI; native in poll(2)), as a
    fraction of one core, with its keep-alive pings to a private mosquitto."""
    import os
    import tempfile
    import time

    sys.path.insert(0, str(ROOT / "tests"))
    from support.nodes import load_features, make_blob
    from tinyfl.fleet import Emulator, NodeProcess, NodeSpec, build_firmware
    from tinyfl.fleet.broker import MosquittoBroker

    ticks = os.sysconf("SC_CLK_TCK")
    blob = make_blob(load_features(), 500, 1)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoBroker(Path(tmp) / "broker")
        broker.start()
        try:
            for emulator in (Emulator.NATIVE, Emulator.QEMU):  # (the double needs a sensor replay)
                blob_path = Path(tmp) / f"{emulator.value}.blob"
                blob.write(blob_path)
                node = NodeProcess(NodeSpec(f"idle-{emulator.value}", blob_path, Path(tmp), emulator),
                                   build_firmware(emulator), broker.host, broker.port, "tinyfl/idle")
                node.start()
                time.sleep(3)  # boot and connect
                start = cpu_seconds(node.pid, ticks)
                time.sleep(seconds)
                out[emulator.value] = (cpu_seconds(node.pid, ticks) - start) / seconds
                node.stop()
        finally:
            broker.stop()
    return out


FLASH_SO_FAR = re.compile(r"state: saved round \d+ seq \d+ slot \d head crc [0-9a-f]{8}, (\d+) B; "
                          r"flash so far: (\d+) erases, (\d+) writes, (\d+) B")


def state_writes(rounds: int = 4) -> dict[str, dict[str, float]]:
    """Flash operations of the persisted state per round served (tinyfl/node_state.h): one node of
    each emulator with a state file serves `rounds` GLOBALs published by hand, and its log's
    cumulative "flash so far" counts are divided by the rounds it saved."""
    import tempfile
    import time

    sys.path.insert(0, str(ROOT / "tests"))
    from support.mqtt_probe import MqttProbe
    from support.nodes import load_features, make_blob, make_global, wait_until
    from tinyfl.fleet import Emulator, NodeProcess, NodeSpec, build_firmware
    from tinyfl.fleet.broker import MosquittoBroker
    from tinyfl.wire import encode

    blob = make_blob(load_features(), 500, 1)
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoBroker(Path(tmp) / "broker")
        broker.start()
        try:
            # (the Arduino double plays raw windows from its IMU; these are feature blobs)
            for emulator in (Emulator.NATIVE, Emulator.QEMU):
                prefix = f"tinyfl/state-{emulator.value}"
                blob_path = Path(tmp) / f"{emulator.value}.blob"
                blob.write(blob_path)
                spec = NodeSpec(f"state-{emulator.value}", blob_path, Path(tmp), emulator,
                                state_file=Path(tmp) / f"{emulator.value}.state")
                node = NodeProcess(spec, build_firmware(emulator), broker.host, broker.port, prefix)
                node.start()
                try:
                    with MqttProbe(broker.host, broker.port) as probe:
                        for r in range(1, rounds + 1):
                            probe.publish(f"{prefix}/global", encode(make_global(r, blob)), qos=1,
                                          retain=True)
                            wait_until(lambda r=r, n=node: len(FLASH_SO_FAR.findall(n.log_text())) >= r,
                                       60, f"the state save of round {r}", node.log_text)
                            time.sleep(0.2)
                finally:
                    node.stop()
                record, erases, writes, written = (int(v) for v in FLASH_SO_FAR.findall(node.log_text())[-1])
                out[emulator.value] = {"record_bytes": record, "erases": erases / rounds,
                                       "writes": writes / rounds, "bytes": written / rounds}
        finally:
            broker.stop()
    return out


def image_sizes() -> dict[str, object]:
    run(["pio", "run", "-s", "-e", "qemu_cortex_m4"], timeout=600)
    map_path = ROOT / ".pio/build/qemu_cortex_m4/firmware.map"
    usage = firmware_size.parse_map(map_path.read_text(),
                                    firmware_size.node_layout(map_path.with_name("program.elf")))
    core = firmware_size.CORE_COMPONENTS
    return {
        "components": {k: {"flash": v.flash, "ram": v.ram} for k, v in sorted(usage.items())},
        "core_flash": sum(usage[c].flash for c in core if c in usage),
        "core_ram": sum(usage[c].ram for c in core if c in usage),
        "privacy_flash": usage.get(firmware_size.PRIVACY_COMPONENT, firmware_size.Usage()).flash,
        "privacy_ram": usage.get(firmware_size.PRIVACY_COMPONENT, firmware_size.Usage()).ram,
        "allocators": firmware_size.allocator_symbols(map_path.read_text()),
    }


CRYPTO_ROWS = {
    "sha256_one_64B_block": "SHA-256, one 64-byte block (one compression)",
    "sha256_64B_message": "SHA-256 of a 64-byte message (two compressions: data, padding)",
    "hmac_sha256_600B_frame": "HMAC-SHA256 of a 600-byte frame, key set-up included",
    "hmac_sha256_600B_frame_keyed": "HMAC-SHA256 of a 600-byte frame, key loaded once",
    "hkdf_expand_per_32B": "HKDF-Expand, per 32 output bytes (16-byte info)",
    "tag_equal_16B_same": "tag_equal, 16-byte tags, equal",
    "tag_equal_16B_first_byte_differs": "tag_equal, 16-byte tags, first byte differs",
    "tag_equal_16B_last_byte_differs": "tag_equal, 16-byte tags, last byte differs",
}
TAG_ROWS = [name for name in CRYPTO_ROWS if name.startswith("tag_equal_")]


DSP_ROWS = {
    "dsp_power_spectrum_256": "window, FFT and power spectrum, 256 samples",
    "dsp_power_spectrum_1024": "window, FFT and power spectrum, 1024 samples",
    "dsp_spectral_bands_1024x32": "32 log2 band features of a 1024-sample window",
    "dsp_mfcc_1s_16k_512h256_40x13": ("MFCC of 1 s at 16 kHz: 61 frames of 512 (hop 256), "
                                      "40 mels, 13 coefficients"),
    "dsp_log_mel_1s_16k_512h256_40": "log mel energies of the same: 61 frames x 40 mels",
    "dsp_mfcc_frame_512_40x13": "MFCC of one 512-sample frame, 40 mels, 13 coefficients",
    "dsp_time_stats_128x6": "statistics block (6 features per channel), 128 samples x 6 channels",
}


def labelled_rows(counts: dict[str, dict[str, float]], labels: dict[str, str], per: float,
                  digits: int) -> list[str]:
    """Rows "| label (`name`) | instructions | instructions / per |" of the measurements made."""
    return [f"| {label} (`{name}`) | {counts[name]['instructions']:.0f} | "
            f"{counts[name]['instructions'] / per:.{digits}f} |"
            for name, label in labels.items() if name in counts]


def per_model_rows(counts: dict[str, dict[str, float]], prefix: str) -> list[str]:
    """Rows "| model | instructions | ms at 64 MHz |" of the measurements named prefix + model."""
    return [f"| {name[len(prefix):]} | {entry['instructions']:.0f} | "
            f"{entry['instructions'] / 64e3:.1f} |"
            for name, entry in counts.items() if name.startswith(prefix)]


def dsp_lines(counts: dict[str, dict[str, float]], flash: dict[str, int]) -> list[str]:
    lines = ["", "## DSP stage (docs/DSP.md)", "",
             "One window through each block, all of it in integers bit for bit as the host.",
             "Time at 64 MHz assumes one instruction per cycle.", "",
             "| operation | instructions | ms at 64 MHz |", "|---|---|---|"]
    lines += labelled_rows(counts, DSP_ROWS, 64e3, 2)
    lines += ["", "Flash of the DSP code in the bench image (which links every block), by block. The",
              "spectral core (window, FFT, power spectrum, log2, the int8 feature rule and the 2 KiB",
              "cosine table) serves the bands and the mel block alike; the C library's 64-bit",
              "division, which the statistics block calls, is not counted.", "",
              "| block | flash (B) |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in flash.items()]
    return lines


def markdown(counts: dict[str, dict[str, float]], sizes: dict[str, object],
             state: dict[str, dict[str, float]],
             idle: dict[str, float], crypto: dict[str, int], dsp_flash: dict[str, int]) -> str:
    lines = [
        "# Node firmware on the emulated Cortex-M4F",
        "",
        f"Recorded {date.today().isoformat()} by `python bench/bench_firmware.py` (QEMU mps2-an386,",
        "`-icount shift=0`, arm-none-eabi-gcc 12 `-Os`, hard float). Instruction counts are exact and",
        "repeatable; raw numbers in `results/firmware.json`.",
        "",
        "## One-sample training step, d x k head (target: at most 8 d k instructions)",
        "",
        "`train_step`: one SGD step on one sample as a training pass runs it at batch size 1",
        "(forward, softmax, gradient and update; the update of this sample and the forward pass of",
        "the next share one sweep over the head, `head_step_stream`). `isolated_step`: the same step",
        "as a stand-alone call (`head_step_one`, two sweeps). `train_local`: a whole local round",
        "through the node's int8 embedding cache (400 samples, 2 epochs), per sample and epoch,",
        "everything included: dequantizing the embedding, shuffling, the accuracy pass.",
        "",
        "| measurement | head | instructions | per weight | 8 d k | within |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in counts.items():
        m = re.match(r"(\w+?)_64x(\d+)$", name)
        if not m or "per_weight" not in entry:
            continue
        d, k = 64, int(m.group(2))
        target = 8 * d * k
        ok = "yes" if entry["instructions"] <= target else "no"
        lines.append(f"| {m.group(1)} | {d} x {k} | {entry['instructions']:.0f} | "
                     f"{entry['per_weight']:.2f} | {target} | {ok} |")
    lines += ["", "## Backbone: one window through the compiled int8 model", "",
              "What a node spends per sample when it embeds its data (`backbone_run`, the kernels",
              "that are bit-exact with LiteRT). Time at 64 MHz assumes one instruction per cycle.", "",
              "| model | instructions per window | ms at 64 MHz |", "|---|---|---|"]
    lines += per_model_rows(counts, "backbone_")
    lines += ["", "## Live sensor: the longest gap between two polls", "",
              "A node on a live sensor (tinyfl/sensor_stream.h) embeds a completed window in",
              "`SensorStream::step()` between two `poll()` calls: the model's DSP stage, the",
              "backbone and the reservoir. That step is the longest the MQTT client waits.", "",
              "| model | instructions per step | ms at 64 MHz |", "|---|---|---|"]
    lines += per_model_rows(counts, "sensor_stream_step_")
    lines += ["", "## Other operations", "", "| operation | instructions |", "|---|---|"]
    for name, entry in counts.items():
        if ("per_weight" not in entry
                and not name.startswith(("backbone_", "secagg_", "dsp_", "sensor_stream_", "noise_"))
                and name not in CRYPTO_ROWS):
            lines.append(f"| {name} | {entry['instructions']:.0f} |")
    if "secagg_mask_6x65_16bit" in counts and "secagg_round_seed" in counts:
        seed = counts["secagg_round_seed"]["instructions"]
        mask = counts["secagg_mask_6x65_16bit"]["instructions"]
        total = seed + mask
        lines += ["", "## Secure aggregation (docs/PRIVACY.md)", "",
                  ("Per peer and round on the 6 x 65 HAR head at 16-bit masks: the pair's round "
                   "seed, then its mask added to every value."), "",
                  "| operation | instructions | per value |", "|---|---|---|",
                  f"| round seed (HKDF-Expand, 32 bytes) | {seed:.0f} | |",
                  f"| mask of 390 values | {mask:.0f} | {mask / 390:.0f} |",
                  f"| **per value per peer**, seed included | {total:.0f} | **{total / 390:.0f}** |",
                  "", (f"A node in a round of n nodes spends (n - 1) x {total:.0f} instructions on "
                       f"masking: {total * 7 / 64e3:.0f} ms at 64 MHz with 8 nodes. The mask "
                       "stream is HMAC-SHA256 (HKDF-Expand): 32 bytes, 16 values, per two SHA-256 "
                       "compressions.")]
    lines += dsp_lines(counts, dsp_flash)
    if "noise_6x65_var70000" in counts:
        small = counts["noise_6x65_var8"]["instructions"]
        large = counts["noise_6x65_var70000"]["instructions"]
        key = counts["noise_key_per_peer"]["instructions"]
        lines += ["", "## Distributed DP: node noise (docs/PRIVACY.md)", "",
                  ("Per round on the 6 x 65 HAR head: 390 draws of the discrete Gaussian "
                   "N_Z(0, sigma^2) with the exact integer sampler (Canonne, Kamath, Steinke 2020; "
                   "`tinyfl/noise.h`), its HKDF bit stream included, added to the codes modulo "
                   "2^16; and the noise key's part of one peer (once per round and peer)."), "",
                  "| operation | instructions | per value | ms at 64 MHz |", "|---|---|---|---|",
                  (f"| noise, sigma^2 = 8 (the smallest share) | {small:.0f} | **{small / 390:.0f}** "
                  f"| {small / 64e3:.1f} |"),
                  (f"| noise, sigma^2 = 70000 (100 nodes at epsilon 1) | {large:.0f} | "
                  f"**{large / 390:.0f}** | {large / 64e3:.1f} |"),
                  f"| noise key, per peer | {key:.0f} | | {key / 64e3:.2f} |"]
    lines += ["", "## Crypto: SHA-256, HMAC-SHA256, HKDF (docs/CRYPTO.md)", "",
              "The primitives that will authenticate frames and expand secure-aggregation masks.",
              "Time at 64 MHz assumes one instruction per cycle.", "",
              "| operation | instructions | us at 64 MHz |", "|---|---|---|"]
    lines += labelled_rows(counts, CRYPTO_ROWS, 64, 0)
    tag_counts = {counts[name]["instructions"] for name in TAG_ROWS if name in counts}
    lines += ["", "tag_equal takes the same count whether the tags agree or where they differ: "
              + ("yes" if len(tag_counts) == 1 else "NO") + "."]
    lines += ["", ("Flash of the crypto code (sha256.o, hmac.o in the bench image): "
              f"{crypto['flash']} B, RAM {crypto['ram']} B (contexts live with"),
              "their caller). The node image links SHA-256 and HMAC (it signs and checks",
              "frames: `encode_update_8bit_6x65_signed` above is one signed UPDATE); HKDF comes",
              "in with secure aggregation and is counted in the privacy component below."]
    comps = sizes["components"]
    assert isinstance(comps, dict)
    lines += ["", "## Flash and RAM of the qemu_cortex_m4 node image", "",
              "| component | flash (B) | RAM (B) |", "|---|---|---|"]
    for comp, v in comps.items():
        lines.append(f"| {comp} | {v['flash']} | {v['ram']} |")
    lines += [
        (f"| **core** ({', '.join(firmware_size.CORE_COMPONENTS)}) | **{sizes['core_flash']}** "
         f"(target <= {firmware_size.CORE_FLASH_BUDGET}) | **{sizes['core_ram']}** (target <= "
         f"{firmware_size.CORE_RAM_BUDGET}) |"),
        (f"| **privacy** (secagg.o, hkdf.o, wire_secagg.o, noise.o; optional, outside the core) "
         f"| **{sizes['privacy_flash']}** (target <= {firmware_size.PRIVACY_FLASH_BUDGET}) | "
         f"**{sizes['privacy_ram']}** (target <= {firmware_size.PRIVACY_RAM_BUDGET}) |"),
        "",
        "RAM excludes the 8 KiB stack reserved by the linker script. The sample cache holds 512",
        "embeddings of 64 int8 values. Allocator symbols linked: "
        + (", ".join(sizes["allocators"]) if sizes["allocators"] else "none")  # type: ignore[arg-type]
        + ".",
        "",
        "## Persisted state",
        "",
        "Flash operations per round a node served, with its state in a file (tinyfl/node_state.h;",
        "a 500-sample, 5 x 65 head, as the NSL-KDD feature blob): one erase of a slot and one write",
        "of one record each round; the store reads the record back to check it. The qemu board's",
        "file is its emulated flash through semihosting, the native node's a file of two 4 KB slots.",
        "",
        "| node | record (B) | erases / round | writes / round | bytes written / round |",
        "|---|---|---|---|---|",
        *(f"| {k} | {v['record_bytes']:.0f} | {v['erases']:.2f} | {v['writes']:.2f} | {v['bytes']:.0f} |"
          for k, v in state.items()),
        "",
        "The `persist` line above is the store and the keeper (state_store.o, node_state.o) with the",
        "main's record buffer and keeper, outside the core budget; the qemu port's semihosting",
        "region (state_semihosting.o) counts with the port.",
        "",
        "## Idle node",
        "",
        "Host CPU of one connected, idle node (fraction of one core over 10 s): "
        + ", ".join(f"{k} {v * 100:.2f} %" for k, v in idle.items())
        + ". The QEMU board sleeps in WFI between UART interrupts and its 100 Hz tick.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    results = ROOT / "bench/results/firmware.json"
    if sys.argv[1:] == ["--sizes-and-state"]:
        # Only the image sizes and the persisted state's flash writes, measured again; the
        # instruction counts, crypto, DSP and idle numbers are taken from the last full run.
        last = json.loads(results.read_text())
        counts, crypto, dsp_flash, idle = (last["instructions"], last["crypto_size"],
                                           last["dsp_size"], last["idle_cpu"])
    elif sys.argv[1:]:
        raise SystemExit("usage: bench_firmware.py [--sizes-and-state]")
    else:
        counts = instruction_counts()
        crypto = crypto_size()
        dsp_flash = dsp_size()
        idle = idle_cpu()
    sizes = image_sizes()
    state = state_writes()
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(
        json.dumps({"instructions": counts, "sizes": sizes, "crypto_size": crypto,
                    "dsp_size": dsp_flash, "idle_cpu": idle, "state_writes": state},
                   indent=2) + "\n")
    text = markdown(counts, sizes, state, idle, crypto, dsp_flash)
    (ROOT / "bench/firmware.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
