"""Host side of the primitives the firmware core implements (docs/CRYPTO.md): HKDF (RFC 5869)
over the standard library's HMAC-SHA256, and key ids. The firmware's HKDF equals these byte for
byte (tests/unit/test_crypto_vectors.py)."""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["KEY_BYTES", "hkdf_expand", "hkdf_extract", "key_id"]

KEY_BYTES = 32  # every TinyFL key and seed: 256 bits
HASH_LEN = 32


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """RFC 5869, 2.2: PRK = HMAC(salt, IKM); an absent salt is HashLen zero bytes."""
    return hmac.new(salt or bytes(HASH_LEN), ikm, hashlib.sha256).digest()


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869, 2.3: T(i) = HMAC(PRK, T(i-1) | info | i), at most 255 * HashLen bytes."""
    if not 0 <= length <= 255 * HASH_LEN:
        raise ValueError(f"HKDF-Expand gives 0..{255 * HASH_LEN} bytes, asked for {length}")
    out, block = b"", b""
    for i in range(1, -(-length // HASH_LEN) + 1):
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
    return out[:length]


def key_id(key: bytes) -> str:
    """A name for a key that reveals nothing about it: HMAC(key, "tinyfl key id"), 8 bytes hex.
    Files and logs that must say which key is meant use this, never the key."""
    return hmac.new(key, b"tinyfl key id", hashlib.sha256).digest()[:8].hex()
