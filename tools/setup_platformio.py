#!/usr/bin/env python3
"""Make PlatformIO build offline: register PyPI's SCons as PlatformIO's `tool-scons`.

PlatformIO normally downloads `platformio/tool-scons` from its registry the first time a project
is built. These machines reach PyPI but not that registry, so this script wraps the SCons that pip
installed into a local package and installs it under the `platformio` owner, which the CLI's
package-spec syntax cannot express but the Python API can. Idempotent: run it as often as you like.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

SCONS_PACKAGE_VERSION = "4.41101.0"  # the version scheme PlatformIO 6.x expects for SCons 4.11.1


def installed_scons_version() -> str | None:
    from platformio.package.manager.tool import ToolPackageManager
    from platformio.package.meta import PackageSpec

    pkg = ToolPackageManager().get_package(PackageSpec(owner="platformio", name="tool-scons"))
    return str(pkg.metadata.version) if pkg else None


def write_scons_package(folder: Path) -> None:
    (folder / "package.json").write_text(
        json.dumps(
            {
                "name": "tool-scons",
                "version": SCONS_PACKAGE_VERSION,
                "description": "SCons from PyPI, wrapped for offline PlatformIO builds",
            }
        )
    )
    # PlatformIO runs `<python> <pkg>/scons.py ...`; delegate to the pip-installed SCons.
    (folder / "scons.py").write_text(
        "import sys\n"
        "import SCons.Script\n"
        "sys.exit(SCons.Script.Main.main())\n"
    )


def main() -> int:
    try:
        import SCons  # noqa: F401
    except ImportError:
        print("error: SCons is not installed; run `pip install scons`", file=sys.stderr)
        return 1
    version = installed_scons_version()
    if version is not None:
        print(f"tool-scons {version} already registered")
        return 0
    from platformio.package.manager.tool import ToolPackageManager
    from platformio.package.meta import PackageSpec

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "tool-scons"
        folder.mkdir()
        write_scons_package(folder)
        ToolPackageManager().install(
            PackageSpec(owner="platformio", name="tool-scons", uri=f"file://{folder}")
        )
    print(f"tool-scons registered: {installed_scons_version()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
