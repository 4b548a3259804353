"""A node's state file path is checked before a node may write it: a file that is not a state
file (a mistyped path to a blob, a config, anything) is refused and left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyfl.errors import UsageError
from tinyfl.fleet import Emulator, NodeProcess, NodeSpec
from tinyfl.fleet.nodes import STATE_SLOT_BYTES, check_state_file


def record_start() -> bytes:
    return b"TFST" + bytes(60)


@pytest.mark.parametrize("content", [
    None,  # absent: created
    b"",
    b"\xff" * STATE_SLOT_BYTES,  # erased slot 0
    record_start(),  # a record in slot 0
    record_start() + b"\xff" * (STATE_SLOT_BYTES - 64) + record_start(),  # both slots
    b"\xff" * STATE_SLOT_BYTES + b"TF",  # slot 1 cut inside its first word
    b"\xff" * (2 * STATE_SLOT_BYTES),
])
def test_state_files_the_nodes_write_pass(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "n.state"
    if content is not None:
        path.write_bytes(content)
    check_state_file(path)


@pytest.mark.parametrize("content", [
    b"garbage",
    b"TF\x01\x00" + bytes(100),  # a wire frame, not a state record
    record_start() + b"\x00" * (STATE_SLOT_BYTES - 64) + b"nope",  # slot 1 foreign
    b"\xff" * (2 * STATE_SLOT_BYTES + 1),  # larger than two slots
])
def test_anything_else_is_refused_and_kept(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "n.state"
    path.write_bytes(content)
    with pytest.raises(UsageError, match="is not a TinyFL state file"):
        check_state_file(path)
    assert path.read_bytes() == content


@pytest.mark.parametrize("name", ["a b.state", "a,b.state"])
def test_paths_qemu_cannot_pass_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="whitespace or commas"):
        NodeSpec("n1", tmp_path / "n1.blob", tmp_path, Emulator.QEMU, state_file=tmp_path / name)


def test_a_slow_flash_reaches_the_qemu_image_on_its_command_line(tmp_path: Path) -> None:
    spec = NodeSpec("n1", tmp_path / "n1.blob", tmp_path, Emulator.QEMU,
                    state_file=tmp_path / "n1.state", state_word_us=10)
    cmd = NodeProcess(spec, tmp_path / "program.elf", "127.0.0.1", 1883, "tinyfl/x").command()
    semihosting = cmd[cmd.index("-semihosting-config") + 1]
    assert semihosting.endswith(f"arg=--state,arg={tmp_path / 'n1.state'},arg=--state-word-us,arg=10")
    assert "loader,addr=0x21f01000,data=0x54534654,data-len=4" in cmd
    with pytest.raises(UsageError, match=">= 0"):
        NodeSpec("n1", tmp_path / "n1.blob", tmp_path, Emulator.NATIVE, state_word_us=-1)
