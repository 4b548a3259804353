"""`tinyfl fleet` argument checks: usage mistakes exit 2 before anything is built or started."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyfl.cli.main import main


@pytest.mark.parametrize(
    "argv",
    [
        ["fleet"],
        ["fleet", "up", "--nodes", "2", "--restart", "on-failure"],  # needs --foreground
        ["fleet", "up", "--nodes", "2", "--foreground", "--max-restarts", "-1"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "error:" in capsys.readouterr().err


def test_down_and_status_without_a_fleet(tmp_path: Path) -> None:
    assert main(["fleet", "down", "--run", str(tmp_path)]) == 2
    assert main(["fleet", "status", "--run", str(tmp_path)]) == 2
