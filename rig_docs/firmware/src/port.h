/* What each platform provides besides the three seams (adc.h, clock.h, usb_link.h). */
#ifndef FW_PORT_H
#define FW_PORT_H
#include <stddef.h>
#include <stdint.h>

/* Keep the data-ready handler out while the main loop touches the sample ring
 * (a few microseconds).  No-ops on the single-threaded host build. */
void fw_port_lock(void);
void fw_port_unlock(void);

/* Mix entropy words (noise, unique id, timer jitter) into a boot id: 1 .. 2^32-1. */
uint32_t fw_boot_id_mix(const uint32_t *words, size_t n);

#endif
