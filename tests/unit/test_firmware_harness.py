"""The firmware test harness (firmware/test/check.h) must never count an unrun case as passed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CHECK_H = Path(__file__).resolve().parents[2] / "firmware" / "test" / "check.h"


def _run_program(tmp_path: Path, cases: int, failing: int = -1) -> subprocess.CompletedProcess[str]:
    """Compiles and runs a test program with `cases` cases; case number `failing` fails."""
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.fail("g++ not found: make setup installs it", pytrace=False)
    body = [f'#include "{CHECK_H}"']
    for i in range(cases):
        body.append(f"TINYFL_TEST(case_{i}) {{ CHECK_EQ({i}, {i if i != failing else -1}); }}")
    body.append("int main() { return tinyfl_test::run_all(); }")
    source = tmp_path / "program.cpp"
    source.write_text("\n".join(body) + "\n")
    subprocess.run([compiler, "-std=c++17", "-o", str(tmp_path / "program"), str(source)], check=True)
    return subprocess.run([str(tmp_path / "program")], capture_output=True, text=True, check=False)


def test_a_full_program_runs_every_case_and_passes(tmp_path: Path) -> None:
    result = _run_program(tmp_path, 256)
    assert result.returncode == 0, result.stdout
    assert result.stdout.count("\nok ") + result.stdout.startswith("ok ") == 256
    assert result.stdout.rstrip().endswith("256 passed, 0 failed")


def test_cases_past_the_capacity_fail_the_program_loudly(tmp_path: Path) -> None:
    result = _run_program(tmp_path, 300)
    assert result.returncode == 1
    assert "FAIL-DETAIL 44 cases past the harness's 256 were not run" in result.stdout
    assert "FAIL harness_capacity" in result.stdout
    assert result.stdout.rstrip().endswith("256 passed, 1 failed")


def test_a_failing_case_names_its_check(tmp_path: Path) -> None:
    result = _run_program(tmp_path, 3, failing=1)
    assert result.returncode == 1
    assert "FAIL-DETAIL CHECK_EQ(1, -1): 1 != -1" in result.stdout
    assert "FAIL case_1" in result.stdout
    assert result.stdout.rstrip().endswith("2 passed, 1 failed")
