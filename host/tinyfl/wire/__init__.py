"""The TinyFL wire codec: frames, tensors, the node data blob and topics (docs/WIRE.md).

Byte for byte the same format as the firmware (firmware/lib/tinyfl/include/tinyfl/wire.h), checked
against the golden vectors in testvectors/.

    frame = encode(Hello(...))          # or Global / Update; checked by decoding it back
    msg = decode(frame)                 # Hello | Global | Update, or WireError(reason)

`WireError.reason` is the firmware's status name for the same bytes ("truncated", "bad_crc", ...).
"""

from tinyfl.errors import WireError
from tinyfl.wire.blob import BlobKind, DataBlob
from tinyfl.wire.frames import (
    FLAG_MASKED,
    TAG_LEN,
    UPLINK_2BIT,
    UPLINK_4BIT,
    UPLINK_8BIT,
    UPLINK_FLOAT32,
    WIRE_VERSION,
    Board,
    FrameType,
    Global,
    Hello,
    Message,
    Update,
    decode,
    encode,
    encode_global,
    encode_hello,
    encode_update,
    fields_text,
    is_valid_node_id,
)
from tinyfl.wire.tensor import FLOAT_BITS, QUANT_BITS, Tensor, pack_codes, qmax, unpack_codes
from tinyfl.wire.topics import Topics, check_node_id, check_prefix, default_prefix

__all__ = [
    "FLAG_MASKED",
    "FLOAT_BITS",
    "QUANT_BITS",
    "TAG_LEN",
    "UPLINK_2BIT",
    "UPLINK_4BIT",
    "UPLINK_8BIT",
    "UPLINK_FLOAT32",
    "WIRE_VERSION",
    "BlobKind",
    "Board",
    "DataBlob",
    "FrameType",
    "Global",
    "Hello",
    "Message",
    "Tensor",
    "Topics",
    "Update",
    "WireError",
    "check_node_id",
    "check_prefix",
    "decode",
    "default_prefix",
    "encode",
    "encode_global",
    "encode_hello",
    "encode_update",
    "fields_text",
    "is_valid_node_id",
    "pack_codes",
    "qmax",
    "unpack_codes",
]
