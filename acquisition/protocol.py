"""The steplab wire protocol: frame layout constants and the encoders.

A frame on the wire is ``COBS(body) + b"\\x00"``; ``body`` is a 32-byte
little-endian header, a payload (interleaved 24-bit signed samples for data
frames, a UTF-8 JSON object otherwise) and the CRC-32 (``zlib.crc32``) of every
byte before it.  The byte-by-byte description is ``rig_docs/protocol.md``; the
reasons for the format are in ``rig_docs/decisions/0001-frame-format-cobs-crc32.md``.

The decoder is :class:`steplab.acquisition.frame_decoder.FrameDecoder`.
"""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np

from steplab.constants import ADC_MAX_COUNTS as COUNTS_MAX  # largest 24-bit signed value
from steplab.constants import ADC_MIN_COUNTS as COUNTS_MIN  # smallest 24-bit signed value

from . import _decoder_kernels as _k

PROTOCOL_VERSION = 1
HEADER_SIZE = 32
CRC_SIZE = 4
MAX_BODY = 65535
#: Longest COBS-encoded body (without the 0x00 delimiter) that can hold MAX_BODY bytes.
MAX_ENCODED = MAX_BODY + MAX_BODY // 254 + 2

FRAME_TYPE_DATA = 1
FRAME_TYPE_STATUS = 2
FRAME_TYPE_INFO = 3
FRAME_TYPE_EVENT = 4
FRAME_TYPE_REPLY = 5
FRAME_TYPE_LOG = 6
FRAME_TYPE_COMMAND = 7
FRAME_TYPE_NAMES = {
    FRAME_TYPE_DATA: "data", FRAME_TYPE_STATUS: "status", FRAME_TYPE_INFO: "info",
    FRAME_TYPE_EVENT: "event", FRAME_TYPE_REPLY: "reply", FRAME_TYPE_LOG: "log",
    FRAME_TYPE_COMMAND: "command",
}
MESSAGE_FRAME_TYPES = (FRAME_TYPE_STATUS, FRAME_TYPE_INFO, FRAME_TYPE_EVENT,
                       FRAME_TYPE_REPLY, FRAME_TYPE_LOG, FRAME_TYPE_COMMAND)

FLAG_CLIPPING = 1 << 0  # a sample in this frame is at (or was beyond) ADC full scale
FLAG_OVERRUN = 1 << 1  # the device dropped samples internally before this frame
FLAG_SIMULATED = 1 << 2  # the frame comes from a simulated device
KNOWN_FLAGS = FLAG_CLIPPING | FLAG_OVERRUN | FLAG_SIMULATED

COMMANDS = ("info", "start", "stop", "set_rate", "tare_hint", "place_mass", "clear_masses")

#: struct format of the 32-byte header: version, frame_type, flags, boot_id, seq,
#: first_sample, device_time_us, channels, samples.
HEADER_STRUCT = struct.Struct("<BBHIIQQHH")
assert HEADER_STRUCT.size == HEADER_SIZE
assert (_k.HEADER_SIZE, _k.PROTOCOL_VERSION, _k.FRAME_TYPE_DATA) == (HEADER_SIZE, PROTOCOL_VERSION, FRAME_TYPE_DATA)

_U32 = 2**32
_I63 = 2**63


def cobs_encode(data: bytes | bytearray | memoryview | np.ndarray) -> bytes:
    """COBS-encode ``data`` (canonical form, without the trailing 0x00 delimiter).

    Parameters
    ----------
    data : bytes-like or uint8 array
        Any bytes, zeros included.

    Returns
    -------
    bytes
        The encoded bytes; they contain no 0x00 and are at most
        ``len(data) + len(data) // 254 + 1`` long.
    """
    arr = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise ValueError("cobs_encode needs a 1-D uint8 array or a bytes-like object")
    return _k.cobs_encode(arr).tobytes()


