"""PlatformIO build script of the tinyfl_models library (library.json `build.extraScript`).

Generates the registry of the models an image carries (firmware/tools/model_registry.py: one
translation unit per model folder plus the table behind compiled_model()) into
$BUILD_DIR/tinyfl_models_registry/ and links it as libtinyfl_models_registry.a. Nothing is written
into the source tree.

Which models: the environment variable TINYFL_MODELS when it is set (set but empty: none), else
the env's `custom_models` option in platformio.ini. Both list model folders (`tinyfl model build
--out DIR`) separated by whitespace, relative to the project folder unless absolute. A folder
that is no model, or two folders with the same model, stop the build with the reason.

PlatformIO runs this script for every library in lib_dir while it sets a build up, before its
dependency finder knows whether the program uses tinyfl_models. So the list is checked and the
sources written at every build, but they are compiled only for a program that links this
library: the archive reaches the link line through this library's LIBS, which PlatformIO passes
on only from the libraries a program depends on, and SCons builds only what the program needs.
SCons sees a changed backbone.h through the #include (and the explicit Depends below); the
generator rewrites a file only when its text changes, so an unchanged list rebuilds nothing.
"""
import importlib.util
import os
import sys
from pathlib import Path

Import("env", "pio_lib_builder")  # noqa: F821 - SCons provides Import in SConscripts


def load_generator(lib_dir):
    """firmware/tools/model_registry.py as a module (it is not on PlatformIO's import path)."""
    path = os.path.normpath(os.path.join(lib_dir, "..", "..", "tools", "model_registry.py"))
    spec = importlib.util.spec_from_file_location("tinyfl_model_registry", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


registry = load_generator(pio_lib_builder.path)  # noqa: F821
listed = os.environ.get(registry.ENV_VAR)
origin = "the environment variable " + registry.ENV_VAR
if listed is None:
    listed = env.GetProjectOption("custom_models", "")  # noqa: F821
    origin = f"custom_models of [env:{env.subst('$PIOENV')}] in platformio.ini"  # noqa: F821
out_dir = Path(env.subst("$BUILD_DIR")) / "tinyfl_models_registry"  # noqa: F821
try:
    models, paths = registry.generate(registry.split_list(listed),
                                      Path(env.subst("$PROJECT_DIR")), out_dir)  # noqa: F821
except registry.RegistryError as exc:
    sys.stderr.write(f"Error: {exc} (model list: {origin})\n")
    env.Exit(1)  # noqa: F821
print(f"{registry.describe(models)} (from {origin})")

objects = []
for path, model in zip(paths, models + [None]):  # the table comes last
    obj = env.Object(str(path))  # noqa: F821
    if model is not None:
        env.Depends(obj, str(model.header))  # noqa: F821
    objects += obj
env.Append(LIBS=env.StaticLibrary(str(out_dir / "tinyfl_models_registry"), objects))  # noqa: F821
