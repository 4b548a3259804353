"""The firmware's SHA-256, HMAC-SHA256 and HKDF agree with Python's hashlib/hmac on random inputs.

The firmware test (firmware/test/test_crypto) checks the published vectors; this one compiles the
core's crypto sources with g++ into a small filter program and compares its output with the
standard library's on keys, messages, salts and info strings that hypothesis picks, so the node
and the host (which will use hashlib/hmac) agree beyond the fixed vectors. HKDF (RFC 5869) is
written here in a few lines over `hmac`, as the host will use it.
"""

from __future__ import annotations

import hashlib
import hmac
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyfl.crypto import hkdf_expand, hkdf_extract

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "firmware" / "lib" / "tinyfl"
SOURCES = ("sha256.cpp", "hmac.cpp", "hkdf.cpp", "status.cpp")

# One command per input line, one hex result per output line; "-" stands for no bytes.
#   sha HEX SPLIT                  SHA-256, fed in two updates split at SPLIT
#   hmac KEY MSG SPLIT             HMAC-SHA256, message split at SPLIT
#   hkdf SALT IKM INFO L CHUNK     PRK, then L bytes of HKDF-Expand read CHUNK bytes at a time
#   expand PRK INFO L CHUNK        HKDF-Expand under a given PRK (status name when it fails)
PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tinyfl/hkdf.h"
#include "tinyfl/hmac.h"
#include "tinyfl/sha256.h"
using namespace tinyfl;
static char line[1 << 16];
static uint8_t a[8192], b[8192], c[8192], out[8192];
static size_t unhex(const char* h, uint8_t* o) {
  if (strcmp(h, "-") == 0) return 0;
  size_t n = strlen(h) / 2;
  for (size_t i = 0; i < n; ++i) { unsigned v; sscanf(h + 2 * i, "%2x", &v); o[i] = (uint8_t)v; }
  return n;
}
static void hex(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) printf("%02x", p[i]);
}
static void read_stream(HkdfExpand& s, size_t len, size_t chunk) {
  for (size_t at = 0; at < len; at += chunk) {
    size_t n = len - at < chunk ? len - at : chunk;
    Status st = s.read(out + at, n);
    if (st != Status::Ok) { printf("%s\n", status_name(st)); return; }
  }
  hex(out, len);
  printf("\n");
}
int main() {
  while (fgets(line, sizeof line, stdin)) {
    char* f[6] = {};
    int nf = 0;
    for (char* t = strtok(line, " \n"); t && nf < 6; t = strtok(nullptr, " \n")) f[nf++] = t;
    if (nf == 3 && strcmp(f[0], "sha") == 0) {
      size_t n = unhex(f[1], a), cut = strtoul(f[2], nullptr, 10);
      Sha256 h;
      h.update(a, cut);
      h.update(a + cut, n - cut);
      h.final(out);
      hex(out, 32);
    } else if (nf == 4 && strcmp(f[0], "hmac") == 0) {
      size_t kn = unhex(f[1], a), n = unhex(f[2], b), cut = strtoul(f[3], nullptr, 10);
      HmacSha256 m;
      m.init(a, kn);
      m.update(b, cut);
      m.update(b + cut, n - cut);
      m.final(out);
      m.wipe();
      hex(out, 32);
      hmac_sha256(a, kn, b, n, out + 32);
      if (memcmp(out, out + 32, 32) != 0) printf(" one-shot-differs");
    } else if (nf == 6 && strcmp(f[0], "hkdf") == 0) {
      size_t sn = unhex(f[1], a), kn = unhex(f[2], b), in = unhex(f[3], c);
      uint8_t prk[32];
      hkdf_extract(sn ? a : nullptr, sn, b, kn, prk);
      hex(prk, 32);
      printf(" ");
      HkdfExpand s;
      Status st = s.init(prk, 32, in ? c : nullptr, in);
      if (st != Status::Ok) { printf("%s\n", status_name(st)); continue; }
      read_stream(s, strtoul(f[4], nullptr, 10), strtoul(f[5], nullptr, 10));
      continue;
    } else if (nf == 5 && strcmp(f[0], "expand") == 0) {
      size_t pn = unhex(f[1], a), in = unhex(f[2], c);
      HkdfExpand s;
      Status st = s.init(a, pn, in ? c : nullptr, in);
      if (st != Status::Ok) { printf("%s\n", status_name(st)); continue; }
      read_stream(s, strtoul(f[3], nullptr, 10), strtoul(f[4], nullptr, 10));
      continue;
    } else {
      printf("bad command");
    }
    printf("\n");
  }
  return 0;
}
"""

Run = Callable[[list[str]], list[str]]


@pytest.fixture(scope="module")
def firmware_crypto(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Compiles the filter program once; returns a function running a batch of commands."""
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.fail("g++ not found: make setup installs it", pytrace=False)
    work = tmp_path_factory.mktemp("crypto")
    source = work / "crypto_filter.cpp"
    source.write_text(PROGRAM)
    binary = work / "crypto_filter"
    subprocess.run([compiler, "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror",
                    "-fno-exceptions", "-fno-rtti", f"-I{CORE / 'include'}", str(source),
                    *(str(CORE / "src" / s) for s in SOURCES), "-o", str(binary)], check=True)

    def run(commands: list[str]) -> list[str]:
        result = subprocess.run([str(binary)], input="\n".join(commands) + "\n",
                                capture_output=True, text=True, check=True, timeout=60)
        lines = result.stdout.splitlines()
        assert len(lines) == len(commands), result.stdout
        return lines

    return run


