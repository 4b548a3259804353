"""Broker URLs with credentials and TLS, where a password may come from, and that it never
shows: not in repr/str, error messages, `tinyfl coordinate` errors or the run's config.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinyfl.cli.coordinate import plan_from_args, write_config
from tinyfl.cli.main import build_parser, main
from tinyfl.errors import UsageError
from tinyfl.transport import (
    PASSWORD_ENV,
    BrokerAddress,
    address_from_options,
    parse_broker_url,
    public_url,
)

SECRET = "s3cret-Pa55"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://alice@broker.lan", BrokerAddress("broker.lan", 1883, username="alice")),
        ("mqtts://broker.lan", BrokerAddress("broker.lan", 8883, tls=True)),
        ("MQTTS://[::1]:9883/", BrokerAddress("::1", 9883, tls=True)),
        (
            f"mqtts://al%40ice:{SECRET}@h:1",
            BrokerAddress("h", 1, tls=True, username="al@ice", password=SECRET),
        ),
    ],
)
def test_parse_broker_url_with_credentials_and_tls(url: str, expected: BrokerAddress) -> None:
    assert parse_broker_url(url) == expected


def test_an_address_never_shows_its_password() -> None:
    address = parse_broker_url(f"mqtts://alice:{SECRET}@broker.lan")
    for text in (repr(address), str(address), address.url, f"{address}", f"{[address]}"):
        assert SECRET not in text
    assert str(address) == "mqtts://alice:***@broker.lan:8883"
    assert address.url == "mqtts://broker.lan:8883"  # no user either: safe to store
    assert "password='***'" in repr(address)


@pytest.mark.parametrize(
    "url",
    [
        f"http://alice:{SECRET}@broker",
        f"mqtt://alice:{SECRET}@broker/topic",
        f"mqtt://alice:{SECRET}@broker:99999",
        f"mqtt://alice:{SECRET}@:1883",
    ],
)
def test_url_errors_mask_the_password(url: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_broker_url(url)
    assert SECRET not in str(info.value) and "alice:***@" in str(info.value)


def test_public_url_strips_credentials() -> None:
    assert public_url(f"mqtt://alice:{SECRET}@127.0.0.1:1884") == "mqtt://127.0.0.1:1884"
    assert public_url("memory://simulated") == "memory://simulated"


def test_password_sources(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text(SECRET + "\nignored second line\n")
    env = {PASSWORD_ENV: "from-env"}

    from_file = address_from_options(
        "mqtt://h", username="alice", password_file=secret_file, environ=env
    )
    assert (from_file.username, from_file.password) == ("alice", SECRET)  # the file wins
    from_env = address_from_options("mqtt://alice@h", environ=env)
    assert from_env.password == "from-env"
    in_url = address_from_options(f"mqtt://alice:{SECRET}@h", environ=env)
    assert in_url.password == SECRET  # an explicit password beats the environment
    assert address_from_options("mqtt://h", environ={}).password is None


@pytest.mark.parametrize(
    ("url", "options", "fragment"),
    [
        (f"mqtt://a:{SECRET}@h", {"password_file": "PW"}, "take the password out of the URL"),
        ("mqtt://a@h", {"username": "b"}, "different users"),
        ("mqtt://h", {"password_file": "PW"}, "add --username"),
        ("mqtt://h", {"ca_file": "PW"}, "--ca-file applies to TLS only"),
        ("mqtts://h", {"ca_file": "missing.pem"}, "no such file"),
        ("mqtt://a@h", {"password_file": "missing"}, "cannot read the password file"),
        ("mqtt://a@h", {"password_file": "EMPTY"}, "is empty"),
    ],
)
def test_bad_credential_options(
    tmp_path: Path, url: str, options: dict[str, str], fragment: str
) -> None:
    (tmp_path / "PW").write_text(SECRET)
    (tmp_path / "EMPTY").write_text("")
    resolved = {key: str(tmp_path / value) for key, value in options.items() if key != "username"}
    if "username" in options:
        resolved["username"] = options["username"]
    with pytest.raises(UsageError, match=fragment) as info:
        address_from_options(url, environ={}, **resolved)  # type: ignore[arg-type]
    assert SECRET not in str(info.value)


BASE = ["coordinate", "--fleet", "lab", "--task", "synthetic:d=4,k=2"]


def test_coordinate_takes_credentials_and_config_json_never_holds_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    secret_file = tmp_path / "pw"
    secret_file.write_text(SECRET)
    ca = tmp_path / "ca.pem"
    ca.write_text("not read before connecting")
    out = tmp_path / "run"
    argv = [*BASE, "--broker", "mqtts://127.0.0.1:9", "--username", "coord",
            "--password-file", str(secret_file), "--ca-file", str(ca), "--out", str(out)]
    plan = plan_from_args(build_parser().parse_args(argv))
    assert isinstance(plan.broker, BrokerAddress)
    assert (plan.broker.username, plan.broker.password) == ("coord", SECRET)
    assert plan.broker.ca_file == str(ca)
    write_config(plan)
    text = (out / "config.json").read_text()
    assert SECRET not in text and "coord" not in text
    assert json.loads(text)["broker"] == "mqtts://127.0.0.1:9"

    # a password inside the URL is stripped too
    monkeypatch.setenv(PASSWORD_ENV, "env-secret")
    out2 = tmp_path / "run2"
    plan = plan_from_args(build_parser().parse_args(
        [*BASE, "--broker", f"mqtt://coord:{SECRET}@127.0.0.1:9", "--out", str(out2)]))
    write_config(plan)
    text = (out2 / "config.json").read_text()
    assert SECRET not in text and "env-secret" not in text
    assert json.loads(text)["broker"] == "mqtt://127.0.0.1:9"


def test_coordinate_credential_mistakes_exit_2_without_the_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, SECRET)
    assert main([*BASE, "--broker", "mqtt://127.0.0.1:9"]) == 2  # a password but no user
    err = capsys.readouterr().err
    assert "add --username" in err and SECRET not in err


def test_help_says_why_the_password_is_not_an_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["coordinate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--password-file" in text and PASSWORD_ENV in text and "shell history" in text
    with pytest.raises(SystemExit):
        main(["bridge", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--ca-file" in text and "--password-file" not in text


def test_bridge_refuses_credentials_without_showing_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bridge", "--port", "loop://", "--broker", f"mqtt://a:{SECRET}@h"]) == 2
    err = capsys.readouterr().err
    assert "board's CONNECT" in err and SECRET not in err


@pytest.mark.parametrize("url", ["mqtts://127.0.0.1:8883", f"mqtt://a:{SECRET}@127.0.0.1"])
def test_the_emulated_fleet_refuses_a_broker_its_nodes_cannot_use(tmp_path: Path, url: str) -> None:
    from tinyfl.fleet.nodes import Emulator
    from tinyfl.fleet.pool import FleetConfig

    with pytest.raises(UsageError, match="plain MQTT without credentials") as info:
        FleetConfig(nodes=1, emulator=Emulator.NATIVE, model="har", data=tmp_path / "d.npz",
                    run_dir=tmp_path, broker_url=url)
    assert SECRET not in str(info.value)
