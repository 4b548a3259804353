"""Every system and Python package the project uses is installed by the project's own files.

CI runs on a machine that may hold packages installed by hand, where a missing install step does
not show: `make demo` once failed on a fresh machine because the Cortex-M link needs
`libstdc++_nano.a`, whose Debian package only the development machine had. These tests ask the
package managers who owns every tool, archive and library the build and the tests really use
(the Cortex-M link map, the native and fuzzer links, the executables the tests start) and every
module `host/`, `tests/`, `tools/` and `bench/` import, and fail naming the package that
`make setup` (APT_PACKAGES) or pyproject.toml does not install.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from tinyfl.fleet import Emulator, build_firmware

REPO = Path(__file__).resolve().parents[2]
# Executables the build, the fleet and the tests start by name (the compilers' own helpers, such
# as cc1plus, as and ld, are found from the compilers' -### output below).
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-gcc-ar", "arm-none-eabi-objcopy",
         "arm-none-eabi-size", "qemu-system-arm", "mosquitto", "mosquitto_passwd", "gcc", "g++",
         "cc", "c++", "ar", "size", "clang++", "gdb")
# Archives and libraries linked into the host-native builds: the native node, the firmware unit
# tests and the libFuzzer targets (tools/fuzz.sh).
HOST_LINKS = (("g++", ()), ("clang++", ("-fsanitize=fuzzer,address,undefined",)))
SCANNED = ("host", "tests", "tools", "bench", "firmware")


def apt_packages(makefile: Path = REPO / "Makefile") -> list[str]:
    match = re.search(r"^APT_PACKAGES\s*:=\s*(.*)$", makefile.read_text(), re.MULTILINE)
    assert match, "Makefile has no APT_PACKAGES line"
    return match.group(1).split()


def installed_with(packages: list[str]) -> set[str]:
    """The packages and everything they depend on (what `apt-get install --no-install-recommends`
    brings), plus Debian's essential and required packages, which every Debian machine has."""
    out = subprocess.run(
        ["apt-cache", "depends", "--recurse", "--installed", "--no-recommends", "--no-suggests",
         "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *packages],
        capture_output=True, text=True, check=True).stdout
    closure = {line.strip().strip("<>") for line in out.splitlines() if not line.startswith(" ")}
    base = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Priority} ${Essential}\n"],
                          capture_output=True, text=True, check=True).stdout
    for line in base.splitlines():
        name, priority, essential = (line.split() + ["", "", ""])[:3]
        if essential == "yes" or priority == "required":
            closure.add(name)
    return {name.split(":")[0] for name in closure}


def owner(path: str) -> str | None:
    """The Debian package that installed `path` (tried as given and with symlinks resolved)."""
    candidates = [path, os.path.realpath(path)]
    candidates += [c.removeprefix("/usr") for c in candidates if c.startswith("/usr/lib")]
    for candidate in dict.fromkeys(candidates):
        done = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True,
                              check=False)
        if done.returncode == 0:
            return done.stdout.split(":", 1)[0].split(",")[0].strip()
    return None


def map_file_inputs(map_file: Path) -> set[str]:
    """Archives and objects outside the repository that the linker loaded (GNU ld -Map)."""
    text = map_file.read_text(errors="replace")
    paths = {m.group(1) for m in re.finditer(r"(/[^\s()]+\.(?:a|o))(?:\(|\s|$)", text)}
    return {p for p in paths if not p.startswith(str(REPO)) and os.path.exists(p)}


def link_inputs(compiler: str, flags: tuple[str, ...], workdir: Path) -> set[str]:
    """The programs, objects and libraries a compiler driver uses to build and link a C++ file,
    read from its `-###` dry run, with `-l` names resolved along its `-L` directories."""
    source = workdir / "probe.cpp"
    source.write_text("int main() { return 0; }\n")
    dry = subprocess.run([compiler, *flags, "-###", str(source), "-o", str(workdir / "probe")],
                         capture_output=True, text=True, check=True).stderr
    words = [w.strip('"') for line in dry.splitlines() if line.startswith(" ") for w in line.split()]
    dirs = [w[2:] for w in words if w.startswith("-L")]
    found = {w for w in words if w.startswith("/") and os.path.isfile(w)}
    for lib in (w[2:] for w in words if w.startswith("-l")):
        for d in dirs:
            hit = next((f"{d}/lib{lib}{ext}" for ext in (".so", ".a")
                        if os.path.isfile(f"{d}/lib{lib}{ext}")), None)
            if hit:
                found.add(hit)
                break
    return {p for p in found if not p.startswith(str(workdir))}


