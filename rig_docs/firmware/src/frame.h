/* Frame layout of the steplab wire protocol v1 (protocol.md sections 3-5). */
#ifndef FW_FRAME_H
#define FW_FRAME_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FW_PROTOCOL_VERSION 1
enum {
    FW_FRAME_DATA = 1, FW_FRAME_STATUS = 2, FW_FRAME_INFO = 3, FW_FRAME_EVENT = 4,
    FW_FRAME_REPLY = 5, FW_FRAME_LOG = 6, FW_FRAME_COMMAND = 7,
};
#define FW_FLAG_CLIPPING 0x0001u  /* a sample of the frame sits on a 24-bit rail */
#define FW_FLAG_OVERRUN 0x0002u   /* the device dropped samples just before this frame */
#define FW_FLAG_SIMULATED 0x0004u /* synthetic data (the host build) */

#define FW_COUNTS_MAX 8388607L
#define FW_COUNTS_MIN (-8388608L)

typedef struct {
    uint8_t frame_type;
    uint16_t flags;
    uint32_t boot_id;
    uint32_t seq;
    uint64_t first_sample;
    uint64_t device_time_us;
    uint16_t channels;
    uint16_t samples;
} fw_header;

/* Write the 32-byte little-endian header at body[0..31]. */
void fw_header_put(uint8_t *body, const fw_header *h);
/* Read it back (no checks). */
void fw_header_get(const uint8_t *body, fw_header *h);

/* Pack n counts as 24-bit signed little-endian at out (3 n bytes), clamped to
 * the rails.  Returns true if any value is at or beyond a rail (clipping). */
bool fw_pack_counts(const int32_t *counts, size_t n, uint8_t *out);

/* Append the CRC-32 of body[0..len-1] at body[len], COBS-encode the len + 4
 * bytes into wire and add the 0x00 delimiter.  wire needs
 * FW_COBS_MAX(len + 4) + 1 bytes.  Returns the wire length. */
size_t fw_frame_finish(uint8_t *body, size_t len, uint8_t *wire);

/* A decoded frame from the host: checks COBS, length, CRC, version, type range
 * and the sample fields (protocol.md section 6).  On success returns the body
 * length and fills h; the payload is body[32 .. len-5].  -1 otherwise. */
long fw_frame_decode(const uint8_t *enc, size_t n, uint8_t *body, size_t cap, fw_header *h);

void fw_put_u16(uint8_t *p, uint16_t v);
void fw_put_u32(uint8_t *p, uint32_t v);
void fw_put_u64(uint8_t *p, uint64_t v);
uint16_t fw_get_u16(const uint8_t *p);
uint32_t fw_get_u32(const uint8_t *p);
uint64_t fw_get_u64(const uint8_t *p);

#endif
