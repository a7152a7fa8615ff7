/* The sample ring: frames are built in place by the data-ready handler.
 *
 * Producer (interrupt): fw_sampler_push() writes each conversion, packed as the
 * wire's 24-bit little-endian payload, into the slot being filled; a full slot
 * is one data frame.  Consumer (main loop): fw_sampler_pop() copies out the
 * oldest complete slot.  When the ring is full the OLDEST complete slot is
 * dropped: the sample index still advances over it, `overruns` counts its
 * samples, and the oldest remaining slot carries FW_FLAG_OVERRUN, so the host
 * sees a gap of exactly the dropped length, flagged as the device's
 * (protocol.md section 7).  The newest data is what a host that comes back
 * reads first. */
#ifndef FW_SAMPLER_H
#define FW_SAMPLER_H
#include <stdbool.h>
#include <stdint.h>

#include "fw_config.h"

typedef struct {
    uint64_t first_sample;   /* index since boot of the slot's first sample */
    uint64_t time_us;        /* device clock at the first sample */
    uint16_t samples;
    uint16_t flags;          /* FW_FLAG_CLIPPING, FW_FLAG_OVERRUN */
    uint16_t channels;
    uint8_t payload[FW_MAX_DATA_PAYLOAD];
} fw_slot;

typedef struct {
    fw_slot slots[FW_RING_SLOTS];
    volatile uint32_t head;  /* slot being filled (producer) */
    volatile uint32_t tail;  /* oldest complete slot (consumer); head == tail: empty */
    uint64_t next_index;     /* index of the next sample */
    uint64_t overruns;       /* samples dropped since boot */
    uint16_t spf;            /* samples per frame */
    uint16_t channels;
} fw_sampler;

/* Empty the ring and restart the sample index at 0 (power-up, reset). */
void fw_sampler_reset(fw_sampler *s, uint16_t spf, uint16_t channels);
/* New frame length from the next frame on (call after fw_sampler_close()). */
void fw_sampler_set_spf(fw_sampler *s, uint16_t spf);
/* One conversion: counts[0 .. channels-1], taken at time_us (producer side). */
void fw_sampler_push(fw_sampler *s, const int32_t *counts, uint64_t time_us);
/* End the slot being filled early (stop, rate change): a shorter frame. */
void fw_sampler_close(fw_sampler *s);
/* Copy the oldest complete slot to out; false if there is none. */
bool fw_sampler_pop(fw_sampler *s, fw_slot *out);
/* Complete slots waiting. */
uint32_t fw_sampler_pending(const fw_sampler *s);

#endif
