"""SCons builder: a Linux program built with the system gcc/g++."""
from SCons.Script import AlwaysBuild, Default, DefaultEnvironment

env = DefaultEnvironment()
env.Replace(
    AR="ar",
    AS="gcc",
    CC="gcc",
    CXX="g++",
    RANLIB="ranlib",
    PROGSUFFIX="",
    SIZETOOL="size",
)
program = env.BuildProgram()
AlwaysBuild(env.Alias("size", program, env.VerboseAction("$SIZETOOL $SOURCES", "Program size")))
env.AddPlatformTarget("exec", program, env.VerboseAction("$SOURCE $PROGRAM_ARGS", "Running $SOURCE"), "Run program")
Default([program])
