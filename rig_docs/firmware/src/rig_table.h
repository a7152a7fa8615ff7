/* Rig descriptions compiled into the firmware (generated from the rigs folder by tools/embed_rig.py). */
#ifndef FW_RIG_TABLE_H
#define FW_RIG_TABLE_H
#include <stdint.h>

typedef struct {
    const char *name;     /* file stem, e.g. "host-12" */
    const char *json;     /* compact JSON object */
    const char *serial;
    uint16_t channels;
    uint32_t rate_hz;     /* the rig's sample_rate_hz */
} fw_rig_entry;

extern const fw_rig_entry fw_rigs[];
extern const unsigned fw_rig_count;

#endif
