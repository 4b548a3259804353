"""The TinyFL wire codec: frames, tensors, the node data blob and topics (docs/WIRE.md).

Byte for byte the same format as the firmware (firmware/lib/tinyfl/include/tinyfl/wire.h), checked
against the golden vectors in testvectors/.

    frame = encode(Hello(...))          # or Global / Update; checked by decoding it back
    msg = decode(frame)                 # Hello | Global | Update | ... | Label, or WireError(reason)
    frame = encode(msg, key=k, topic=t) # tagged (HMAC-SHA256/128 over topic and frame)
    msg = open_frame(frame, t, k)       # what a receiver does: checks the tag, then decodes

`WireError.reason` is the firmware's status name for the same bytes ("truncated", "bad_crc", ...).
"""

from tinyfl.errors import WireError
from tinyfl.wire.blob import BlobKind, DataBlob
from tinyfl.wire.fields import is_valid_node_id
from tinyfl.wire.frames import (
    AUTH_CRC,
    AUTH_TAG,
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
    Label,
    Message,
    Update,
    decode,
    encode,
    encode_global,
    encode_hello,
    encode_update,
    frame_tag,
    open_frame,
    verify_frame,
)
from tinyfl.wire.keyring import Keyring
from tinyfl.wire.label import MAX_INTERVALS, NO_LABEL, LabelInterval
from tinyfl.wire.masked import Masked, Reveal, SecAgg, Unmask, pack_bits, unpack_bits
from tinyfl.wire.node_config import encode_node_config
from tinyfl.wire.tensor import (
    FLOAT_BITS,
    QUANT_BITS,
    Tensor,
    half_scales,
    pack_codes,
    qmax,
    unpack_codes,
)
from tinyfl.wire.text import fields_text
from tinyfl.wire.topics import Topics, check_node_id, check_prefix, default_prefix

__all__ = [
    "AUTH_CRC",
    "AUTH_TAG",
    "FLAG_MASKED",
    "FLOAT_BITS",
    "MAX_INTERVALS",
    "NO_LABEL",
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
    "Keyring",
    "Label",
    "LabelInterval",
    "Masked",
    "Message",
    "Reveal",
    "SecAgg",
    "Tensor",
    "Topics",
    "Unmask",
    "Update",
    "WireError",
    "check_node_id",
    "check_prefix",
    "decode",
    "default_prefix",
    "encode",
    "encode_global",
    "encode_hello",
    "encode_node_config",
    "encode_update",
    "fields_text",
    "frame_tag",
    "half_scales",
    "is_valid_node_id",
    "open_frame",
    "pack_bits",
    "pack_codes",
    "qmax",
    "unpack_bits",
    "unpack_codes",
    "verify_frame",
]
