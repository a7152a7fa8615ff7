/* Build-time limits of the reference firmware (sizes in bytes, counts in samples). */
#ifndef FW_CONFIG_H
#define FW_CONFIG_H

#define FW_VERSION "steplab-fw 1.0.0"

/* Two ADS131M08 converters: at most 16 bridges. */
#define FW_MAX_CHANNELS 16
/* protocol.md section 10: samples_per_frame = rate_hz / 100, at most 40 (4 kHz). */
#define FW_MAX_SPF 40

/* Ring of frame slots between the data-ready interrupt and the main loop.
 * Every slot is 10 ms of samples at every supported rate, so 32 slots hold
 * 310 ms (building_the_rig.md asks for >= 100 ms).  The host build uses more. */
#ifndef FW_RING_SLOTS
#define FW_RING_SLOTS 32
#endif

#define FW_HEADER_SIZE 32
#define FW_CRC_SIZE 4
#define FW_MAX_DATA_PAYLOAD (FW_MAX_SPF * FW_MAX_CHANNELS * 3)
/* JSON messages (the info reply carries the rig description). */
#define FW_MAX_MESSAGE_PAYLOAD 4000
#define FW_MAX_PAYLOAD (FW_MAX_DATA_PAYLOAD > FW_MAX_MESSAGE_PAYLOAD ? FW_MAX_DATA_PAYLOAD : FW_MAX_MESSAGE_PAYLOAD)
#define FW_MAX_BODY (FW_HEADER_SIZE + FW_MAX_PAYLOAD + FW_CRC_SIZE)
/* COBS adds 1 byte per started 254 bytes; then the 0x00 delimiter. */
#define FW_COBS_MAX(n) ((n) + (n) / 254 + 1)
#define FW_MAX_WIRE (FW_COBS_MAX(FW_MAX_BODY) + 1)
/* Longest command frame the device accepts from the host (encoded). */
#define FW_MAX_COMMAND_WIRE 512

/* Status frame period (protocol.md section 9: about once per second). */
#define FW_STATUS_PERIOD_US 1000000u

#endif