def _h(data: bytes) -> str:
    return data.hex() if data else "-"


def test_the_python_reference_reproduces_rfc5869_case_1() -> None:
    # RFC 5869, Appendix A.1: the reference this test compares the firmware with is itself right.
    prk = hkdf_extract(bytes(range(13)), bytes([0x0B] * 22))
    assert prk.hex() == "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
    assert hkdf_expand(prk, bytes(range(0xF0, 0xFA)), 42).hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")


@settings(max_examples=150, deadline=None)
@given(data=st.data(), msg=st.binary(max_size=1100))
def test_sha256_matches_hashlib(firmware_crypto: Run, data: st.DataObject, msg: bytes) -> None:
    cut = data.draw(st.integers(0, len(msg)), label="split")
    (got,) = firmware_crypto([f"sha {_h(msg)} {cut}"])
    assert got == hashlib.sha256(msg).hexdigest()


@settings(max_examples=150, deadline=None)
@given(data=st.data(), key=st.binary(max_size=200), msg=st.binary(max_size=1100))
def test_hmac_sha256_matches_the_hmac_module(firmware_crypto: Run, data: st.DataObject,
                                             key: bytes, msg: bytes) -> None:
    cut = data.draw(st.integers(0, len(msg)), label="split")
    (got,) = firmware_crypto([f"hmac {_h(key)} {_h(msg)} {cut}"])
    assert got == hmac.new(key, msg, hashlib.sha256).hexdigest()


@settings(max_examples=150, deadline=None)
@given(salt=st.binary(max_size=100), ikm=st.binary(max_size=100), info=st.binary(max_size=100),
       length=st.integers(1, 1200), chunk=st.integers(1, 100))
def test_hkdf_matches_rfc5869_over_the_hmac_module(firmware_crypto: Run, salt: bytes, ikm: bytes,
                                                   info: bytes, length: int, chunk: int) -> None:
    (got,) = firmware_crypto([f"hkdf {_h(salt)} {_h(ikm)} {_h(info)} {length} {chunk}"])
    prk = hkdf_extract(salt, ikm)
    assert got == f"{prk.hex()} {hkdf_expand(prk, info, length).hex()}"


@settings(max_examples=50, deadline=None)
@given(prk=st.binary(min_size=32, max_size=100), info=st.binary(max_size=300),
       chunk=st.integers(1, 4096))
def test_a_whole_8160_byte_expansion_matches_and_one_more_byte_is_refused(
        firmware_crypto: Run, prk: bytes, info: bytes, chunk: int) -> None:
    full, over = firmware_crypto([f"expand {prk.hex()} {_h(info)} 8160 {chunk}",
                                  f"expand {prk.hex()} {_h(info)} 8161 8161"])
    assert full == hkdf_expand(prk, info, 8160).hex()
    assert over == "too_large"


def test_a_prk_shorter_than_the_hash_is_refused(firmware_crypto: Run) -> None:
    (got,) = firmware_crypto([f"expand {bytes(31).hex()} - 32 32"])
    assert got == "bad_length"