def cobs_decode(encoded: bytes | bytearray | memoryview) -> bytes:
    """Decode one COBS block sequence (without its 0x00 delimiter); plain Python.

    For tools, tests and documentation; the stream decoder is ``FrameDecoder``.
    Raises ValueError on a 0x00 inside or a block that runs past the end.
    """
    enc = bytes(encoded)
    out = bytearray()
    i = 0
    n = len(enc)
    while i < n:
        code = enc[i]
        if code == 0:
            raise ValueError(f"COBS data holds a 0x00 at offset {i}")
        block = enc[i + 1:i + code]
        if len(block) != code - 1 or 0 in block:
            raise ValueError(f"COBS block at offset {i} (code {code}) runs past the end")
        out += block
        i += code
        if code != 255 and i < n:
            out.append(0)
    return bytes(out)


def crc32(data: bytes | bytearray | memoryview) -> int:
    """CRC-32 (IEEE 802.3, reflected, as ``zlib.crc32``) of ``data``: u32."""
    return zlib.crc32(data) & 0xFFFFFFFF


def _check_uint(name: str, value: int, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, not {type(value).__name__}")
    value = int(value)
    if not (0 <= value < limit):
        raise ValueError(f"{name} {value} is outside 0..{limit - 1}")
    return value


def _frame(header: bytes, payload: bytes) -> bytes:
    body = header + payload
    body += struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)
    if len(body) > MAX_BODY:
        raise ValueError(f"frame body of {len(body)} bytes exceeds the {MAX_BODY}-byte limit")
    return _k.cobs_encode(np.frombuffer(body, dtype=np.uint8)).tobytes() + b"\x00"


def pack_counts_24(counts: np.ndarray) -> tuple[bytes, bool]:
    """Pack an integer (samples, channels) array as interleaved 24-bit signed LE.

    Values are clipped to [-2**23, 2**23 - 1].

    Returns
    -------
    payload : bytes
        ``samples * channels * 3`` bytes, sample-major (sample 0 ch 0, sample 0 ch 1, ...).
    at_full_scale : bool
        True if any value was at or beyond either rail (the frame's clipping flag).
    """
    c = np.asarray(counts)
    if c.size:
        lo = c.min()
        hi = c.max()
        at_full_scale = bool(lo <= COUNTS_MIN or hi >= COUNTS_MAX)
        if lo < COUNTS_MIN or hi > COUNTS_MAX:
            c = np.clip(c, COUNTS_MIN, COUNTS_MAX)
    else:
        at_full_scale = False
    c32 = np.ascontiguousarray(c, dtype="<i4")
    return c32.view(np.uint8).reshape(-1, 4)[:, :3].tobytes(), at_full_scale


def encode_data_frame(*, boot_id: int, seq: int, first_sample: int, device_time_us: int,
                      counts: np.ndarray, flags: int = 0) -> bytes:
    """Encode one data frame (type 1), ready for the wire (COBS + 0x00).

    Parameters
    ----------
    boot_id : int
        Random per power-up, 1..2**32-1.
    seq : int
        Per-boot frame counter, 0..2**32-1 (the caller wraps it).
    first_sample : int
        Index since boot of the frame's first sample, 0..2**63-1.
    device_time_us : int
        Device clock at the first sample, microseconds, 0..2**63-1.
    counts : numpy.ndarray
        Integer array (samples, channels) of ADC counts; 1..65535 samples and
        channels.  Values are clipped to the 24-bit signed range.
    flags : int
        FLAG_* bits.  FLAG_CLIPPING is added when any value is at or beyond full
        scale (a reading of exactly +-full scale is itself a saturated one).

    Returns
    -------
    bytes
        ``COBS(header + payload + CRC-32) + b"\\x00"``.
    """
    boot_id = _check_uint("boot_id", boot_id, _U32)
    if boot_id == 0:
        raise ValueError("boot_id 0 is reserved for host frames; a device boot_id is 1..2**32-1")
    seq = _check_uint("seq", seq, _U32)
    first_sample = _check_uint("first_sample", first_sample, _I63)
    device_time_us = _check_uint("device_time_us", device_time_us, _I63)
    flags = _check_uint("flags", flags, 2**16)
    c = np.asarray(counts)
    if c.ndim != 2 or not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"counts must be a 2-D integer array (samples, channels), got {c.ndim}-D {c.dtype}")
    samples, channels = c.shape
    if not (1 <= samples <= 65535 and 1 <= channels <= 65535):
        raise ValueError(f"counts shape {c.shape} needs 1..65535 samples and channels")
    payload, at_full_scale = pack_counts_24(c)
    if at_full_scale:
        flags |= FLAG_CLIPPING
    header = HEADER_STRUCT.pack(PROTOCOL_VERSION, FRAME_TYPE_DATA, flags, boot_id, seq,
                                first_sample, device_time_us, channels, samples)
    return _frame(header, payload)


