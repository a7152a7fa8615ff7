#include "synthetic_adc.h"

static const uint32_t rates[] = {500, 1000, 2000, 4000};

static uint32_t lowbias32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

void synthetic_counts(uint64_t n, uint32_t rate_hz, uint16_t channels, uint64_t clip_every, int32_t *out)
{
    uint64_t r = rate_hz;
    uint64_t period = 2 * r, ramp = r / 5;
    uint64_t cycle = n % period;
    unsigned plates = (channels + 3u) / 4u;
    unsigned loaded = (unsigned)((n / period) % plates);
    int64_t amp;
    if (cycle < ramp) {
        amp = (int64_t)(SYNTH_LOAD_COUNTS * cycle / ramp);
    } else if (cycle < r) {
        amp = SYNTH_LOAD_COUNTS;
    } else if (cycle < r + ramp) {
        amp = (int64_t)(SYNTH_LOAD_COUNTS * (r + ramp - cycle) / ramp);
    } else {
        amp = 0;
    }
    for (unsigned c = 0; c < channels; c++) {
        int64_t v = 20000 + 1500 * (int64_t)c;
        if (c / 4u == loaded) {
            v += amp * (4 + (int64_t)(c % 4u)) / 22;
        }
        v += (int64_t)(lowbias32((uint32_t)(n * 64u + c)) % 61u) - 30;
        out[c] = (int32_t)v;
    }
    if (clip_every && n > 0 && n % clip_every == 0) {
        out[0] = 8388607;
    }
}

static bool supported(void *ctx, uint32_t rate_hz)
{
    (void)ctx;
    for (unsigned i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        if (rates[i] == rate_hz) {
            return true;
        }
    }
    return false;
}

static int start(void *ctx, uint32_t rate_hz)
{
    synthetic_adc *a = ctx;
    a->rate_hz = rate_hz;
    a->running = true;
    a->t_origin_us = a->clock->now_us(a->clock->ctx);
    a->produced = 0;
    return 0;
}

static void stop(void *ctx)
{
    synthetic_adc *a = ctx;
    a->running = false;
}

void synthetic_adc_init(synthetic_adc *a, fw_adc *ops, fw_sampler *s, const fw_clock *clock, uint16_t channels)
{
    a->sampler = s;
    a->clock = clock;
    a->channels = channels;
    a->rate_hz = 1000;
    a->running = false;
    a->clip_every = 0;
    ops->ctx = a;
    ops->rate_supported = supported;
    ops->start = start;
    ops->stop = stop;
    ops->supported_text = "500, 1000, 2000, 4000";
}

void synthetic_adc_run(synthetic_adc *a)
{
    if (!a->running) {
        return;
    }
    uint64_t now = a->clock->now_us(a->clock->ctx);
    uint64_t due = (now - a->t_origin_us) * a->rate_hz / 1000000u;
    int32_t counts[FW_MAX_CHANNELS];
    while (a->produced < due) {
        /* the sample index the sampler gives this conversion */
        synthetic_counts(a->sampler->next_index, a->rate_hz, a->channels, a->clip_every, counts);
        fw_sampler_push(a->sampler, counts, a->t_origin_us + a->produced * 1000000u / a->rate_hz);
        a->produced++;
    }
}
