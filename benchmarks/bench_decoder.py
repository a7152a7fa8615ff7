"""Frame decoder throughput: wire bytes per second through ``FrameDecoder.feed``.

Decodes a pre-built buffer of a few MB of realistic data frames (with a status
frame once per "second" of samples) repeatedly, on one core, after a warm-up
that compiles the kernels.  Every byte goes through COBS, CRC-32, the header
checks and 24-bit unpacking.  Run ``python -m steplab.benchmarks.bench_decoder``.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from steplab.acquisition.frame_decoder import FrameDecoder, warm_up
from steplab.acquisition.protocol import FRAME_TYPE_STATUS, encode_data_frame, encode_message_frame


def build_stream(*, channels: int = 12, samples_per_frame: int = 10, target_bytes: int = 4_000_000,
                 rate_hz: float = 1000.0, seed: int = 0) -> tuple[bytes, int]:
    """A wire stream of about ``target_bytes`` bytes: data frames plus a status frame per second.

    Counts are load-cell-like: a per-channel offset plus a slow signal plus noise.

    Returns
    -------
    wire : bytes
        The concatenated frames.
    n_frames : int
        Frames in ``wire`` (data and status).
    """
    rng = np.random.default_rng(seed)
    offsets = rng.integers(-200_000, 200_000, channels)
    frames: list[bytes] = []
    total = 0
    seq = 0
    sample = 0
    per_second = max(1, int(rate_hz // samples_per_frame))
    while total < target_bytes:
        t = (sample + np.arange(samples_per_frame)) / rate_hz
        signal = (300_000 * np.sin(2 * np.pi * 0.5 * t))[:, None]
        counts = (offsets + signal + rng.normal(0, 50, (samples_per_frame, channels))).astype(np.int32)
        f = encode_data_frame(boot_id=0x1234ABCD, seq=seq, first_sample=sample,
                              device_time_us=int(sample * 1e6 / rate_hz), counts=counts)
        frames.append(f)
        total += len(f)
        seq += 1
        sample += samples_per_frame
        if seq % per_second == 0:
            m = encode_message_frame(FRAME_TYPE_STATUS, boot_id=0x1234ABCD, seq=seq,
                                     payload={"uptime_s": sample / rate_hz, "overruns": 0,
                                              "streaming": True, "rate_hz": rate_hz})
            frames.append(m)
            total += len(m)
            seq += 1
    return b"".join(frames), len(frames)


def measure_decoder(seconds: float = 2.0, channels: int = 12, samples_per_frame: int = 10) -> dict:
    """Decode a pre-built stream repeatedly for about ``seconds`` s and report throughput.

    Parameters
    ----------
    seconds : float
        Wall-clock time to spend decoding (after warm-up), s.
    channels, samples_per_frame : int
        Frame shape of the synthetic stream.

    Returns
    -------
    dict
        ``bytes_per_s`` (wire bytes/s), ``frames_per_s``, ``mb_per_s`` (1e6 bytes/s),
        ``link_ratio`` (bytes_per_s / 1e6: how many full-speed-USB-class 1 MB/s
        links one core keeps up with), ``frame_bytes`` (mean wire bytes per frame),
        ``seconds`` (measured time).
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    if channels < 1 or samples_per_frame < 1:
        raise ValueError("channels and samples_per_frame must be at least 1")
    warm_up()
    wire, n_frames = build_stream(channels=channels, samples_per_frame=samples_per_frame)
    block = 65536  # what a reader thread typically hands over per read
    views = [memoryview(wire)[i:i + block] for i in range(0, len(wire), block)]
    dec = FrameDecoder()
    for v in views[:4]:
        dec.feed(v)
    dec = FrameDecoder()
    passes = 0
    t0 = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds or passes == 0:
        for v in views:
            dec.feed(v)
        passes += 1
        elapsed = time.perf_counter() - t0
    if dec.crc_errors or dec.malformed or dec.frames_ok != passes * n_frames:
        raise RuntimeError(f"decoder benchmark lost frames: {dec.counters()}")
    bytes_per_s = passes * len(wire) / elapsed
    return {
        "bytes_per_s": bytes_per_s,
        "frames_per_s": passes * n_frames / elapsed,
        "mb_per_s": bytes_per_s / 1e6,
        "link_ratio": bytes_per_s / 1e6,
        "frame_bytes": len(wire) / n_frames,
        "seconds": elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    seconds = float(args[0]) if args else 2.0
    result = {f"{ch}ch_x{spf}": measure_decoder(seconds, ch, spf) for ch, spf in ((12, 10), (16, 20))}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
