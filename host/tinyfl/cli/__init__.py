"""The `tinyfl` command line: `main.py` dispatches to one module per command.

A command module exposes `add_parser(subparsers) -> argparse.ArgumentParser` (register the
subcommand, its one-line `help` and its options) and `run(args) -> int` (the exit code). Errors are
raised as `tinyfl.errors.TinyFLError` subclasses; `main` turns them into exit codes.
"""

from __future__ import annotations

import argparse
from typing import Protocol, TypeAlias

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class Command(Protocol):
    """What main.py needs from a command module (modules satisfy this protocol structurally)."""

    def add_parser(self, subparsers: Subparsers) -> argparse.ArgumentParser: ...

    def run(self, args: argparse.Namespace) -> int: ...


__all__ = ["Command", "Subparsers"]
