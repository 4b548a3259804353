"""Atheris target for the Python wire decoder (every frame type, LABEL included) and data blob
parser.

Any input must either decode or raise WireError; anything else escaping is a finding. Inputs that
decode must re-encode to the same bytes. Each input is also tried with its CRC, or its tag under a
fixed fuzzing key, made consistent, so mutations reach the body decoders; a tagged frame goes
through `open_frame` (the receiver's path: tag first, then the body).

Run from the repository root (tools/fuzz.sh does this after the libFuzzer targets):

    python tests/fuzz/fuzz_wire.py -max_total_time=30
    python tests/fuzz/fuzz_wire.py -max_total_time=30 some_corpus_dir/   # keep what it finds

Without a corpus directory, a temporary one seeded with testvectors/ is used. libFuzzer options work as usual (-runs=N, ...).
"""

from __future__ import annotations

import shutil
import struct
import sys
import tempfile
import zlib
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "host"))

with atheris.instrument_imports():
    from tinyfl.errors import WireError
    from tinyfl.wire import DataBlob, decode, encode, frame_tag, open_frame

FUZZ_KEY = b"fuzz" + bytes(28)
FUZZ_TOPIC = "tinyfl/fuzz/nodes/n/update"


def fix_frame(data: bytes) -> bytes:
    """The input with its trailer made right: a tag under FUZZ_KEY (auth 16) or the CRC."""
    if len(data) < 22:
        return data
    raw = bytearray(data)
    if raw[5] == 16:
        raw[-16:] = frame_tag(FUZZ_KEY, FUZZ_TOPIC, bytes(raw[:-16]))
    else:
        raw[-4:] = struct.pack("<I", zlib.crc32(bytes(raw[:-4])))
    return bytes(raw)


def check_frame(data: bytes) -> None:
    key = FUZZ_KEY if len(data) > 5 and data[5] == 16 else None
    try:
        msg = open_frame(data, FUZZ_TOPIC, key)
    except WireError:
        return
    if decode(data) != msg:
        raise AssertionError("open_frame and decode disagree")
    if encode(msg, key=key, topic=FUZZ_TOPIC) != data:
        raise AssertionError("a decoded frame re-encoded to other bytes")


def check_blob(data: bytes) -> None:
    try:
        blob = DataBlob.from_bytes(data, allow_trailing=True)
    except WireError:
        return
    if not data.startswith(blob.to_bytes()):
        raise AssertionError("a parsed blob re-encoded to other bytes")


def test_one_input(data: bytes) -> None:
    check_frame(data)
    check_frame(fix_frame(data))
    check_blob(data)


def main() -> None:
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):
        # No corpus given: seed a temporary one with every golden vector.
        corpus = Path(tempfile.mkdtemp(prefix="tinyfl-fuzz-wire-"))
        for i, seed in enumerate(sorted((ROOT / "testvectors").rglob("*.bin"))):
            shutil.copy(seed, corpus / f"{i:03d}-{seed.name}")
        argv.append(str(corpus))
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
