/* Consistent Overhead Byte Stuffing: protocol.md section 2. */
#ifndef FW_COBS_H
#define FW_COBS_H
#include <stddef.h>
#include <stdint.h>

/* Encode n bytes into out (canonical form, no delimiter).  out needs
 * FW_COBS_MAX(n) bytes; returns the encoded length (never contains 0x00). */
size_t fw_cobs_encode(const uint8_t *in, size_t n, uint8_t *out);

/* Decode one frame (the bytes before its 0x00) into out (cap bytes).
 * Returns the decoded length, or -1 if a block runs past the end, a 0x00 is
 * inside, or out is too small. */
long fw_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap);

#endif
