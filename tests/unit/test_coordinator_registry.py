"""The node registry: eligibility from retained HELLO and status, in any order, and the reasons a
node is not selected."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from tinyfl.coordinator import Registry
from tinyfl.wire import Hello, encode

HASH = bytes.fromhex("0011223344556677")


def hello(node_id: str = "n1", **overrides: object) -> Hello:
    base = Hello(node_id, 0x000100, HASH, 100, 0, 2000, 64, 5, 0x0F, 0)
    return replace(base, **overrides)  # type: ignore[arg-type]


def registry(**overrides: object) -> Registry:
    params: dict[str, object] = {
        "model_hash": HASH,
        "embed_dim": 64,
        "n_classes": 5,
        "uplink_bits": 8,
        "global_payload": 1400,
    }
    params.update(overrides)
    return Registry(**params)  # type: ignore[arg-type]


def test_a_node_is_eligible_once_it_said_hello_and_online_in_either_order() -> None:
    reg = registry()
    assert reg.on_status("a", b"online")
    assert reg.eligible() == []  # no capabilities known yet
    assert reg.on_hello("a", encode(hello("a")))
    assert reg.eligible() == ["a"]
    assert reg.on_hello("b", encode(hello("b")))
    assert reg.eligible() == ["a"]  # a retained HELLO alone does not mean the node is up
    assert reg.on_status("b", b"online")
    assert reg.eligible() == ["a", "b"]
    assert not reg.on_status("b", b"online")  # no change
    assert reg.on_status("a", b"offline")  # the last will
    assert reg.eligible() == ["b"] and reg.online() == ["b"]
    assert reg.get("b") is not None and reg.get("b").n_samples == 100  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"model_hash": b"\xff" * 8}, "wrong_model"),
        ({"embed_dim": 32}, "wrong_shape"),
        ({"n_classes": 6}, "wrong_shape"),
        ({"n_samples": 0}, "no_samples"),
        ({"uplink_bits": 0x08}, "uplink_unsupported"),  # float32 only, the run wants 8 bits
        ({"max_payload": 1399}, "payload_too_small"),
    ],
)
def test_nodes_that_cannot_train_this_run_are_not_eligible_and_say_why(
    overrides: dict[str, object], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    reg = registry()
    reg.on_status("x", b"online")
    with caplog.at_level(logging.WARNING):
        reg.on_hello("x", encode(hello("x", **overrides)))
        reg.on_hello("x", encode(hello("x", **overrides)))  # retained again after a reconnect
    info = reg.get("x")
    assert info is not None and reg.ineligible_reason(info) == reason
    assert reg.eligible() == []
    warnings = [r for r in caplog.records if "will not be selected" in r.getMessage()]
    assert len(warnings) == 1  # logged once per reason, not on every HELLO


def test_bad_or_misplaced_hellos_and_statuses_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    reg = registry()
    with caplog.at_level(logging.WARNING):
        assert not reg.on_hello("a", b"\x00garbage")
        assert not reg.on_hello("a", encode(hello("b")))  # b's HELLO on a's topic
        assert not reg.on_status("a", b"sleeping")
    assert reg.get("a") is None or reg.get("a").hello is None  # type: ignore[union-attr]
    assert len(caplog.records) == 3


def test_a_deleted_retained_hello_forgets_the_capabilities() -> None:
    reg = registry()
    reg.on_status("a", b"online")
    reg.on_hello("a", encode(hello("a")))
    assert reg.on_hello("a", b"")
    assert reg.eligible() == []
    assert reg.max_payload("a") == 0 and reg.max_payload("nobody") == 0