def missing_packages(used: dict[str, str], allowed: set[str]) -> dict[str, list[str]]:
    """{package or '<no package>': [what uses it]} for every used path not covered by `allowed`."""
    missing: dict[str, list[str]] = {}
    for path, why in sorted(used.items()):
        package = owner(path)
        if package is None or package not in allowed:
            missing.setdefault(package or "<no Debian package>", []).append(f"{path} ({why})")
    return missing


@pytest.fixture(scope="module")
def used_system_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    build_firmware(Emulator.QEMU)
    build_firmware(Emulator.NATIVE)
    used: dict[str, str] = {}
    for path in map_file_inputs(REPO / ".pio/build/qemu_cortex_m4/firmware.map"):
        used[path] = "Cortex-M link map"
    workdir = tmp_path_factory.mktemp("links")
    for compiler, flags in HOST_LINKS:
        for path in link_inputs(compiler, flags, workdir):
            used.setdefault(path, f"{compiler} {' '.join(flags)} link".replace("  ", " "))
    ldd = subprocess.run(["ldd", str(REPO / ".pio/build/native/program")], capture_output=True,
                         text=True, check=True).stdout
    for path in re.findall(r"(/\S+) \(0x", ldd):
        used.setdefault(path, "native node's shared libraries")
    for tool in TOOLS:
        where = shutil.which(tool)
        assert where, f"{tool} is not on PATH: `make setup` should install it"
        used.setdefault(where, "executable the build or the tests run")
    return used


@pytest.mark.firmware
def test_every_system_file_the_build_uses_comes_from_a_package_make_setup_installs(
        used_system_files: dict[str, str]) -> None:
    assert "libstdc++_nano.a" in " ".join(used_system_files), "the Cortex-M link map was not read"
    missing = missing_packages(used_system_files, installed_with(apt_packages()))
    assert not missing, "add to APT_PACKAGES in the Makefile:\n" + "\n".join(
        f"  {package}: {', '.join(paths[:3])}" for package, paths in missing.items())


@pytest.mark.firmware
def test_the_check_names_a_package_taken_out_of_apt_packages(
        used_system_files: dict[str, str]) -> None:
    trimmed = [p for p in apt_packages() if p != "libstdc++-arm-none-eabi-newlib"]
    missing = missing_packages(used_system_files, installed_with(trimmed))
    assert "libstdc++-arm-none-eabi-newlib" in missing
    assert any("libstdc++_nano.a" in used for used in missing["libstdc++-arm-none-eabi-newlib"])


def imported_modules(roots: tuple[str, ...] = SCANNED) -> dict[str, str]:
    """{top-level module: first file importing it} for absolute imports in the scanned trees."""
    found: dict[str, str] = {}
    for root in roots:
        for path in sorted((REPO / root).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


def local_modules() -> set[str]:
    """Modules the repository itself provides: the package and sibling files of scanned code."""
    local = {"tinyfl"}
    for root in SCANNED:
        for path in (REPO / root).rglob("*.py"):
            local.add(path.stem)
            local.add(path.parent.name)
    return local


def declared_distributions() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return {_normalize(re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0]) for req in requirements}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def undeclared_imports(modules: dict[str, str], declared: set[str]) -> dict[str, str]:
    """{module: why} for imports that are neither stdlib, local nor from a declared distribution."""
    providers = importlib.metadata.packages_distributions()
    local = local_modules()
    problems: dict[str, str] = {}
    for module, where in sorted(modules.items()):
        if module in sys.stdlib_module_names or module in local:
            continue
        dists = {_normalize(d) for d in providers.get(module, [])}
        if not dists:
            problems[module] = f"imported by {where} but installed by no distribution"
        elif not dists & declared:
            problems[module] = (f"imported by {where}; comes from {', '.join(sorted(dists))}, "
                                "which pyproject.toml does not name")
    return problems


def test_every_python_module_imported_comes_from_a_distribution_pyproject_names() -> None:
    modules = imported_modules()
    assert {"numpy", "paho", "serial", "pytest"} <= set(modules), "the import scan found too little"
    problems = undeclared_imports(modules, declared_distributions())
    assert not problems, "\n".join(f"{m}: {why}" for m, why in problems.items())


def test_the_python_check_names_a_distribution_taken_out_of_pyproject() -> None:
    declared = declared_distributions() - {"pyserial"}
    problems = undeclared_imports(imported_modules(), declared)
    assert "serial" in problems and "pyserial" in problems["serial"]
