/* The device clock seam: microseconds since power-up, 64 bits (never wraps in practice). */
#ifndef FW_CLOCK_H
#define FW_CLOCK_H
#include <stdint.h>

typedef struct fw_clock {
    void *ctx;
    uint64_t (*now_us)(void *ctx);
} fw_clock;

/* Extending a free-running 32-bit microsecond counter (it wraps every 71.6
 * minutes) to 64 bits.  Call at least once per wrap period, from one context
 * at a time (the status frame calls it every second). */
typedef struct {
    uint32_t last_raw;
    uint64_t high;
} fw_clock_ext;

static inline uint64_t fw_clock_extend32(fw_clock_ext *e, uint32_t raw)
{
    if (raw < e->last_raw) {
        e->high += 1ull << 32;
    }
    e->last_raw = raw;
    return e->high | raw;
}

#endif
