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

# `pio run -e <env> -t upload`: the emulated board's "flash" is booting the ELF in QEMU. UART0 (the
# node's MQTT pipe) connects to the broker, UART1 (its log) goes to the terminal; the node's config
# record and data blob, when given, are loaded where the firmware looks for them (docs/WIRE.md).
#   custom_qemu_broker = 127.0.0.1:1883      custom_qemu_node_config = node01.cfg
#   custom_qemu_node_blob = node01.blob      upload_flags = (anything else for qemu-system-arm)
qemu_machine = board.get("upload.qemu_machine", "mps2-an386")
broker = env.GetProjectOption("custom_qemu_broker", "127.0.0.1:1883")
qemu_flags = ["-machine", qemu_machine, "-nographic", "-monitor", "none",
              "-serial", "tcp:%s,reconnect=1,nodelay=on" % broker, "-serial", "stdio"]
for option, address in (("custom_qemu_node_config", "0x21F00000"), ("custom_qemu_node_blob", "0x21000000")):
    path = env.GetProjectOption(option, "")
    if path:
        qemu_flags += ["-device", "loader,file=%s,addr=%s,force-raw=on" % (path, address)]
env.Replace(
    UPLOADER="qemu-system-arm",
    UPLOADERFLAGS=qemu_flags,
    UPLOADCMD="$UPLOADER $UPLOADERFLAGS $UPLOAD_FLAGS -kernel $SOURCE",
)
env.AddPlatformTarget("upload", elf, env.VerboseAction("$UPLOADCMD", "Booting $SOURCE in QEMU"), "Upload")
Default([elf])
