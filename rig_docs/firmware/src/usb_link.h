/* The link seam: USB CDC (or a UART) on the target, a pseudo-terminal on the host.
 * Both calls never block. */
#ifndef FW_USB_LINK_H
#define FW_USB_LINK_H
#include <stddef.h>
#include <stdint.h>

typedef struct fw_link {
    void *ctx;
    /* Queue up to n bytes for the host; returns how many were taken (0 if full). */
    size_t (*write)(void *ctx, const uint8_t *data, size_t n);
    /* Up to cap bytes that arrived from the host; 0 if none. */
    size_t (*read)(void *ctx, uint8_t *buf, size_t cap);
} fw_link;

#endif
