#include "sampler.h"

#include <string.h>

#include "frame.h"
#include "port.h"

static uint32_t next_slot(uint32_t i) { return (i + 1u) % FW_RING_SLOTS; }

void fw_sampler_reset(fw_sampler *s, uint16_t spf, uint16_t channels)
{
    fw_port_lock();
    s->head = 0;
    s->tail = 0;
    s->next_index = 0;
    s->overruns = 0;
    s->spf = spf;
    s->channels = channels;
    s->slots[0].samples = 0;
    s->slots[0].flags = 0;
    fw_port_unlock();
}

void fw_sampler_set_spf(fw_sampler *s, uint16_t spf)
{
    fw_port_lock();
    s->spf = spf;
    fw_port_unlock();
}

/* The slot at head is complete: move on, dropping the oldest slot if the ring is full. */
static void complete_head(fw_sampler *s)
{
    uint32_t h = next_slot(s->head);
    if (h == s->tail) {
        fw_slot *oldest = &s->slots[s->tail];
        s->overruns += oldest->samples;
        s->tail = next_slot(s->tail);
        s->slots[s->tail].flags |= FW_FLAG_OVERRUN;
    }
    s->head = h;
    s->slots[h].samples = 0;
    s->slots[h].flags = 0;
}

void fw_sampler_push(fw_sampler *s, const int32_t *counts, uint64_t time_us)
{
    fw_slot *slot = &s->slots[s->head];
    if (slot->samples == 0) {
        slot->first_sample = s->next_index;
        slot->time_us = time_us;
        slot->channels = s->channels;
    }
    if (fw_pack_counts(counts, s->channels, slot->payload + (uint32_t)slot->samples * s->channels * 3u)) {
        slot->flags |= FW_FLAG_CLIPPING;
    }
    slot->samples++;
    s->next_index++;
    if (slot->samples >= s->spf) {
        complete_head(s);
    }
}

void fw_sampler_close(fw_sampler *s)
{
    fw_port_lock();
    if (s->slots[s->head].samples > 0) {
        complete_head(s);
    }
    fw_port_unlock();
}

bool fw_sampler_pop(fw_sampler *s, fw_slot *out)
{
    fw_port_lock();
    if (s->tail == s->head) {
        fw_port_unlock();
        return false;
    }
    const fw_slot *slot = &s->slots[s->tail];
    out->first_sample = slot->first_sample;
    out->time_us = slot->time_us;
    out->samples = slot->samples;
    out->flags = slot->flags;
    out->channels = slot->channels;
    memcpy(out->payload, slot->payload, (size_t)slot->samples * slot->channels * 3u);
    s->tail = next_slot(s->tail);
    fw_port_unlock();
    return true;
}

uint32_t fw_sampler_pending(const fw_sampler *s)
{
    return (s->head + FW_RING_SLOTS - s->tail) % FW_RING_SLOTS;
}
