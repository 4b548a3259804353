"""SCons builder: bare-metal Cortex-M images with the Debian arm-none-eabi toolchain and newlib.

Targets: the ELF (default), `size` (flash/RAM per section and per object, from the map file),
`upload` (boots the image in qemu-system-arm; see `board_upload.*` / `upload_flags`), `exec` alias.
"""
import os

from SCons.Script import AlwaysBuild, Default, DefaultEnvironment

env = DefaultEnvironment()
board = env.BoardConfig()
cpu = board.get("build.cpu", "cortex-m4")
fpu_flags = ["-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"] if board.get("build.fpu", "yes") == "yes" else []
machine_flags = ["-mcpu=%s" % cpu, "-mthumb"] + fpu_flags

env.Replace(
    AR="arm-none-eabi-gcc-ar",
    AS="arm-none-eabi-as",
    CC="arm-none-eabi-gcc",
    CXX="arm-none-eabi-g++",
    GDB="arm-none-eabi-gdb",
    OBJCOPY="arm-none-eabi-objcopy",
    RANLIB="arm-none-eabi-gcc-ranlib",
    SIZETOOL="arm-none-eabi-size",
    PROGSUFFIX=".elf",
)
env.Append(
    ASFLAGS=machine_flags,
    CCFLAGS=machine_flags + ["-ffunction-sections", "-fdata-sections", "-Os", "-g"],
    CXXFLAGS=["-fno-exceptions", "-fno-rtti", "-fno-threadsafe-statics", "-fno-use-cxa-atexit"],
    LINKFLAGS=machine_flags
    + [
        "-Wl,--gc-sections",
        "-Wl,-Map,%s" % os.path.join("$BUILD_DIR", "firmware.map"),
        "--specs=nano.specs",
        "--specs=nosys.specs",
        "-nostartfiles",
    ],
    LIBS=["m", "c", "gcc"],
)
# PlatformIO itself passes the board's build.ldscript to the linker (-T).
elf = env.BuildProgram()
# Every link prints flash and RAM per component (tools/firmware_size.py reads the map file).
size_script = os.path.join("$PROJECT_DIR", "tools", "firmware_size.py")
if os.path.isfile(os.path.join(env.subst("$PROJECT_DIR"), "tools", "firmware_size.py")):
    env.AddPostAction(
        elf,
        env.VerboseAction(
            '"$PYTHONEXE" "%s" "%s"' % (size_script, os.path.join("$BUILD_DIR", "firmware.map")),
            "Flash and RAM per component",
        ),
    )
AlwaysBuild(env.Alias("size", elf, env.VerboseAction("$SIZETOOL -A -d $SOURCES", "Program size")))

# `pio run -e <env> -t upload`: the emulated board's "flash" is booting the ELF in QEMU.
qemu_machine = board.get("upload.qemu_machine", "mps2-an386")
env.Replace(
    UPLOADER="qemu-system-arm",
    UPLOADERFLAGS=["-machine", qemu_machine, "-nographic", "-monitor", "none"],
    UPLOADCMD='$UPLOADER $UPLOADERFLAGS $UPLOAD_FLAGS -kernel $SOURCE',
)
env.AddPlatformTarget("upload", elf, env.VerboseAction("$UPLOADCMD", "Booting $SOURCE in QEMU"), "Upload")
Default([elf])
