"""The Arduino library's two example sketches (the esp32dev and nano33ble mains) compiled as a user
would get them from tools/arduino_library.py, with the node settings header `tinyfl provision`
writes: the ESP32's TLS path and the Nano 33 BLE's flash state region and on-board IMU. No Arduino
core or board toolchain installs here, so they compile with the host's g++ against the Arduino test
double's headers (tests/arduino_double/include) and declaration-only stand-ins for the libraries
the double does not emulate (tests/arduino_double/stand_ins: WiFiClientSecure, mbed FlashIAP,
Arduino_LSM9DS1): this checks the sketches and the port against the APIs as declared there, not
against the real cores. The esp32dev main's plain-MQTT path runs in tests/integration/
test_esp32_double.py."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from support.arduino_library import load_tool
from tinyfl.cli.main import main as tinyfl

ROOT = Path(__file__).resolve().parents[2]
DOUBLE = ROOT / "tests" / "arduino_double"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return load_tool().build(tmp_path_factory.mktemp("arduino"), ["models/har"])  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A provisioning folder for two boards (their node_settings_local.h)."""
    out = tmp_path_factory.mktemp("provision") / "lab"
    ids = out.parent / "ids.txt"
    ids.write_text("esp32-01\nnano-01\n")
    assert tinyfl(["provision", "--fleet", "lab", "--nodes", str(ids), "--host", "broker.lan",
                   "--out", str(out), "-q"]) == 0
    return out


def compile_sketch(library: Path, example: str, settings: Path | None, arch: str,
                   tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """g++ -fsyntax-only of the example (its folder copied, with `settings` as its
    node_settings_local.h) and the port's sources, for ARDUINO_ARCH_<arch>."""
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.fail("g++ not found: make setup installs it", pytrace=False)
    sketch = tmp_path / example
    shutil.copytree(library / "examples" / example, sketch)
    if settings is not None:
        shutil.copy(settings, sketch / "node_settings_local.h")
    main = sketch / "main.cpp"  # g++ takes .ino only as C++ under another name
    main.write_text((sketch / f"{example}.ino").read_text())
    port = sorted((library / "src" / "port_arduino").glob("*.cpp"))
    return subprocess.run(
        [gxx, "-std=gnu++17", "-Wall", "-Wextra", "-Werror", "-fno-exceptions", "-fno-rtti",
         "-fsyntax-only", f"-DARDUINO_ARCH_{arch}", f"-I{library / 'src'}",
         f"-I{DOUBLE / 'include'}", f"-I{DOUBLE / 'stand_ins'}", str(main), *map(str, port)],
        capture_output=True, text=True, check=False, timeout=300)


def test_the_esp32_sketch_compiles_with_a_provisioned_tls_settings_header(
        library: Path, provisioned: Path, tmp_path: Path) -> None:
    settings = provisioned / "nodes" / "esp32-01" / "node_settings_local.h"
    text = settings.read_text()
    assert "TINYFL_BROKER_CA_PEM" in text and "TINYFL_FRAME_KEY" in text
    assert not re.search(r"^#define TINYFL_BROKER_INSECURE", text, re.MULTILINE)
    done = compile_sketch(library, "Esp32Node", settings, "ESP32", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_esp32_sketch_refuses_to_build_without_a_ca(library: Path, tmp_path: Path) -> None:
    done = compile_sketch(library, "Esp32Node", None, "ESP32", tmp_path)  # node_settings.h only
    assert done.returncode != 0
    assert "TLS needs the broker's CA" in done.stderr


def test_the_nano_sketch_compiles_with_its_imu_and_flash_state(
        library: Path, provisioned: Path, tmp_path: Path) -> None:
    settings = provisioned / "nodes" / "nano-01" / "node_settings_local.h"
    done = compile_sketch(library, "Nano33BleNode", settings, "MBED", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
