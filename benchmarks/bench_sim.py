"""Simulator and frame-encoder speed: how many times faster than real time the virtual rig runs.

These are benchmark figures, not test assertions: a loaded or slow machine changes them
(`steplab bench` reports them with the machine it ran on).
"""

from __future__ import annotations

import time

import numpy as np

from steplab.acquisition import protocol
from steplab.acquisition.rig import split_box_rig
from steplab.acquisition.sim_rig import SimulatedRigModel
from steplab.acquisition.sim_subject import Subject


def measure_simulator(seconds: float = 10.0, rate_hz: float = 4000.0) -> dict:
    """CPU time of the 16-channel simulated rig model for ``seconds`` of data at ``rate_hz``.

    Returns ``{"seconds_of_data", "rate_hz", "channels", "cpu_s", "x_real_time"}``; the model
    is read in 0.1 s blocks, as the device server reads it.
    """
    model = SimulatedRigModel(split_box_rig(), Subject(), "session", seed=0, rate_hz=rate_hz)
    block = int(round(rate_hz * 0.1))
    model.read_counts(block * 10)  # warm-up: numba caches and the first episode
    n_blocks = int(round(seconds * 10))
    t0 = time.process_time()
    for _ in range(n_blocks):
        model.read_counts(block)
    cpu_s = time.process_time() - t0
    return {"seconds_of_data": n_blocks / 10, "rate_hz": rate_hz, "channels": model.rig.channels,
            "cpu_s": cpu_s, "x_real_time": (n_blocks / 10) / cpu_s if cpu_s > 0 else None}


def measure_encoder(frames: int = 200, samples_per_frame: int = 20, channels: int = 16) -> dict:
    """Wall time to COBS/CRC-encode ``frames`` data frames (default: 1 s of 16 ch x 4 kHz).

    Returns ``{"frames", "bytes", "elapsed_s", "bytes_per_s", "share_of_one_core_at_link_rate"}``.
    """
    rng = np.random.default_rng(3)
    blocks = [rng.integers(-300_000, 300_000, (samples_per_frame, channels)).astype(np.int32) for _ in range(frames)]
    protocol.encode_data_frame(boot_id=1, seq=0, first_sample=0, device_time_us=0, counts=blocks[0])
    n_bytes = 0
    t0 = time.perf_counter()
    for i, c in enumerate(blocks):
        n_bytes += len(protocol.encode_data_frame(boot_id=1, seq=i, first_sample=samples_per_frame * i,
                                                  device_time_us=5000 * i, counts=c))
    elapsed_s = time.perf_counter() - t0
    data_s = frames * samples_per_frame / 4000.0
    return {"frames": frames, "bytes": n_bytes, "elapsed_s": elapsed_s,
            "bytes_per_s": n_bytes / elapsed_s if elapsed_s > 0 else None,
            "share_of_one_core_at_link_rate": elapsed_s / data_s}
