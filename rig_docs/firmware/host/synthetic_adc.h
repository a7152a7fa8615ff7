/* The host build's converter: synthetic bridge signals, paced by the host clock.
 *
 * Counts of channel c at device sample index n (rate r, integer arithmetic,
 * documented in rig_docs/firmware.md so a test can recompute them):
 *   offset   20000 + 1500 c                       (the empty plate's tare)
 *   load     a person stepping onto plate (n / 2r) mod plates every 2 s:
 *            ramp up over r/5 samples, hold to r, ramp down over r/5, rest;
 *            amplitude 2 746 000 counts (70 kg at 4000 counts/N) shared by
 *            the plate's four cells as (4 + c mod 4) / 22
 *   noise    lowbias32(n * 64 + c mod 2^32) mod 61 - 30
 * and channel 0 sits on the positive rail at every sample n > 0 that is a
 * multiple of clip_every (if not 0), to exercise the clipping flag. */
#ifndef FW_SYNTHETIC_ADC_H
#define FW_SYNTHETIC_ADC_H
#include <stdbool.h>
#include <stdint.h>

#include "adc.h"
#include "clock.h"
#include "sampler.h"

#define SYNTH_LOAD_COUNTS 2746000

typedef struct {
    fw_sampler *sampler;
    const fw_clock *clock;
    uint16_t channels;
    uint32_t rate_hz;
    bool running;
    uint64_t t_origin_us;   /* when the current run started */
    uint64_t produced;      /* conversions since then */
    uint64_t clip_every;    /* 0: never */
} synthetic_adc;

void synthetic_adc_init(synthetic_adc *a, fw_adc *ops, fw_sampler *s, const fw_clock *clock, uint16_t channels);
/* The counts of every channel at sample index n. */
void synthetic_counts(uint64_t n, uint32_t rate_hz, uint16_t channels, uint64_t clip_every, int32_t *out);
/* Deliver every conversion due by now (the host's "data-ready interrupts"). */
void synthetic_adc_run(synthetic_adc *a);

#endif
