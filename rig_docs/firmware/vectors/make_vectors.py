"""The shared wire test vectors of the reference firmware: inputs and exact expected bytes.

``wire_vectors.txt`` (next to this file) is read by the firmware's C tests
(``tests/fw_tests.c``: the firmware code must produce every ``wire`` byte for
byte) and by ``tests/test_firmware.py`` (the Python decoder must read every
vector back to its inputs).  This module writes that file: the expected bytes
come from steplab's own encoders (``steplab.acquisition.protocol``), and for
the device-level vectors (``kind = exchange``) from :class:`ExpectedDevice`, a
plain-Python statement of what the firmware must send for a script of events.

    python rig_docs/firmware/vectors/make_vectors.py [--check]

(from the repository root with steplab importable).  ``--check`` only
compares; the tests do the same.
"""

from __future__ import annotations

import json
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from steplab.acquisition import protocol as p
from steplab.acquisition.frame_decoder import FrameDecoder

VECTORS_PATH = Path(__file__).with_name("wire_vectors.txt")
FIRMWARE = "steplab-fw 1.0.0"
SUPPORTED_RATES_HZ = (500, 1000, 2000, 4000)
SUPPORTED_TEXT = "500, 1000, 2000, 4000"
RING_SLOTS = 4  # the C test runner's ring (-DFW_RING_SLOTS=4)
MAX_COMMAND_WIRE = 512
STATUS_PERIOD_US = 1_000_000
SYNTH_LOAD_COUNTS = 2_746_000
MAX_SPF = 40

#: a small rig description for the device vectors (any JSON object passes through verbatim)
VECTOR_RIG = {"format": "steplab-rig", "format_version": 1, "name": "vector-rig", "serial": "VEC-0001",
              "channels": 12, "sample_rate_hz": 1000.0, "plates": []}


# -- the synthetic bridge signal (host/synthetic_adc.c) -------------------------------
def _lowbias32(x: np.ndarray) -> np.ndarray:
    m = np.uint64(0xFFFFFFFF)
    x = x.astype(np.uint64) & m
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & m
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & m
    x ^= x >> np.uint64(16)
    return x


