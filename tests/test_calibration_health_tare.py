"""Channel health checks and tare (incl. AutoTare) on synthetic counts with known faults."""

import numpy as np
import pytest

from steplab.calibration.channel_health import (
    DISCONNECTED,
    NO_RESPONSE,
    NOISY,
    OK,
    REVERSED,
    SATURATED,
    STUCK,
    ChannelFault,
    check_block,
    check_response,
    noise_sd_counts,
)
from steplab.calibration.tare import AutoTare, TareError, compute_tare
from steplab.constants import ADC_FULL_SCALE_COUNTS

SENS = np.full(4, 4000.0)
RATE = 1000.0


def quiet_counts(n, seed=0, sd=200.0, offsets=(1000.0, -5000.0, 20000.0, 300.0)):
    rng = np.random.default_rng(seed)
    return np.round(np.asarray(offsets) + rng.normal(0, sd, (n, 4))).astype(np.int32)


def test_healthy_block_is_ok_and_noise_estimate_matches():
    c = quiet_counts(5000, sd=250.0)
    rep = check_block(c, noise_limit_counts=1000.0)
    assert rep.ok and rep.message == "all channels ok"
    np.testing.assert_allclose(noise_sd_counts(c), 250.0, rtol=0.05)


@pytest.mark.parametrize("value,status,words", [
    (0, DISCONNECTED, "reads constant 0"),
    (ADC_FULL_SCALE_COUNTS, DISCONNECTED, "pinned at full scale"),
    (-ADC_FULL_SCALE_COUNTS - 1, DISCONNECTED, "pinned at full scale"),
    (12345, STUCK, "stuck at 12345 counts"),
])
def test_constant_channels(value, status, words):
    c = quiet_counts(300)
    c[:, 2] = value
    rep = check_block(c, cell_names=["a", "b", "c", "d"], channels=[4, 5, 6, 7])
    assert [h.status for h in rep.cells] == [OK, OK, status, OK]
    assert "cell c (channel 6)" in rep.message and words in rep.message
    with pytest.raises(ChannelFault, match="cell c"):
        rep.raise_if_faulty()


def test_saturated_and_noisy():
    c = quiet_counts(1000)
    c[100:110, 1] = ADC_FULL_SCALE_COUNTS
    c[:, 3] = quiet_counts(1000, seed=5, sd=5000.0)[:, 3]
    rep = check_block(c, noise_limit_counts=1000.0)
    assert [h.status for h in rep.cells] == [OK, SATURATED, OK, NOISY]
    assert "10 of 1000 samples at full scale" in rep.cells[1].message
    # a slow ramp (drift or a load going on) is not noise
    ramp = quiet_counts(1000) + np.linspace(0, 1e5, 1000)[:, None].astype(np.int32)
    assert check_block(ramp, noise_limit_counts=1000.0).ok


def test_response_reversed_and_missing():
    expected = np.array([40000.0, 40000.0, 40000.0, 40000.0])
    rep = check_response(np.array([39000.0, -38000.0, 1000.0, 41000.0]), expected)
    assert [h.status for h in rep.cells] == [OK, REVERSED, NO_RESPONSE, OK]
    assert "reversed polarity" in rep.cells[1].message
    # cells expected to carry almost nothing are not judged
    rep = check_response(np.array([-10.0, 50000.0]), np.array([5.0, 50000.0]), min_expected_counts=100.0)
    assert rep.ok


def test_tare_mean_and_time_since():
    c = quiet_counts(2500)
    t = compute_tare(c, RATE, SENS, end_sample=10_000)
    np.testing.assert_allclose(t.offsets_counts, c.mean(axis=0))
    assert t.n_samples == 2500
    assert t.seconds_since(13_000) == pytest.approx(3.0)


def test_tare_refuses_short_unsteady_and_loaded():
    with pytest.raises(TareError, match="at least 2 s"):
        compute_tare(quiet_counts(1500), RATE, SENS)
    c = quiet_counts(2500).astype(np.float64)
    c[:, 0] += np.linspace(0, 40000, 2500)  # 10 N creeping on: not steady
    with pytest.raises(TareError, match="not steady"):
        compute_tare(c, RATE, SENS)
    ref = quiet_counts(2500).mean(axis=0)
    loaded = quiet_counts(2500, seed=3) + np.int32(50 * 4000 / 4)  # 50 N on the plate
    with pytest.raises(TareError, match="loaded during tare"):
        compute_tare(loaded, RATE, SENS, reference_offsets_counts=ref)
    t = compute_tare(quiet_counts(2500, seed=4), RATE, SENS, reference_offsets_counts=ref)
    assert np.all(np.abs(t.offsets_counts - ref) < 50)


def test_auto_tare_only_when_unloaded_and_steady():
    off = np.array([1000.0, -5000.0, 20000.0, 300.0])
    at = AutoTare(off, SENS, RATE, window_s=1.0, min_interval_s=0.0)
    # someone standing (700 N): never re-tared
    standing = quiet_counts(3000, seed=1) + np.int32(700 * 4000 / 4)
    assert at.update(standing) is None
    # unloaded but the zero drifted by 2 N: re-tared to the new zero
    drifted = quiet_counts(3000, seed=2, offsets=off + 2000.0)
    tare = at.update(drifted)
    assert tare is not None
    np.testing.assert_allclose(tare.offsets_counts, off + 2000.0, atol=30)
    assert at.seconds_since_tare() == pytest.approx(0.0)
    # unloaded but shaking: not re-tared
    shaky = quiet_counts(1000, seed=3, sd=3000.0, offsets=off + 2000.0)
    assert at.update(shaky) is None
    assert at.seconds_since_tare() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="counts must be"):
        at.update(np.zeros((10, 3)))
