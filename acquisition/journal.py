"""The raw journal: every byte received from the rig, appended before decoding.

A crash of the recording process (even SIGKILL) loses at most the bytes of the
last ``flush_interval_s`` (100 ms): ``steplab recover`` rebuilds the trial from
the journal with the same decoder.  Layout (little-endian; see
``rig_docs/trial_file.md``)::

    file   := b"STEPLABJ" u16 version u32 header_len header_json record*
    record := u8 kind  u64 host_time_ns  u32 length  payload  u32 crc32

``kind`` is ``b"D"`` (wire bytes exactly as read from the port) or ``b"E"`` (a
host event as JSON: connected, disconnected, reconnected, stopped).  The CRC-32
covers kind..payload, so a record torn by a crash is recognised and only that
tail is dropped (and counted).
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = b"STEPLABJ"
JOURNAL_VERSION = 1
_REC_HEAD = struct.Struct("<cQI")
KIND_DATA = b"D"
KIND_EVENT = b"E"


class JournalError(ValueError):
    """A journal that cannot be opened or read."""


class JournalWriter:
    """Append-only journal.  Not thread-safe: one reader thread owns it.

    ``append`` buffers; the buffer goes to the operating system whenever it is
    older than ``flush_interval_s`` (checked on every append and by
    ``maybe_flush``, which the reader calls at least every read timeout), and is
    fsync'ed every ``fsync_interval_s``.
    """

    def __init__(self, path: str | Path, header: dict, flush_interval_s: float = 0.1, fsync_interval_s: float = 1.0):
        self.path = Path(path)
        self.flush_interval_s = flush_interval_s
        self.fsync_interval_s = fsync_interval_s
        try:
            self._fh = open(self.path, "xb")
        except FileExistsError:
            raise JournalError(f"journal {self.path} already exists; refusing to overwrite it") from None
        except OSError as exc:
            raise JournalError(f"cannot create journal {self.path}: {exc.strerror or exc}") from None
        blob = json.dumps(header, sort_keys=True).encode()
        self._fh.write(MAGIC + struct.pack("<HI", JOURNAL_VERSION, len(blob)) + blob)
        self._buf = bytearray()
        self._oldest: float | None = None
        self._last_fsync = time.monotonic()
        self.bytes_journaled = 0
        self.flush()

    def _record(self, kind: bytes, payload: bytes, t_ns: int | None) -> None:
        head = _REC_HEAD.pack(kind, t_ns if t_ns is not None else time.time_ns(), len(payload))
        crc = zlib.crc32(payload, zlib.crc32(head))
        self._buf += head
        self._buf += payload
        self._buf += struct.pack("<I", crc)
        if self._oldest is None:
            self._oldest = time.monotonic()
        self.maybe_flush()

    def append(self, data: bytes, t_ns: int | None = None) -> None:
        """Journal raw wire bytes (call before decoding them)."""
        if data:
            self.bytes_journaled += len(data)
            self._record(KIND_DATA, bytes(data), t_ns)

    def event(self, name: str, t_ns: int | None = None, **fields) -> None:
        """Journal a host event (connect, disconnect, …) as JSON."""
        self._record(KIND_EVENT, json.dumps({"event": name, **fields}, sort_keys=True).encode(), t_ns)
        self.flush()

    def maybe_flush(self) -> None:
        if self._oldest is not None and time.monotonic() - self._oldest >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            self._fh.write(self._buf)
            self._buf.clear()
        self._fh.flush()
        self._oldest = None
        now = time.monotonic()
        if now - self._last_fsync >= self.fsync_interval_s:
            os.fsync(self._fh.fileno())
            self._last_fsync = now

    @property
    def closed(self) -> bool:
        return self._fh.closed

    def close(self) -> None:
        if not self._fh.closed:
            self.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class JournalRecord:
    kind: bytes
    host_time_ns: int
    payload: bytes

    @property
    def event(self) -> dict:
        return json.loads(self.payload.decode())


@dataclass
class JournalContents:
    header: dict
    records: list[JournalRecord] = field(default_factory=list)
    torn_tail_bytes: int = 0  # bytes after the last intact record (a crash mid-write)
    corrupt_bytes: int = 0  # bytes skipped inside the journal to reach the next intact record

    def data_records(self) -> Iterator[JournalRecord]:
        return (r for r in self.records if r.kind == KIND_DATA)


def _record_at(raw: bytes, pos: int) -> tuple[JournalRecord, int] | None:
    """The intact record starting at ``pos`` and the position after it, or None."""
    n = len(raw)
    if pos + _REC_HEAD.size > n:
        return None
    kind, t_ns, length = _REC_HEAD.unpack_from(raw, pos)
    end = pos + _REC_HEAD.size + length + 4
    if kind not in (KIND_DATA, KIND_EVENT) or end > n:
        return None
    payload = raw[pos + _REC_HEAD.size : end - 4]
    (crc,) = struct.unpack_from("<I", raw, end - 4)
    if zlib.crc32(payload, zlib.crc32(raw[pos : pos + _REC_HEAD.size])) != crc:
        return None
    return JournalRecord(kind, t_ns, payload), end


def read_journal(path: str | Path) -> JournalContents:
    """Read every intact record.

    A damaged record (a flipped bit on disk) is skipped: reading resumes at the
    next intact record, and the bytes in between are counted in
    ``corrupt_bytes`` (the decoder then sees the frames they held as lost, so
    they become gaps at their exact places).  Damage with no intact record after
    it is a torn tail (a crash mid-write), counted in ``torn_tail_bytes``.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise JournalError(f"journal {path} does not exist") from None
    except OSError as exc:
        raise JournalError(f"cannot read journal {path}: {exc.strerror or exc}") from None
    if len(raw) < 14 or raw[:8] != MAGIC:
        raise JournalError(f"{path} is not a steplab journal")
    version, hlen = struct.unpack_from("<HI", raw, 8)
    if version != JOURNAL_VERSION:
        raise JournalError(f"journal {path} has version {version}; this steplab reads {JOURNAL_VERSION}")
    try:
        header = json.loads(raw[14 : 14 + hlen].decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise JournalError(f"journal {path} has a corrupt header") from None
    if not isinstance(header, dict):
        raise JournalError(f"journal {path} has a corrupt header (not a JSON object)")
    out = JournalContents(header=header)
    pos = 14 + hlen
    n = len(raw)
    while pos < n:
        found = _record_at(raw, pos)
        if found is not None:
            rec, pos = found
            out.records.append(rec)
            continue
        # damaged here: look for the next intact record (its kind byte is 'D' or 'E')
        nxt = pos + 1
        while nxt < n:
            d, e = raw.find(KIND_DATA, nxt), raw.find(KIND_EVENT, nxt)
            cands = [c for c in (d, e) if c >= 0]
            if not cands:
                nxt = n
                break
            nxt = min(cands)
            if _record_at(raw, nxt) is not None:
                break
            nxt += 1
        if nxt >= n:
            out.torn_tail_bytes = n - pos
            break
        out.corrupt_bytes += nxt - pos
        pos = nxt
    return out
