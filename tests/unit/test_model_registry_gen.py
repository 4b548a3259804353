"""The generator of a node image's model registry (firmware/tools/model_registry.py), without a
compiler: which folders it accepts, what it writes, and that it rewrites only what changed.

The PlatformIO build runs it through firmware/lib/tinyfl_models/registry_build.py; building and
running images with it is tests/integration/test_firmware_models.py.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tinyfl.model.firmware_blob import blob_c_header

REPO = Path(__file__).resolve().parents[2]
HAR_HASH = json.loads((REPO / "models" / "har" / "metadata.json").read_text())["model_hash"]
NSL_KDD_HASH = json.loads((REPO / "models" / "nsl-kdd" / "metadata.json").read_text())[
    "model_hash"]


def _load() -> ModuleType:
    path = REPO / "firmware" / "tools" / "model_registry.py"
    spec = importlib.util.spec_from_file_location("tinyfl_model_registry_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


reg = _load()


def test_a_list_is_split_at_any_whitespace() -> None:
    assert reg.split_list(" models/har\n  /abs/pump\tx ") == ["models/har", "/abs/pump", "x"]
    assert reg.split_list("") == []


def test_the_checkout_models_are_read_from_their_headers() -> None:
    har, nsl = reg.read_models(["models/har", "models/nsl-kdd"], REPO)
    assert (har.task, har.model_hash.hex(), har.symbol) == ("har", HAR_HASH, "tinyfl_model_blob")
    assert (nsl.task, nsl.model_hash.hex()) == ("nsl-kdd", NSL_KDD_HASH)
    assert har.folder == REPO / "models" / "har"
    assert reg.describe([har, nsl]) == (
        f"compiled models: har {HAR_HASH} (models/har), nsl-kdd {NSL_KDD_HASH} (models/nsl-kdd)")


def test_a_missing_folder_is_named_with_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(reg.RegistryError) as err:
        reg.read_models(["models/har", "models/pump"], REPO)
    assert "model folder models/pump" in str(err.value)
    assert "does not exist" in str(err.value)
    assert "tinyfl model build --task TASK --out models/pump" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(reg.RegistryError, match=r"empty has no backbone\.h; `tinyfl model build"):
        reg.read_models([str(tmp_path / "empty")], REPO)


def test_a_header_that_is_no_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "backbone.h").write_text("#pragma once\nstatic const int x = 1;\n")
    with pytest.raises(reg.RegistryError, match="not a backbone header written by tinyfl model"):
        reg.read_models([str(tmp_path)], REPO)


def test_two_folders_with_one_model_are_refused_naming_both(tmp_path: Path) -> None:
    copy = tmp_path / "har-copy"
    copy.mkdir()
    (copy / "backbone.h").write_bytes((REPO / "models/har/backbone.h").read_bytes())
    with pytest.raises(reg.RegistryError) as err:
        reg.read_models(["models/har", "models/nsl-kdd", str(copy)], REPO)
    assert f"models/har and {copy} hold the same model (hash {HAR_HASH})" in str(err.value)
    with pytest.raises(reg.RegistryError, match="same model"):
        reg.read_models(["models/har", "models/../models/har"], REPO)


def test_a_header_with_another_array_name_is_compiled_under_that_name(tmp_path: Path) -> None:
    blob = bytes(range(40))
    (tmp_path / "backbone.h").write_text(blob_c_header(blob, name="pump_model_blob", task="pump"))
    (model,) = reg.read_models([str(tmp_path)], REPO)
    assert (model.symbol, model.task) == ("pump_model_blob", "pump")
    assert model.model_hash == hashlib.sha256(blob).digest()[:8]
    source = reg.model_source(model)
    assert f'#include "{tmp_path}/backbone.h"' in source
    assert "pump_model_blob_task, pump_model_blob, pump_model_blob_len, pump_model_blob_hash" \
        in source


def test_the_table_follows_the_list_and_a_model_unit_only_its_folder() -> None:
    har, nsl = reg.read_models(["models/har", "models/nsl-kdd"], REPO)
    both, reverse, one = reg.sources([har, nsl]), reg.sources([nsl, har]), reg.sources([har])
    assert both["registry.cpp"] != reverse["registry.cpp"] != one["registry.cpp"]
    table = both["registry.cpp"]
    assert table.index(f"&registry::{har.key}") < table.index(f"&registry::{nsl.key}")
    assert "const size_t kModelCount = 2;" in table
    assert "const size_t kModelCount = 1;" in one["registry.cpp"]
    # The same folder gives the same unit under the same name in every list: not recompiled.
    assert both[f"model_{har.key}.cpp"] == one[f"model_{har.key}.cpp"]
    assert set(both) == {"registry.cpp", f"model_{har.key}.cpp", f"model_{nsl.key}.cpp"}
    assert all(text.startswith(reg.MARKER) for text in both.values())
    none = reg.sources([])
    assert set(none) == {"registry.cpp"}
    assert "const size_t kModelCount = 0;" in none["registry.cpp"]


def test_only_changed_files_are_written_and_files_of_an_old_list_removed(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    out.mkdir()
    (out / "hand_written.cpp").write_text("// not generated: kept\n")
    _, paths = reg.generate(["models/har", "models/nsl-kdd"], REPO, out)
    assert [p.name for p in paths][-1] == "registry.cpp" and len(paths) == 3
    stamps = {p: p.stat().st_mtime_ns for p in paths}
    for p in paths:  # an unchanged file must keep its timestamp, so set it back visibly
        os.utime(p, ns=(stamps[p] - 10**9, stamps[p] - 10**9))
    _, again = reg.generate(["models/har", "models/nsl-kdd"], REPO, out)
    assert again == paths
    assert all(p.stat().st_mtime_ns == stamps[p] - 10**9 for p in paths)

    _, har_only = reg.generate(["models/har"], REPO, out)
    names = sorted(p.name for p in out.glob("*.cpp"))
    assert names == sorted([har_only[0].name, "registry.cpp", "hand_written.cpp"])
    assert har_only[0].stat().st_mtime_ns == stamps[har_only[0]] - 10**9  # same model, untouched
    assert "kModelCount = 1;" in (out / "registry.cpp").read_text()


def test_the_command_writes_the_registry_or_names_the_bad_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert reg.main(["--out", str(tmp_path / "gen"), "--project", str(REPO), "models/har"]) == 0
    assert f"compiled models: har {HAR_HASH}" in capsys.readouterr().out
    assert (tmp_path / "gen" / "registry.cpp").is_file()
    assert reg.main(["--out", str(tmp_path / "gen"), "--project", str(REPO), "models/x"]) == 1
    assert "error: model folder models/x" in capsys.readouterr().err
