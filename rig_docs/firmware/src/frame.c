#include "frame.h"

#include "cobs.h"
#include "crc32.h"
#include "fw_config.h"

void fw_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
void fw_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}
void fw_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}
uint16_t fw_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
uint32_t fw_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
uint64_t fw_get_u64(const uint8_t *p) { return (uint64_t)fw_get_u32(p) | ((uint64_t)fw_get_u32(p + 4) << 32); }

void fw_header_put(uint8_t *body, const fw_header *h)
{
    body[0] = FW_PROTOCOL_VERSION;
    body[1] = h->frame_type;
    fw_put_u16(body + 2, h->flags);
    fw_put_u32(body + 4, h->boot_id);
    fw_put_u32(body + 8, h->seq);
    fw_put_u64(body + 12, h->first_sample);
    fw_put_u64(body + 20, h->device_time_us);
    fw_put_u16(body + 28, h->channels);
    fw_put_u16(body + 30, h->samples);
}

void fw_header_get(const uint8_t *body, fw_header *h)
{
    h->frame_type = body[1];
    h->flags = fw_get_u16(body + 2);
    h->boot_id = fw_get_u32(body + 4);
    h->seq = fw_get_u32(body + 8);
    h->first_sample = fw_get_u64(body + 12);
    h->device_time_us = fw_get_u64(body + 20);
    h->channels = fw_get_u16(body + 28);
    h->samples = fw_get_u16(body + 30);
}

bool fw_pack_counts(const int32_t *counts, size_t n, uint8_t *out)
{
    bool rail = false;
    for (size_t i = 0; i < n; i++) {
        int32_t v = counts[i];
        if (v >= FW_COUNTS_MAX) {
            v = FW_COUNTS_MAX;
            rail = true;
        } else if (v <= FW_COUNTS_MIN) {
            v = FW_COUNTS_MIN;
            rail = true;
        }
        uint32_t u = (uint32_t)v;
        out[3 * i] = (uint8_t)u;
        out[3 * i + 1] = (uint8_t)(u >> 8);
        out[3 * i + 2] = (uint8_t)(u >> 16);
    }
    return rail;
}

size_t fw_frame_finish(uint8_t *body, size_t len, uint8_t *wire)
{
    fw_put_u32(body + len, fw_crc32(body, len));
    size_t n = fw_cobs_encode(body, len + FW_CRC_SIZE, wire);
    wire[n] = 0;
    return n + 1;
}

long fw_frame_decode(const uint8_t *enc, size_t n, uint8_t *body, size_t cap, fw_header *h)
{
    long len = fw_cobs_decode(enc, n, body, cap);
    if (len < FW_HEADER_SIZE + FW_CRC_SIZE || len > 65535) {
        return -1;
    }
    size_t m = (size_t)len - FW_CRC_SIZE;
    if (fw_crc32(body, m) != fw_get_u32(body + m)) {
        return -1;
    }
    if (body[0] != FW_PROTOCOL_VERSION || body[1] < FW_FRAME_DATA || body[1] > FW_FRAME_COMMAND) {
        return -1;
    }
    fw_header_get(body, h);
    if ((h->first_sample >> 63) || (h->device_time_us >> 63)) {
        return -1;
    }
    if (h->frame_type == FW_FRAME_DATA) {
        if (h->channels == 0 || h->samples == 0 || (size_t)h->channels * h->samples * 3u != m - FW_HEADER_SIZE) {
            return -1;
        }
    } else if (h->channels != 0 || h->samples != 0) {
        return -1;
    }
    return len;
}
