"""`tinyfl provision`: every secret where it belongs and nowhere else, files readable by their
owner only, pairwise seeds that two nodes share and the coordinator never gets."""

from __future__ import annotations

import ast
import json
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tinyfl.cli.main import main
from tinyfl.crypto import key_id
from tinyfl.errors import UsageError
from tinyfl.fleet.broker import free_port
from tinyfl.fleet.reload import reload_fleet_broker
from tinyfl.fleet.state import FleetState, ProcessRecord, proc_info, start_time_of, write_state
from tinyfl.provision import check_admin_url, new_fleet, pair_seed, read_fleet
from tinyfl.provision.broker import password_line, verify_password_line


@pytest.fixture
def provisioned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    out = tmp_path / "lab"
    assert main(["provision", "--fleet", "lab", "--nodes", "4", "--out", str(out)]) == 0
    return out, capsys.readouterr().out


def _every_file(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_files_and_folders_are_readable_by_their_owner_only(provisioned: tuple[Path, str]) -> None:
    out, _ = provisioned
    for path in [out, *(p for p in out.rglob("*"))]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode)}"


def test_each_secret_is_only_in_the_files_of_who_needs_it(provisioned: tuple[Path, str]) -> None:
    out, printed = provisioned
    fleet, prefix, _ = read_fleet(out)
    assert prefix == "tinyfl/lab" and sorted(fleet.nodes) == [f"node0{i}" for i in range(1, 5)]
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in _every_file(out)}
    texts = {name: data.decode("utf-8", "replace") for name, data in files.items()}
    seed = pair_seed(fleet.dealer_secret, "node01", "node02").hex()
    node1_key = fleet.nodes["node01"].frame_key.hex()

    def holders(secret: str) -> set[str]:
        """Files that hold the secret as text, or as raw bytes (the binary node.cfg)."""
        raw = bytes.fromhex(secret) if len(secret) == 64 else secret.encode()
        return {name for name, data in files.items()
                if secret in texts[name] or raw in data}

    assert holders(seed) == {"nodes/node01/node.json", "nodes/node02/node.json",
                             "nodes/node01/node.cfg", "nodes/node02/node.cfg"}
    assert holders(node1_key) == {"coordinator.json", "nodes/node01/node.json",
                                  "nodes/node01/node.cfg"}
    assert holders(fleet.dealer_secret.hex()) == {"dealer.json"}
    assert holders(fleet.nodes["node03"].password) == {"nodes/node03/node.json",
                                                       "nodes/node03/node.cfg",
                                                       "nodes/node03/node_settings_local.h"}
    assert holders(fleet.coordinator_password) == {"coordinator.json", "coordinator.password"}
    admin_password = json.loads(texts["admin.json"])["password"]
    assert holders(admin_password) == {"admin.json"}  # never on a device or the coordinator
    public = json.loads(texts["fleet.json"])
    assert public["nodes"]["node01"]["frame_key_id"] == key_id(fleet.nodes["node01"].frame_key)
    for secret in (node1_key, fleet.fleet_key.hex(), fleet.coordinator_password, seed,
                   admin_password):
        assert secret not in printed and secret not in repr(fleet)
    header = texts["nodes/node01/node_settings_local.h"]
    assert '#define TINYFL_NODE_ID "node01"' in header and "TINYFL_FRAME_KEY {0x" in header


