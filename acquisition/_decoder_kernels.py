"""numba kernels of the wire protocol: COBS, CRC-32 and the bulk frame scanner.

Private: the public entry points are :mod:`steplab.acquisition.protocol` (encoders)
and :mod:`steplab.acquisition.frame_decoder` (``FrameDecoder``).  The kernels take
plain uint8 arrays and work over a whole buffer per call, so the per-frame cost
is compiled code only.

Layout constants are repeated here as literals (the kernels must not import the
public module); ``protocol.py`` checks at import that they agree.
"""

from __future__ import annotations

import numpy as np
from numba import njit

HEADER_SIZE = 32
CRC_SIZE = 4
MIN_BODY = HEADER_SIZE + CRC_SIZE
PROTOCOL_VERSION = 1
FRAME_TYPE_DATA = 1
FRAME_TYPE_MAX = 7

# Indices into the counters array the scanner returns.
C_FRAMES_OK = 0
C_CRC_ERRORS = 1
C_MALFORMED = 2
C_OVERSIZE = 3
C_BYTES_DISCARDED = 4
C_CONSUMED = 5  # index just after the last 0x00 delimiter processed
C_ACCEPTED = 6  # rows filled in the per-frame arrays
C_VALUES = 7  # int32 values written to the flat counts buffer
N_COUNTERS = 8


