#!/usr/bin/env bash
# Builds every libFuzzer target in firmware/fuzz/ with clang (ASan + UBSan) and runs each for a
# bounded time, seeded with the golden vectors, as many at a time as there are cores; the Python
# decoder's atheris target runs among them.
# Usage: tools/fuzz.sh [SECONDS_PER_TARGET]   (default 30). Exits non-zero on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
out="fuzz-out"
mkdir -p "$out"
# The core plus the compiled models, so data blobs go all the way through the backbone. The model
# registry comes from the generator the PlatformIO build runs (firmware/tools/model_registry.py),
# for the folders in TINYFL_MODELS (default: both models of this checkout; the seed below needs
# models/nsl-kdd).
models="${TINYFL_MODELS:-models/har models/nsl-kdd}"
# shellcheck disable=SC2086 # the list is whitespace-separated, as in platformio.ini
python3 firmware/tools/model_registry.py --out "$out/models" $models
core_sources=(firmware/lib/tinyfl/src/*.cpp firmware/lib/tinyfl_models/src/*.cpp "$out"/models/*.cpp)
flags=(-std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
       -Ifirmware/lib/tinyfl/include -Ifirmware/lib/tinyfl_models/include)
jobs="$(nproc 2>/dev/null || echo 2)"

# The seed corpus every target starts from: the golden vectors, the firmware model blobs (v2, so
# fuzz_backbone starts from graphs the parser accepts), a raw-window blob the compiled NSL-KDD
# backbone takes (so the fuzzers start inside that path) and a node config record with
# credentials (so fuzz_wire starts inside that parser too).
seeds="$out/seeds"
rm -rf "$seeds" && mkdir -p "$seeds"
find testvectors -name '*.bin' -size -8k -exec cp {} "$seeds/" \; 2>/dev/null || true
find testvectors models -name '*.tfmb' -size -24k -exec cp {} "$seeds/" \; 2>/dev/null || true
python3 - "$seeds/seed-nslkdd-windows.bin" <<'PY'
import json, sys
import numpy as np
from tinyfl.wire import BlobKind, DataBlob
meta = json.load(open("models/nsl-kdd/metadata.json"))
rng = np.random.default_rng(0)
DataBlob(kind=BlobKind.RAW_WINDOWS, n_classes=5, scale=meta["input"]["scale"],
         zero_point=meta["input"]["zero_point"], model_hash=bytes.fromhex(meta["model_hash"]),
         labels=rng.integers(0, 5, 3).astype(np.uint8),
         samples=rng.integers(-128, 128, (3, meta["input"]["shape"][-1])).astype(np.int8),
         ).write(sys.argv[1])
PY
python3 -c "import sys; from tinyfl.wire.node_config import encode_node_config as e; \
open(sys.argv[1], 'wb').write(e('node01', 'tinyfl/lab', 30, 'node01', 'pw'))" \
  "$seeds/seed-node-config.bin"

# The core is compiled once, with the fuzzing flags, and linked into every target; the compiler
# runs on every core at once.
echo "== building the core for fuzzing"
mkdir -p "$out/obj"
printf '%s\n' "${core_sources[@]}" | xargs -P "$jobs" -I{} sh -c \
  'clang++ "$@" -c "$0" -o "'"$out"'/obj/$(echo "$0" | tr / _).o"' {} "${flags[@]}"
targets=()
for target in firmware/fuzz/fuzz_*.cpp; do
  name="$(basename "$target" .cpp)"
  echo "== $name: building"
  clang++ "${flags[@]}" "$target" "$out"/obj/*.o -o "$out/$name"
  rm -rf "$out/corpus-$name" && cp -r "$seeds" "$out/corpus-$name"
  targets+=("$name")
done

# Each fuzzer is single-threaded: run as many at a time as there are cores, each for the full
# time. A finding stops the run with the fuzzer's log and the reproducer's path.
fuzz_one() {
  local name="$1"
  if [ "$name" = atheris ]; then
    python3 tests/fuzz/fuzz_wire.py -max_total_time="$seconds" >"$out/atheris.log" 2>&1 || {
      tail -n 40 "$out/atheris.log"
      echo "FAIL: the Python decoder raised something other than WireError"
      return 1
    }
    echo "== atheris (Python wire decoder, ${seconds}s): $(tail -n 1 "$out/atheris.log")"
    return 0
  fi
  (cd "$out" && "./$name" -max_total_time="$seconds" -print_final_stats=1 "corpus-$name" 2>"$name.log") || {
    tail -n 40 "$out/$name.log"
    echo "FAIL: $name found a crash; reproducer in $out/"
    return 1
  }
  echo "== $name (${seconds}s): $(grep -E "stat::number_of_executed_units" "$out/$name.log" | tail -n 1)"
}
export -f fuzz_one
export out seconds
[ -f tests/fuzz/fuzz_wire.py ] && targets+=(atheris)
echo "== fuzzing ${#targets[@]} targets for ${seconds}s each, $jobs at a time"
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'fuzz_one "$0"' {}
echo "fuzzing done"