def synthetic_counts(index: np.ndarray, rate_hz: int, channels: int, clip_every: int = 0) -> np.ndarray:
    """Counts (len(index), channels) of the host build's synthetic bridges at device sample ``index``.

    The rules are documented in ``rig_docs/firmware.md`` (synthetic signal).
    """
    n = np.asarray(index, dtype=np.int64)
    r = int(rate_hz)
    period, ramp = 2 * r, r // 5
    cycle = n % period
    plates = (channels + 3) // 4
    loaded = (n // period) % plates
    a = SYNTH_LOAD_COUNTS
    amp = np.where(cycle < ramp, a * cycle // max(ramp, 1),
                   np.where(cycle < r, a, np.where(cycle < r + ramp, a * (r + ramp - cycle) // max(ramp, 1), 0)))
    c = np.arange(channels, dtype=np.int64)
    out = 20000 + 1500 * c[None, :] + np.zeros((n.shape[0], 1), dtype=np.int64)
    on_plate = (c[None, :] // 4) == loaded[:, None]
    out += np.where(on_plate, amp[:, None] * (4 + c[None, :] % 4) // 22, 0)
    key = (n[:, None].astype(np.uint64) * np.uint64(64) + c[None, :].astype(np.uint64))
    out += (_lowbias32(key) % np.uint64(61)).astype(np.int64) - 30
    if clip_every:
        out[(n > 0) & (n % clip_every == 0), 0] = p.COUNTS_MAX
    return out


def samples_per_frame(rate_hz: int) -> int:
    return min(max((int(rate_hz) + 50) // 100, 1), MAX_SPF)


# -- what the firmware must send (a statement of device.c's behaviour) ----------------
@dataclass
class _Slot:
    first_sample: int
    time_us: int
    rows: list = field(default_factory=list)
    flags: int = 0


class ExpectedDevice:
    """The firmware's wire behaviour for a script of events, written from protocol.md.

    Same event vocabulary as the C runner's ``step`` lines.  The link accepts
    ``room`` bytes (None: all); the sample ring holds ``RING_SLOTS - 1``
    complete frames and drops the oldest when full.
    """

    def __init__(self, *, serial: str, rig: dict, channels: int, rate_hz: int, simulated: bool):
        self.serial, self.rig, self.channels, self.id_rate = serial, rig, channels, rate_hz
        self.simulated = simulated
        self.now = 0
        self.out = bytearray()
        self.inbox = bytearray()
        self.room: int | None = None
        self.clip_every = 0
        self.boot_id = 0

    # state
    def boot(self, boot_id: int) -> None:
        self.boot_id, self.seq = boot_id, 0
        self.boot_time = self.now
        self.next_status = self.now + STATUS_PERIOD_US
        self.rate = self.id_rate
        self.spf = samples_per_frame(self.rate)
        self.announce = True
        self.tx = b""
        self.next_index = 0
        self.overruns = 0
        self.complete: deque[_Slot] = deque()
        self.current: _Slot | None = None
        self.streaming = True
        self.rx_skip = False

    def _flag_bits(self) -> int:
        return p.FLAG_SIMULATED if self.simulated else 0

    # the sample ring
    def samples(self, n: int) -> None:
        if not self.streaming:
            return
        counts = synthetic_counts(np.arange(self.next_index, self.next_index + n), self.rate, self.channels, self.clip_every)
        for k in range(n):
            if self.current is None:
                self.current = _Slot(self.next_index, self.now + k * 1_000_000 // self.rate)
            row = counts[k]
            if row.min() <= p.COUNTS_MIN or row.max() >= p.COUNTS_MAX:
                self.current.flags |= p.FLAG_CLIPPING
            self.current.rows.append(row)
            self.next_index += 1
            if len(self.current.rows) >= self.spf:
                self._complete()

    def _complete(self) -> None:
        assert self.current is not None
        if len(self.complete) == RING_SLOTS - 1:
            dropped = self.complete.popleft()
            self.overruns += len(dropped.rows)
            (self.complete[0] if self.complete else self.current).flags |= p.FLAG_OVERRUN
        self.complete.append(self.current)
        self.current = None

    def _close(self) -> None:
        if self.current is not None and self.current.rows:
            self._complete()

    # frames out
    def _message(self, frame_type: int, payload: dict) -> bytes:
        frame = p.encode_message_frame(frame_type, boot_id=self.boot_id, seq=self.seq, payload=payload,
                                       device_time_us=self.now - self.boot_time, flags=self._flag_bits())
        self.seq = (self.seq + 1) % 2**32
        return frame

    def info_fields(self) -> dict:
        d = {"firmware": FIRMWARE, "serial": self.serial, "channels": self.channels, "rate_hz": self.rate,
             "samples_per_frame": self.spf, "rig": self.rig, "calibration_hash": None, "boot_id": self.boot_id}
        if self.simulated:
            d["simulated"] = True
        return d

    def _reply(self, cid: object, ok: bool, **fields) -> bytes:
        return self._message(p.FRAME_TYPE_REPLY, {"id": cid, "ok": ok, **fields})

    def _execute(self, cmd: dict) -> bytes:
        cid, name = cmd.get("id"), cmd.get("cmd")
        if name == "info":
            return self._reply(cid, True, **self.info_fields())
        if name in ("start", "stop"):
            if name == "stop" and self.streaming:
                self._close()
            self.streaming = name == "start"
            return self._reply(cid, True, streaming=self.streaming)
        if name == "set_rate":
            if "rate_hz" not in cmd:
                return self._reply(cid, False, error="bad arguments for 'set_rate': rate_hz is missing")
            rate = cmd["rate_hz"]
            if isinstance(rate, bool) or not isinstance(rate, (int, float)):
                return self._reply(cid, False, error="bad arguments for 'set_rate': rate_hz must be a number")
            if rate != int(rate):
                return self._reply(cid, False, error=f"rate_hz is not a whole number of Hz; supported rates: {SUPPORTED_TEXT} Hz")
            if int(rate) not in SUPPORTED_RATES_HZ:
                return self._reply(cid, False, error=f"rate {int(rate)} Hz is not supported; supported rates: {SUPPORTED_TEXT} Hz")
            if int(rate) != self.rate:
                if self.streaming:
                    self._close()  # the frame in progress ends at the old rate
                self.rate = int(rate)
                self.spf = samples_per_frame(self.rate)
            return self._reply(cid, True, rate_hz=self.rate)
        if name == "tare_hint":
            return self._reply(cid, True)
        return self._reply(cid, False, error=f"unknown command '{name}'")

    def _next_command_reply(self) -> bytes | None:
        while True:
            cut = self.inbox.find(0)
            if cut < 0:
                return None
            raw = bytes(self.inbox[:cut + 1])
            del self.inbox[:cut + 1]
            if len(raw) - 1 > MAX_COMMAND_WIRE or len(raw) == 1:
                continue
            msgs = FrameDecoder().feed(raw).messages
            if msgs and msgs[0].frame_type == p.FRAME_TYPE_COMMAND:
                return self._execute(msgs[0].payload)

    def _next_frame(self) -> bytes | None:
        if self.announce:
            self.announce = False
            return self._message(p.FRAME_TYPE_INFO, self.info_fields())
        reply = self._next_command_reply()
        if reply is not None:
            return reply
        if self.complete:
            s = self.complete.popleft()
            frame = p.encode_data_frame(boot_id=self.boot_id, seq=self.seq, first_sample=s.first_sample,
                                        device_time_us=s.time_us - self.boot_time, counts=np.array(s.rows),
                                        flags=s.flags | self._flag_bits())
            self.seq = (self.seq + 1) % 2**32
            return frame
        if self.now >= self.next_status:
            self.next_status += STATUS_PERIOD_US
            if self.next_status <= self.now:
                self.next_status = self.now + STATUS_PERIOD_US
            return self._message(p.FRAME_TYPE_STATUS, {
                "uptime_s": ((self.now - self.boot_time) // 1000) / 1000, "overruns": self.overruns,
                "streaming": self.streaming, "rate_hz": self.rate})
        return None

    def poll(self) -> None:
        while True:
            if self.tx:
                take = len(self.tx) if self.room is None else min(self.room, len(self.tx))
                self.out += self.tx[:take]
                self.tx = self.tx[take:]
                if self.room is not None:
                    self.room -= take
                if self.tx:
                    return
            frame = self._next_frame()
            if frame is None:
                return
            self.tx = frame

    def step(self, line: str) -> None:
        op, _, arg = line.partition(" ")
        if op == "time":
            self.now = int(arg)
        elif op in ("boot", "reset"):
            self.boot(int(arg, 0))
        elif op == "poll":
            self.poll()
        elif op == "samples":
            self.samples(int(arg))
        elif op in ("command", "input"):
            self.inbox += bytes.fromhex(arg)
        elif op == "link_room":
            self.room = None if arg == "unlimited" else int(arg)
        elif op == "seq":
            self.seq = int(arg)
        elif op == "clip_every":
            self.clip_every = int(arg)
        else:
            raise ValueError(f"unknown step {op!r}")


# -- the vectors ----------------------------------------------------------------------
def _cmd(name: str, cid: int, **args) -> str:
    return "command " + p.encode_command(name, cid, **args).hex()


def _data(name: str, note: str, *, counts, boot_id: int, seq: int, first_sample: int, device_time_us: int,
          flags: int = 0) -> dict:
    c = np.asarray(counts, dtype=np.int64)
    wire = p.encode_data_frame(boot_id=boot_id, seq=seq, first_sample=first_sample, device_time_us=device_time_us,
                               counts=c, flags=flags)
    return {"name": name, "kind": "data", "note": note, "boot_id": boot_id, "seq": seq, "first_sample": first_sample,
            "device_time_us": device_time_us, "flags": flags, "channels": c.shape[1], "samples": c.shape[0],
            "counts": " ".join(str(int(v)) for v in c.ravel()), "wire": wire.hex()}


def _message(name: str, note: str, *, frame_type: int, boot_id: int, seq: int, device_time_us: int, payload: dict,
             flags: int = 0) -> dict:
    wire = p.encode_message_frame(frame_type, boot_id=boot_id, seq=seq, payload=payload,
                                  device_time_us=device_time_us, flags=flags)
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return {"name": name, "kind": "message", "note": note, "frame_type": frame_type, "boot_id": boot_id, "seq": seq,
            "device_time_us": device_time_us, "flags": flags, "payload": text, "wire": wire.hex()}


def _exchange(name: str, note: str, steps: list[str], *, channels: int = 12, rate_hz: int = 1000,
              serial: str = "VEC-0001", simulated: bool = False, rig: dict | None = None) -> dict:
    rig = dict(VECTOR_RIG if rig is None else rig, channels=channels)
    dev = ExpectedDevice(serial=serial, rig=rig, channels=channels, rate_hz=rate_hz, simulated=simulated)
    for s in steps:
        dev.step(s)
    v: dict = {"name": name, "kind": "exchange", "note": note, "channels": channels, "rate_hz": rate_hz,
               "serial": serial, "rig": json.dumps(rig, separators=(",", ":"), ensure_ascii=False),
               "simulated": int(simulated), "ring_slots": RING_SLOTS}
    v["steps"] = steps
    v["wire"] = bytes(dev.out).hex()
    return v


def build_vectors() -> list[dict]:
    rng = np.random.default_rng(20261201)
    vs: list[dict] = []
    # COBS edge cases (protocol.md section 2)
    for name, raw in (("cobs_empty", b""), ("cobs_one_zero", b"\x00"), ("cobs_protocol_md", bytes.fromhex("0102000304")),
                      ("cobs_254_run", bytes(range(1, 255))), ("cobs_255_run", bytes(range(1, 256))),
                      ("cobs_254_run_then_zero", bytes(range(1, 255)) + b"\x00"),
                      ("cobs_zeros_and_runs", b"\x00" * 3 + bytes(range(1, 255)) * 2 + b"\x00\x11")):
        vs.append({"name": name, "kind": "cobs", "note": f"{len(raw)} bytes", "raw": raw.hex(),
                   "wire": p.cobs_encode(raw).hex()})
    # data frames
    vs.append(_data("protocol_md_example", "the worked example of protocol.md section 11",
                    counts=[[1000, -1000], [8388606, -2]], boot_id=0x1A2B3C4D, seq=7, first_sample=20,
                    device_time_us=20000, flags=p.FLAG_SIMULATED))
    vs.append(_data("twelve_channels_1khz", "the default rig: 12 channels, 10 samples (1 kHz)",
                    counts=synthetic_counts(np.arange(5000, 5010), 1000, 12), boot_id=0x89ABCDEF, seq=501,
                    first_sample=5000, device_time_us=5_000_000))
    vs.append(_data("largest_firmware_frame", "16 channels x 40 samples (4 kHz): the longest data frame the firmware sends",
                    counts=rng.integers(-2**23 + 1, 2**23 - 1, size=(40, 16)), boot_id=0xFFFFFFFF, seq=123456,
                    first_sample=2**40 + 3, device_time_us=2**40 // 4 + 17))
    vs.append(_data("clipping_positive_rail", "a sample at +8388607 sets the clipping flag",
                    counts=[[0, 8388607, 5]], boot_id=7, seq=1, first_sample=0, device_time_us=0))
    vs.append(_data("clipping_negative_rail", "a sample at -8388608 sets the clipping flag",
                    counts=[[-8388608, 1], [2, 3]], boot_id=7, seq=2, first_sample=1, device_time_us=1000))
    vs.append(_data("clipping_beyond_range", "values beyond 24 bits are clamped to the rails and flagged",
                    counts=[[9_000_000, -9_000_000, 8388606, -8388607]], boot_id=7, seq=3, first_sample=3,
                    device_time_us=3000))
    vs.append(_data("no_clipping_one_inside", "+8388606 and -8388607 are inside the range: no flag",
                    counts=[[8388606, -8388607]], boot_id=7, seq=4, first_sample=4, device_time_us=4000))
    vs.append(_data("overrun_flag", "the first frame after a device-side drop of 30 samples",
                    counts=np.arange(120).reshape(10, 12) - 60, boot_id=0x0BADF00D, seq=9, first_sample=130,
                    device_time_us=130_000, flags=p.FLAG_OVERRUN))
    vs.append(_data("seq_at_wrap", "seq 2^32 - 1, the last before the wrap to 0",
                    counts=[[1, 2, 3]], boot_id=0x01020304, seq=2**32 - 1, first_sample=99, device_time_us=99_000))
    vs.append(_data("seq_after_wrap", "seq 0 again, same boot: a wrap, not a reset",
                    counts=[[4, 5, 6]], boot_id=0x01020304, seq=0, first_sample=100, device_time_us=100_000))
    vs.append(_data("largest_counters", "first_sample and device_time_us at 2^63 - 1, the largest allowed",
                    counts=[[-1]], boot_id=0x80000000, seq=2**31, first_sample=2**63 - 1, device_time_us=2**63 - 1))
    vs.append(_data("every_flag", "clipping, overrun and simulated together",
                    counts=[[8388607, 0]], boot_id=5, seq=6, first_sample=7, device_time_us=8,
                    flags=p.FLAG_OVERRUN | p.FLAG_SIMULATED))
    # message frames
    vs.append(_message("status_frame", "a status frame", frame_type=p.FRAME_TYPE_STATUS, boot_id=0x1234, seq=42,
                       device_time_us=12_000_000,
                       payload={"uptime_s": 12.0, "overruns": 30, "streaming": True, "rate_hz": 1000}))
    vs.append(_message("log_frame_escapes", "a log line with quotes, a backslash, a newline and UTF-8",
                       frame_type=p.FRAME_TYPE_LOG, boot_id=0x1234, seq=43, device_time_us=12_000_500,
                       payload={"level": "warning", "msg": "cell \"box_front_left\" \\ ch 0\nsaturated: 5 % über"}))
    vs.append(_message("command_frame", "a host command: boot_id 0, seq = id",
                       frame_type=p.FRAME_TYPE_COMMAND, boot_id=0, seq=17, device_time_us=0,
                       payload={"cmd": "set_rate", "id": 17, "rate_hz": 2000}))
    # device-level exchanges: the firmware's main logic, byte for byte
    vs.append(_exchange(
        "power_up_info_then_data_and_status",
        "power-up: the info frame first (seq 0), then data frames of 10 samples, a status frame after 1 s",
        ["time 0", "boot 0x11111111", "poll", "samples 25", "time 25000", "poll", "time 1000000", "poll",
         "samples 5", "poll"]))
    vs.append(_exchange(
        "commands_and_replies",
        "info, set_rate (good, unsupported, fractional, missing, not a number), unknown, stop, start, tare_hint",
        ["time 0", "boot 0x22222222", "poll", "time 1000", _cmd("info", 1), "poll", "samples 15", "time 16000",
         _cmd("set_rate", 2, rate_hz=2000), "poll", "samples 40", "time 36000", "poll",
         _cmd("set_rate", 3, rate_hz=3000), _cmd("set_rate", 4, rate_hz=1000.5), _cmd("set_rate", 5),
         _cmd("set_rate", 6, rate_hz="fast"), _cmd("spin", 7), "poll", "samples 7", "time 39500", _cmd("stop", 8),
         "poll", "samples 20", "poll", "time 500000", _cmd("start", 9), "poll", "samples 20", "time 510000",
         _cmd("tare_hint", 10), _cmd("info", 11), "poll"]))
    vs.append(_exchange(
        "damaged_commands_are_not_answered",
        "a command with a bad CRC, garbage, an over-long frame and a non-command frame get no reply; the next good one does",
        ["time 0", "boot 0x33333333", "poll",
         "input " + _corrupt(p.encode_command("info", 1)).hex(), "input " + (b"\x17\x42\x99" * 5 + b"\x00").hex(),
         "input " + (b"\x01" * 700 + b"\x00").hex(),
         "input " + p.encode_message_frame(p.FRAME_TYPE_STATUS, boot_id=0, seq=0, payload={"x": 1}).hex(),
         _cmd("tare_hint", 2), "poll"]))
    vs.append(_exchange(
        "reset_restarts_boot_seq_index_and_time",
        "a reset: new boot id, seq 0, info frame again, sample index and device time from 0",
        ["time 0", "boot 0x44444444", "poll", "samples 20", "time 20000", "poll", "time 3000000", "reset 0x55555555",
         "poll", "samples 10", "time 3010000", "poll"]))
    vs.append(_exchange(
        "overrun_drops_the_oldest_and_flags",
        "the host stops reading: the ring (3 frames) drops the oldest; the first frame kept carries the overrun "
        "flag; status counts the dropped samples",
        ["time 0", "boot 0x66666666", "poll", "link_room 0", "samples 10", "poll", "samples 60",
         "link_room unlimited", "poll", "time 1000000", "poll"]))
    vs.append(_exchange(
        "seq_wraps_inside_a_boot",
        "seq runs through 2^32 - 1 to 0 without a reset",
        ["time 0", "boot 0x77777777", "poll", "seq 4294967294", "samples 30", "poll"]))
    vs.append(_exchange(
        "clipping_through_the_device",
        "channel 0 on the positive rail at samples 13 and 26: the second and third frames are flagged",
        ["time 0", "boot 0x88888888", "clip_every 13", "poll", "samples 30", "poll"]))
    vs.append(_exchange(
        "sixteen_channels_4khz_simulated",
        "the largest channel count: 16 channels at 4 kHz, 40 samples per frame, simulated flag on every frame",
        ["time 0", "boot 0x99999999", "poll", "samples 80", "poll", _cmd("info", 1), "poll"],
        channels=16, rate_hz=4000, serial="VEC-0016", simulated=True))
    vs.append(_exchange(
        "device_time_beyond_32_bits",
        "after 83 minutes the device time no longer fits 32 bits",
        ["time 0", "boot 0xAAAAAAAA", "poll", "time 5000000000", "poll", "samples 10", "poll"]))
    return vs


def _corrupt(frame: bytes) -> bytes:
    b = bytearray(frame)
    b[10] ^= 0x01 if b[10] != 0x01 else 0x03  # one bit error inside, never a 0x00
    return bytes(b)


def render(vectors: list[dict]) -> str:
    lines = ["# steplab wire test vectors (generated by make_vectors.py: do not edit by hand).",
             "# Checked by the firmware's C tests (make -C rig_docs/firmware test) and by tests/test_firmware.py.",
             "# Format: [name], then 'key = value' lines; hex is lower case; 'wire' is the exact expected bytes.", ""]
    for v in vectors:
        lines.append(f"[{v['name']}]")
        for k, val in v.items():
            if k in ("name", "steps", "wire"):
                continue
            lines.append(f"{k} = {val}")
        for s in v.get("steps", []):
            lines.append(f"step = {s}")
        lines.append(f"wire = {v['wire']}")
        lines.append("")
    return "\n".join(lines)


def parse(text: str) -> list[dict]:
    """Read a vector file: a list of dicts (``steps`` a list), values as strings."""
    out: list[dict] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            out.append({"name": line[1:line.index("]")], "steps": []})
            continue
        key, sep, val = line.partition(" = ")
        if not sep or not out:
            raise ValueError(f"bad vector line: {line[:60]!r}")
        if key == "step":
            out[-1]["steps"].append(val)
        else:
            out[-1][key] = val
    return out


def main(argv: list[str]) -> int:
    text = render(build_vectors())
    if argv == ["--check"]:
        if VECTORS_PATH.read_text(encoding="utf-8") != text:
            print(f"{VECTORS_PATH.name} is not what make_vectors.py produces; regenerate it", file=sys.stderr)
            return 1
        return 0
    VECTORS_PATH.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
