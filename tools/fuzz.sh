#!/usr/bin/env bash
# Builds every libFuzzer target in firmware/fuzz/ with clang (ASan + UBSan) and runs each for a
# bounded time, seeded with the golden vectors; then runs the Python decoder's atheris target.
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
for target in firmware/fuzz/fuzz_*.cpp; do
  name="$(basename "$target" .cpp)"
  echo "== $name: building"
  clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -Ifirmware/lib/tinyfl/include -Ifirmware/lib/tinyfl_models/include \
    "$target" "${core_sources[@]}" -o "$out/$name"
  corpus="$out/corpus-$name"
  mkdir -p "$corpus"
  find testvectors -name '*.bin' -size -8k -exec cp {} "$corpus/" \; 2>/dev/null || true
  # Firmware model blobs (v2), so fuzz_backbone starts from graphs the parser accepts.
  find testvectors models -name '*.tfmb' -size -24k -exec cp {} "$corpus/" \; 2>/dev/null || true
  # A raw-window blob the compiled NSL-KDD backbone takes, so the fuzzer starts inside that path.
  python3 - "$corpus/seed-nslkdd-windows.bin" <<'PY'
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
  # A node config record with credentials, so fuzz_wire starts inside that parser too.
  python3 -c "import sys; from tinyfl.wire.node_config import encode_node_config as e; \
open(sys.argv[1], 'wb').write(e('node01', 'tinyfl/lab', 30, 'node01', 'pw'))" \
    "$corpus/seed-node-config.bin"
  echo "== $name: fuzzing for ${seconds}s"
  (cd "$out" && "./$name" -max_total_time="$seconds" -print_final_stats=1 "corpus-$name" 2>"$name.log") || {
    tail -n 40 "$out/$name.log"
    echo "FAIL: $name found a crash; reproducer in $out/"
    exit 1
  }
  grep -E "stat::number_of_executed_units|cov:" "$out/$name.log" | tail -n 2
done
if [ -f tests/fuzz/fuzz_wire.py ]; then
  echo "== atheris: Python wire decoder for ${seconds}s"
  python3 tests/fuzz/fuzz_wire.py -max_total_time="$seconds" >"$out/atheris.log" 2>&1 || {
    tail -n 40 "$out/atheris.log"
    echo "FAIL: the Python decoder raised something other than WireError"
    exit 1
  }
  tail -n 2 "$out/atheris.log"
fi
echo "fuzzing done"
