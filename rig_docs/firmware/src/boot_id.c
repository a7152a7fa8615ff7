/* Boot id from entropy words: each word goes through a 32-bit avalanche mix
 * (the "lowbias32" integer hash) chained with the state, so every input bit
 * affects every output bit.  0 is reserved for host frames and never returned. */
#include "port.h"

static uint32_t avalanche(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

uint32_t fw_boot_id_mix(const uint32_t *words, size_t n)
{
    uint32_t h = 0x9e3779b9u;
    for (size_t i = 0; i < n; i++) {
        h = avalanche(h ^ words[i]) + 0x9e3779b9u * (uint32_t)(i + 1);
    }
    h = avalanche(h);
    while (h == 0) {
        h = avalanche(h + 0x9e3779b9u);
    }
    return h;
}