def test_the_broker_files_admit_each_user_with_its_password(provisioned: tuple[Path, str]
                                                          ) -> None:
    out, _ = provisioned
    fleet, _, _ = read_fleet(out)
    lines = {line.split(":")[0]: line for line in (out / "broker" / "passwd").read_text().split()}
    assert set(lines) == {"coordinator", "admin", *fleet.nodes}
    assert verify_password_line(lines["node02"], fleet.nodes["node02"].password)
    assert not verify_password_line(lines["node02"], fleet.nodes["node01"].password)
    admin_password = json.loads((out / "admin.json").read_text())["password"]
    assert verify_password_line(lines["admin"], admin_password)
    acl = (out / "broker" / "acl").read_text()
    assert "user node02\ntopic write tinyfl/lab/nodes/node02/hello" in acl
    # admin: the nodes' retained hello and status and nothing else (no update, no global)
    assert ("user admin\ntopic readwrite tinyfl/lab/nodes/+/hello\n"
            "topic readwrite tinyfl/lab/nodes/+/status\n\n") in acl
    # no node may write (or read) another's topics; the coordinator writes the label topics only
    node_blocks = [b for b in acl.split("\n\n") if b.startswith("user node")]
    assert len(node_blocks) == len(fleet.nodes)
    assert all("/+/" not in b for b in node_blocks)
    assert "user node02\n" in acl and "topic read tinyfl/lab/nodes/node02/label\n" in acl
    coordinator = next(b for b in acl.split("\n\n") if "user coordinator" in b)
    assert [line for line in coordinator.splitlines() if "topic write" in line] == [
        "topic write tinyfl/lab/nodes/+/label"]
    conf = (out / "broker" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "certfile" in conf


def test_password_lines_are_mosquitto_pbkdf2() -> None:
    line = password_line("alice", "s3cret", salt=bytes(range(12)))
    assert line.startswith("alice:$7$101$AAECAwQFBgcICQoL$")
    assert verify_password_line(line, "s3cret") and not verify_password_line(line, "s3cre")


def test_pairwise_seeds_are_shared_by_exactly_the_pair() -> None:
    fleet = new_fleet("lab", ["a", "b", "c"])
    assert fleet.seeds_of("a")["b"] == fleet.seeds_of("b")["a"]
    assert fleet.seeds_of("a")["b"] != fleet.seeds_of("a")["c"]
    assert len({fleet.nodes[i].frame_key for i in "abc"}) == 3
    with pytest.raises(ValueError):
        pair_seed(fleet.dealer_secret, "a", "a")


def test_revoke_removes_the_node_and_keeps_every_other_secret(provisioned: tuple[Path, str],
                                                              capsys: pytest.CaptureFixture[str]
                                                              ) -> None:
    out, _ = provisioned
    before, _, _ = read_fleet(out)
    assert main(["provision", "revoke", "node02", "--out", str(out), "--offline"]) == 0
    assert "clear-retained node02" in capsys.readouterr().out  # what to run later
    after, _, _ = read_fleet(out)
    assert sorted(after.nodes) == ["node01", "node03", "node04"]
    assert not (out / "nodes" / "node02").exists()
    assert "node02" not in (out / "broker" / "passwd").read_text()
    assert "node02" not in (out / "broker" / "acl").read_text()
    assert after.fleet_key == before.fleet_key and after.nodes["node01"] == before.nodes["node01"]
    assert main(["provision", "revoke", "node02", "--out", str(out), "--offline"]) == 2
    assert "not provisioned" in capsys.readouterr().err


def test_revoke_with_the_broker_unreachable_says_what_remains(provisioned: tuple[Path, str],
                                                              capsys: pytest.CaptureFixture[str]
                                                              ) -> None:
    out, _ = provisioned
    url = f"mqtts://127.0.0.1:{free_port()}"  # nothing listens there
    assert main(["provision", "revoke", "node03", "--out", str(out), "--broker", url,
                 "--timeout", "0.5"]) == 4
    err = capsys.readouterr().err
    assert "node03 is revoked" in err and "retained hello/status remain" in err
    assert f"tinyfl provision clear-retained node03 --out {out} --broker {url}" in err
    assert "node03" not in read_fleet(out)[0].nodes  # the files changed all the same
    admin_password = json.loads((out / "admin.json").read_text())["password"]
    assert admin_password not in err


@pytest.mark.parametrize(("url", "fragment"), [
    ("mqtt://broker.lan:1883", "plain MQTT would send the admin password in clear"),
    ("mqtts://admin@127.0.0.1:8883", "no user name or password in the URL"),
])
def test_the_admin_account_refuses_a_broker_url(provisioned: tuple[Path, str], url: str,
                                                fragment: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = provisioned
    assert main(["provision", "revoke", "node01", "--out", str(out), "--broker", url]) == 2
    assert fragment in capsys.readouterr().err
    assert "node01" in read_fleet(out)[0].nodes  # refused before anything changed
    assert check_admin_url("mqtt://127.0.0.1:1883").port == 1883  # loopback may be plain


def test_clear_retained_refuses_a_provisioned_node_and_wants_ids_or_unknown(
        provisioned: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = provisioned
    assert main(["provision", "clear-retained", "node01", "--out", str(out)]) == 2
    assert "node01 still provisioned: revoke first" in capsys.readouterr().err
    assert main(["provision", "clear-retained", "--out", str(out)]) == 2
    assert main(["provision", "clear-retained", "ghost", "--unknown", "--out", str(out)]) == 2
    # an id with a '/' would name another node's topic
    assert main(["provision", "clear-retained", "node01/x", "--out", str(out)]) == 2
    assert "not one topic level" in capsys.readouterr().err


def _c_macro_string(header: str, name: str) -> str:
    """The value of a #define made of adjacent C string literals (with line continuations)."""
    body = header.split(f"#define {name} \\\n", 1)[1]
    lines = []
    for line in body.splitlines():
        lines.append(line.strip().rstrip("\\").strip())
        if not line.endswith("\\"):
            break
    return "".join(ast.literal_eval(literal) for literal in lines)


def test_the_settings_header_carries_the_fleets_ca_for_tls(provisioned: tuple[Path, str]) -> None:
    out, _ = provisioned
    header = (out / "nodes" / "node02" / "node_settings_local.h").read_text()
    assert _c_macro_string(header, "TINYFL_BROKER_CA_PEM") == (out / "broker" / "ca.crt").read_text()
    assert "#define TINYFL_BROKER_PORT 8883" in header
    assert "\n#define TINYFL_BROKER_INSECURE" not in header  # plain MQTT is never the default
    assert "#define TINYFL_MQTT_PASSWORD" in header


def test_reserved_user_names_are_not_node_ids() -> None:
    for name in ("admin", "coordinator"):
        with pytest.raises(UsageError, match="user name, not a node id"):
            new_fleet("lab", ["node01", name])


@pytest.mark.parametrize(("args", "fragment"), [
    (["--nodes", "2"], "--fleet NAME and --nodes N|FILE are required"),
    (["--fleet", "lab", "--nodes", "0"], "--nodes must be 1..10000"),
    (["--fleet", "lab", "--nodes", "/nonexistent"], "neither a number nor a readable file"),
])
def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                      fragment: str) -> None:
    assert main(["provision", *args, "--out", str(tmp_path / "x")]) == 2
    assert fragment in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_bad_node_ids_in_a_file_are_refused(tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("pump-1\n# a comment\npump 2\n")
    with pytest.raises(UsageError, match="pump 2"):
        new_fleet("lab", ["pump-1", "pump 2"])
    assert main(["provision", "--fleet", "lab", "--nodes", str(ids), "--out",
                 str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
    ids.write_text("pump-1\npump-2\n")
    assert main(["provision", "--fleet", "lab", "--nodes", str(ids), "--out",
                 str(tmp_path / "z")]) == 0
    assert sorted(read_fleet(tmp_path / "z")[0].nodes) == ["pump-1", "pump-2"]


def test_reload_signals_only_the_verified_broker_of_the_fleet_run(tmp_path: Path) -> None:
    """`fleet up` layout: runs/<id>/fleet.json beside runs/<id>/provision. A stand-in broker
    (sleep, which SIGHUP ends) shows who got the signal."""
    folder = tmp_path / "provision"
    folder.mkdir()
    proc = subprocess.Popen(["sleep", "30"])
    try:
        deadline = time.monotonic() + 5
        while (info := proc_info(proc.pid)) is None or info.cmdline != ("sleep", "30"):
            assert time.monotonic() < deadline, "sleep never started"
            time.sleep(0.01)
        real = ProcessRecord("broker", "", proc.pid, start_time_of(proc.pid), ("sleep", "30"))
        reused = ProcessRecord("broker", "", proc.pid, real.start_time + 1, ("sleep", "30"))

        def state(record: ProcessRecord, provision: str) -> None:
            write_state(tmp_path, FleetState("lab", "tinyfl/lab", "har", "native",
                                             "mqtt://127.0.0.1:1", True, [record],
                                             provision=provision))

        state(reused, "provision")  # the pid now belongs to another process: left alone
        assert reload_fleet_broker(folder) is None
        state(real, str(tmp_path / "other"))  # another run's folder
        assert reload_fleet_broker(folder) is None
        assert proc.poll() is None
        state(real, "provision")  # as `fleet up` records a relative run folder
        assert reload_fleet_broker(folder) == proc.pid
        assert proc.wait(5) == -signal.SIGHUP
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
