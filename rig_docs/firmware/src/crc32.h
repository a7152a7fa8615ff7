/* CRC-32 (IEEE 802.3, reflected, as zlib.crc32): protocol.md section 5. */
#ifndef FW_CRC32_H
#define FW_CRC32_H
#include <stddef.h>
#include <stdint.h>

/* Continue a CRC: start with crc = 0 for a new message, as zlib.crc32(data, crc). */
uint32_t fw_crc32_update(uint32_t crc, const uint8_t *data, size_t n);
static inline uint32_t fw_crc32(const uint8_t *data, size_t n) { return fw_crc32_update(0, data, n); }

#endif