def encode_message_frame(frame_type: int, *, boot_id: int, seq: int, payload: dict,
                         device_time_us: int = 0, flags: int = 0) -> bytes:
    """Encode a non-data frame (status, info, event, reply, log or command).

    Parameters
    ----------
    frame_type : int
        One of FRAME_TYPE_STATUS .. FRAME_TYPE_COMMAND (2..7).
    boot_id, seq : int
        As for data frames; host frames use boot_id 0.
    payload : dict
        JSON-serialisable object, sent compact (no spaces) as UTF-8.
    device_time_us : int
        Device clock at sending, microseconds (0 for host frames).
    flags : int
        FLAG_* bits (FLAG_SIMULATED from a simulator).

    Returns
    -------
    bytes
        The wire frame (COBS + 0x00).
    """
    if frame_type not in MESSAGE_FRAME_TYPES:
        raise ValueError(f"frame_type {frame_type!r} is not a message type (2..7); data frames use encode_data_frame")
    boot_id = _check_uint("boot_id", boot_id, _U32)
    seq = _check_uint("seq", seq, _U32)
    device_time_us = _check_uint("device_time_us", device_time_us, _I63)
    flags = _check_uint("flags", flags, 2**16)
    if not isinstance(payload, dict):
        raise ValueError(f"payload must be a dict (a JSON object), not {type(payload).__name__}")
    try:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"payload is not JSON-serialisable: {exc}") from None
    header = HEADER_STRUCT.pack(PROTOCOL_VERSION, frame_type, flags, boot_id, seq, 0,
                                device_time_us, 0, 0)
    return _frame(header, text.encode("utf-8"))


def encode_command(cmd: str, id: int, **args) -> bytes:  # noqa: A002 - the protocol's field name
    """Encode a host command frame (type 7): JSON ``{"cmd": cmd, "id": id, **args}``.

    Host frames carry boot_id 0, seq = ``id mod 2**32``, device_time_us 0 and no
    flags; the device ignores those fields of commands and answers with a reply
    frame (type 5) carrying the same ``id``.

    Parameters
    ----------
    cmd : str
        Command name (``info``, ``start``, ``stop``, ``set_rate``, ``tare_hint``;
        simulator: ``place_mass``, ``clear_masses``).  Unknown names are sent as
        is (the device replies ``ok: false``).
    id : int
        Non-negative request id, echoed in the reply.
    **args
        Command arguments (JSON-serialisable), e.g. ``rate_hz=2000``.
    """
    if not isinstance(cmd, str) or not cmd:
        raise ValueError("cmd must be a non-empty string")
    if isinstance(id, bool) or not isinstance(id, (int, np.integer)) or id < 0:
        raise ValueError(f"command id must be a non-negative integer, got {id!r}")
    payload = {"cmd": cmd, "id": int(id), **args}
    return encode_message_frame(FRAME_TYPE_COMMAND, boot_id=0, seq=int(id) % _U32, payload=payload)
