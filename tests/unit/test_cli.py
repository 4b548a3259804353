"""The `tinyfl` entry point: help, version, and errors mapped to exit codes without tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tinyfl import __version__
from tinyfl.cli.main import COMMANDS, main
from tinyfl.errors import TinyFLError, TransportError, UsageError
from tinyfl.transport.serial_bridge import BrokerAddress, parse_broker_url


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "bridge" in out
    assert "MQTT byte stream" in out  # the one-line description
    assert len(COMMANDS) >= 1


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"tinyfl {__version__}"


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "<command>" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("mqtts://user@broker:8883", "credentials"),
        ("mqtt://broker", "--ca-file applies to TLS only"),
        ("localhost:1883", "expected mqtt://HOST[:PORT]"),
        ("http://broker:1883", "unsupported scheme"),
        ("mqtt://broker:99999", "port must be 1-65535"),
        ("mqtt://broker:abc", "port must be 1-65535"),
        ("mqtt://:1883", "missing host"),
        ("mqtt://user:pw@broker", "credentials"),
        ("mqtt://broker/topic", "unexpected path"),
    ],
)
def test_bad_broker_url_exits_2_with_one_line(
    url: str, fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = ["--ca-file", __file__] if "--ca-file" in fragment else []
    assert main(["bridge", "--port", "loop://", "--broker", url, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert fragment in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--port", "nosuchproto://x"], "protocol 'nosuchproto' not known"),
        (["--port", "socket://host-without-port"], "socket://HOST:PORT"),
        (["--port", "loop://", "--baud", "0"], "--baud"),
    ],
)
def test_bad_bridge_options_exit_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bridge", "--broker", "mqtt://127.0.0.1", *argv]) == 2
    assert fragment in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1", BrokerAddress("127.0.0.1", 1883)),
        ("mqtt://broker.lan:1884", BrokerAddress("broker.lan", 1884)),
        ("MQTT://[::1]:1885/", BrokerAddress("::1", 1885)),
    ],
)
def test_parse_broker_url(url: str, expected: BrokerAddress) -> None:
    assert parse_broker_url(url) == expected


def test_broker_address_url_round_trips() -> None:
    for address in (BrokerAddress("::1", 1885), BrokerAddress("h", 1883)):
        assert parse_broker_url(address.url) == address


def test_tinyfl_errors_map_to_their_exit_codes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tinyfl.cli import bridge

    def fail(args: object) -> int:
        raise TransportError("serial port\nvanished")

    monkeypatch.setattr(bridge, "run", fail)
    assert main(["bridge", "--port", "loop://"]) == TransportError.exit_code == 4
    assert capsys.readouterr().err == "error: serial port vanished\n"
    assert issubclass(UsageError, TinyFLError)


def test_keyboard_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    from tinyfl.cli import bridge

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(bridge, "run", interrupted)
    assert main(["bridge", "--port", "loop://"]) == 130


def test_console_script_runs_as_a_module() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tinyfl.cli.main",
            "bridge",
            "--port",
            "loop://",
            "--broker",
            "mqtt://x",
            "--ca-file",
            __file__,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "TLS" in result.stderr
    assert "Traceback" not in result.stderr