def make_crc32_tables() -> np.ndarray:
    """Slicing-by-8 tables for the reflected IEEE 802.3 CRC-32 (poly 0xEDB88320).

    Returns
    -------
    numpy.ndarray
        uint32 array of shape (8, 256); row 0 is the classic byte-wise table.
    """
    t = np.zeros((8, 256), dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        t[0, i] = c
    for k in range(1, 8):
        for i in range(256):
            prev = int(t[k - 1, i])
            t[k, i] = (prev >> 8) ^ int(t[0, prev & 0xFF])
    return t


CRC_TABLES = make_crc32_tables()


@njit(cache=True, nogil=True)
def crc32_update(crc: int, data: np.ndarray, start: int, stop: int, tables: np.ndarray) -> np.int64:
    """CRC-32 of ``data[start:stop]`` continuing from ``crc`` (0 to begin), slicing-by-8."""
    c = np.int64(crc) ^ np.int64(0xFFFFFFFF)
    i = start
    while i + 8 <= stop:
        c ^= (np.int64(data[i]) | (np.int64(data[i + 1]) << 8)
              | (np.int64(data[i + 2]) << 16) | (np.int64(data[i + 3]) << 24))
        c = (np.int64(tables[7, c & 0xFF]) ^ np.int64(tables[6, (c >> 8) & 0xFF])
             ^ np.int64(tables[5, (c >> 16) & 0xFF]) ^ np.int64(tables[4, (c >> 24) & 0xFF])
             ^ np.int64(tables[3, data[i + 4]]) ^ np.int64(tables[2, data[i + 5]])
             ^ np.int64(tables[1, data[i + 6]]) ^ np.int64(tables[0, data[i + 7]]))
        i += 8
    while i < stop:
        c = np.int64(tables[0, (c ^ np.int64(data[i])) & 0xFF]) ^ (c >> 8)
        i += 1
    return c ^ np.int64(0xFFFFFFFF)


@njit(cache=True, nogil=True)
def cobs_encode(data: np.ndarray) -> np.ndarray:
    """COBS-encode ``data`` (no trailing delimiter); canonical form, no spare 0x01 block."""
    n = data.shape[0]
    out = np.empty(n + n // 254 + 2, dtype=np.uint8)
    code_at = 0
    o = 1
    code = 1
    for i in range(n):
        b = data[i]
        if b == 0:
            out[code_at] = code
            code_at = o
            o += 1
            code = 1
        else:
            out[o] = b
            o += 1
            code += 1
            if code == 255 and i + 1 < n:
                out[code_at] = code
                code_at = o
                o += 1
                code = 1
    out[code_at] = code
    return out[:o]


@njit(cache=True, nogil=True)
def _u16(b: np.ndarray, i: int) -> np.int64:
    return np.int64(b[i]) | (np.int64(b[i + 1]) << 8)


@njit(cache=True, nogil=True)
def _u32(b: np.ndarray, i: int) -> np.int64:
    return (np.int64(b[i]) | (np.int64(b[i + 1]) << 8)
            | (np.int64(b[i + 2]) << 16) | (np.int64(b[i + 3]) << 24))


@njit(cache=True, nogil=True)
def scan_frames(buf: np.ndarray, max_segment: int, max_body: int, tables: np.ndarray):
    """Split ``buf`` at 0x00, COBS-decode, CRC-check, parse and unpack every frame.

    Only complete frames (those followed by a 0x00 in ``buf``) are processed;
    ``counters[C_CONSUMED]`` says where the unprocessed tail starts.

    Returns
    -------
    body : uint8 array
        Decoded bodies of the accepted frames, back to back.
    hdr : int64 array (n, 12)
        Per accepted frame: frame_type, flags, boot_id, seq, first_sample,
        device_time_us, channels, samples, body_start, body_len, wire_len,
        value_offset (into ``values``; -1 for non-data frames).
    values : int32 array
        Sign-extended 24-bit samples of the accepted data frames, back to back.
    counters : int64 array (N_COUNTERS,)
    """
    n = buf.shape[0]
    nz = 0
    for i in range(n):
        if buf[i] == 0:
            nz += 1
    body = np.empty(n, dtype=np.uint8)
    values = np.empty(n // 3 + 1, dtype=np.int32)
    hdr = np.empty((nz, 12), dtype=np.int64)
    counters = np.zeros(N_COUNTERS, dtype=np.int64)
    optr = 0
    vptr = 0
    nacc = 0
    pos = 0
    while pos < n:
        z = pos
        while z < n and buf[z] != 0:
            z += 1
        if z == n:
            break
        seg_start = pos
        wire_len = z - seg_start + 1
        pos = z + 1
        counters[C_CONSUMED] = pos
        if z == seg_start:  # a lone delimiter: idle filler, not an error
            counters[C_BYTES_DISCARDED] += 1
            continue
        if z - seg_start > max_segment:
            counters[C_OVERSIZE] += 1
            counters[C_BYTES_DISCARDED] += wire_len
            continue
        # COBS decode into body[optr:]
        o = optr
        p = seg_start
        ok = True
        while p < z:
            code = np.int64(buf[p])
            p += 1
            end = int(p + code - 1)
            if end > z:
                ok = False
                break
            for q in range(p, end):
                body[o] = buf[q]
                o += 1
            p = end
            if code != 255 and p < z:
                body[o] = 0
                o += 1
        blen = o - optr
        if not ok or blen < MIN_BODY:
            if ok and blen > max_body:
                counters[C_OVERSIZE] += 1
            else:
                counters[C_MALFORMED] += 1
            counters[C_BYTES_DISCARDED] += wire_len
            continue
        if blen > max_body:
            counters[C_OVERSIZE] += 1
            counters[C_BYTES_DISCARDED] += wire_len
            continue
        crc = crc32_update(0, body, optr, optr + blen - 4, tables)
        if crc != _u32(body, optr + blen - 4):
            counters[C_CRC_ERRORS] += 1
            counters[C_BYTES_DISCARDED] += wire_len
            continue
        b = optr
        version = np.int64(body[b])
        ftype = np.int64(body[b + 1])
        flags = _u16(body, b + 2)
        boot_id = _u32(body, b + 4)
        seq = _u32(body, b + 8)
        first_lo = _u32(body, b + 12)
        first_hi = _u32(body, b + 16)
        time_lo = _u32(body, b + 20)
        time_hi = _u32(body, b + 24)
        channels = _u16(body, b + 28)
        samples = _u16(body, b + 30)
        good = version == PROTOCOL_VERSION and 1 <= ftype <= FRAME_TYPE_MAX
        good = good and first_hi < 0x80000000 and time_hi < 0x80000000
        payload_len = blen - MIN_BODY
        if ftype == FRAME_TYPE_DATA:
            good = good and channels > 0 and samples > 0 and payload_len == channels * samples * 3
        else:
            good = good and channels == 0 and samples == 0
        if not good:
            counters[C_MALFORMED] += 1
            counters[C_BYTES_DISCARDED] += wire_len
            continue
        hdr[nacc, 0] = ftype
        hdr[nacc, 1] = flags
        hdr[nacc, 2] = boot_id
        hdr[nacc, 3] = seq
        hdr[nacc, 4] = first_lo | (first_hi << 32)
        hdr[nacc, 5] = time_lo | (time_hi << 32)
        hdr[nacc, 6] = channels
        hdr[nacc, 7] = samples
        hdr[nacc, 8] = optr
        hdr[nacc, 9] = blen
        hdr[nacc, 10] = wire_len
        if ftype == FRAME_TYPE_DATA:
            hdr[nacc, 11] = vptr
            q = b + HEADER_SIZE
            for _ in range(channels * samples):
                v = np.int64(body[q]) | (np.int64(body[q + 1]) << 8) | (np.int64(body[q + 2]) << 16)
                if v & 0x800000:
                    v -= 0x1000000
                values[vptr] = v
                vptr += 1
                q += 3
        else:
            hdr[nacc, 11] = -1
        nacc += 1
        optr = o
        counters[C_FRAMES_OK] += 1
    counters[C_ACCEPTED] = nacc
    counters[C_VALUES] = vptr
    return body[:optr], hdr[:nacc], values[:vptr], counters


@njit(cache=True, nogil=True)
def crc32_array(data: np.ndarray, tables: np.ndarray) -> np.int64:
    """CRC-32 of a whole uint8 array (for tests and tools)."""
    return crc32_update(0, data, 0, data.shape[0], tables)
