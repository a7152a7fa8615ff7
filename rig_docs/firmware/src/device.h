/* The firmware's main logic: boot, frames out, commands in (protocol.md).
 *
 * The platform owns the seams (adc, clock, link) and calls:
 *   fw_device_init()  once,
 *   fw_device_boot()  at power-up (and to emulate a reset),
 *   fw_device_poll()  from its main loop, as often as it can,
 *   fw_sampler_push(&dev->sampler, ...) from the ADC's data-ready handler. */
#ifndef FW_DEVICE_H
#define FW_DEVICE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adc.h"
#include "clock.h"
#include "fw_config.h"
#include "sampler.h"
#include "usb_link.h"

typedef struct {
    const char *serial;           /* the rig's serial number (info reply) */
    const char *rig_json;         /* the rig description, one compact JSON object (rig_file.md) */
    uint16_t channels;            /* wire channels, 1 .. FW_MAX_CHANNELS */
    uint32_t rate_hz;             /* rate at power-up */
    bool simulated;               /* FW_FLAG_SIMULATED on every frame, "simulated": true in info */
    const char *calibration_hash; /* NULL: none stored on the device */
} fw_identity;

typedef struct {
    fw_identity id;
    const fw_adc *adc;
    const fw_clock *clock;
    const fw_link *link;

    uint32_t boot_id;
    uint32_t seq;
    uint64_t boot_time_us;
    uint64_t next_status_us;
    uint32_t rate_hz;
    bool streaming;
    bool announce;              /* the info frame after power-up is due */
    bool adc_fault;

    fw_sampler sampler;

    /* host -> device */
    uint8_t in[128];
    size_t in_len, in_pos;
    uint8_t rx[FW_MAX_COMMAND_WIRE];
    size_t rx_len;
    bool rx_skip;               /* an over-long frame: drop bytes up to the next 0x00 */
    uint8_t cmd_body[FW_MAX_COMMAND_WIRE];

    /* device -> host: one frame at a time */
    uint8_t body[FW_MAX_BODY];
    uint8_t tx[FW_MAX_WIRE];
    size_t tx_len, tx_off;
    fw_slot scratch;

    /* one pending log line (level, message) */
    char log_level[8];
    char log_msg[96];
    bool log_pending;

    const char *fault;          /* a lasting hardware fault, named in every status frame */
} fw_device;

/* Samples per frame for a rate: rate / 100, 1 .. FW_MAX_SPF (protocol.md section 10). */
uint16_t fw_samples_per_frame(uint32_t rate_hz);

/* Check the identity and attach the seams.  0, or -1 (bad identity: too many
 * channels, rig description too long, unsupported rate). */
int fw_device_init(fw_device *d, const fw_identity *id, const fw_adc *adc, const fw_clock *clock,
                   const fw_link *link);

/* Power-up (or reset): new boot id (1 .. 2^32-1), seq, sample index and device
 * time restart at 0, the info frame is announced, streaming starts. */
int fw_device_boot(fw_device *d, uint32_t boot_id);

/* Send what is due and answer commands; never blocks. */
void fw_device_poll(fw_device *d);

/* Queue one log frame (level: debug, info, warning, error); a newer one replaces an unsent one. */
void fw_device_log(fw_device *d, const char *level, const char *msg);

/* A lasting fault (e.g. a converter that does not answer): logged once and
 * named as "fault" in every status frame until cleared with NULL.  The string
 * must live as long as the fault. */
void fw_device_set_fault(fw_device *d, const char *msg);

#endif
