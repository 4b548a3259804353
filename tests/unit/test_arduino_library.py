"""The Arduino library tools/arduino_library.py packages: the 1.5 layout the Arduino IDE and
arduino-cli expect (library.properties with every required field, src/ with the main header,
examples/<Name>/<Name>.ino), the tree's sources unchanged, and every source that needs no Arduino
core compiling from the library's own include layout with the host's g++ (no Arduino core or
board toolchain is installed here: the port and the examples are checked for presence only; see
docs/PORTING.md for what has run on boards)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from support.arduino_library import load_tool

ROOT = Path(__file__).resolve().parents[2]


def test_the_library_has_the_arduino_layout_and_the_trees_sources(tmp_path: Path) -> None:
    tool = load_tool()
    assert tool.main(["--out", str(tmp_path), "--model", "models/har"]) == 0
    lib = tmp_path / "TinyFL"
    assert tool.check(lib) == []
    props = (lib / "library.properties").read_text()
    assert "name=TinyFL\n" in props and "architectures=esp32,mbed_nano\n" in props
    node_h = ROOT / "firmware" / "lib" / "tinyfl" / "include" / "tinyfl" / "node.h"
    assert (lib / "src" / "tinyfl" / "node.h").read_bytes() == node_h.read_bytes()
    assert (lib / "examples" / "Esp32Node" / "Esp32Node.ino").read_text() == (
        ROOT / "firmware" / "src" / "esp32dev" / "main.cpp").read_text()
    assert (lib / "examples" / "Esp32Node" / "node_settings.h").is_file()
    assert (lib / "examples" / "Nano33BleNode" / "Nano33BleNode.ino").is_file()
    registry = list((lib / "src" / "tinyfl_registry").glob("*.cpp"))
    assert len(registry) == 2 and not any(str(ROOT) in p.read_text() for p in registry)


def test_every_source_without_the_arduino_core_compiles_from_the_library_layout(
        tmp_path: Path) -> None:
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.fail("g++ not found: make setup installs it", pytrace=False)
    tool = load_tool()
    lib = tool.build(tmp_path, ["models/har"])
    sources = [p for p in (lib / "src").rglob("*.cpp") if p.parent.name != "port_arduino"]
    assert len(sources) > 20
    done = subprocess.run([gxx, "-std=gnu++17", "-Wall", "-Wextra", "-Werror", "-fno-exceptions",
                           "-fno-rtti", "-fsyntax-only", f"-I{lib / 'src'}", *map(str, sources)],
                          capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_model_folder_that_is_not_one_is_refused(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    tool = load_tool()
    assert tool.main(["--out", str(tmp_path), "--model", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err
