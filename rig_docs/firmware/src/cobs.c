#include "cobs.h"

size_t fw_cobs_encode(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t code_at = 0; /* where the current block's code byte goes */
    size_t o = 1;
    uint8_t code = 1; /* 1 + bytes in the current block */
    for (size_t i = 0; i < n; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
            continue;
        }
        out[o++] = in[i];
        code++;
        if (code == 0xFF && i + 1 < n) {
            /* 254 bytes without a zero: close the block ("no zero follows").
             * At the very end no empty block follows (canonical form). */
            out[code_at] = code;
            code_at = o++;
            code = 1;
        }
    }
    out[code_at] = code;
    return o;
}

long fw_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    size_t i = 0, o = 0;
    while (i < n) {
        uint8_t code = in[i];
        if (code == 0 || i + code > n) {
            return -1;
        }
        for (size_t k = 1; k < code; k++) {
            if (in[i + k] == 0 || o >= cap) {
                return -1;
            }
            out[o++] = in[i + k];
        }
        i += code;
        if (code != 0xFF && i < n) {
            if (o >= cap) {
                return -1;
            }
            out[o++] = 0;
        }
    }
    return (long)o;
}
