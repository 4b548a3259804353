"""The head and quantizer vector generator (tools/gen_head_vectors.py), loaded once as a module so
tests can regenerate vectors and read the named-array container it writes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def head_vector_generator() -> ModuleType:
    if "gen_head_vectors" in sys.modules:
        return sys.modules["gen_head_vectors"]
    spec = importlib.util.spec_from_file_location(
        "gen_head_vectors", ROOT / "tools" / "gen_head_vectors.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_head_vectors"] = module
    spec.loader.exec_module(module)
    return module
