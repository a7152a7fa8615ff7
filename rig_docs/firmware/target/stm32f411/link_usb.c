/* USB CDC-ACM on the STM32F411's OTG_FS (PA11/PA12): NOT PART OF THE REFERENCE BUILD YET.
 *
 * The firmware needs only the two calls of usb_link.h from a CDC driver:
 *   write(): queue bytes for the bulk IN endpoint, return how many were taken
 *            (0 when its buffer is full: the sample ring then holds the data);
 *   read():  bytes received on the bulk OUT endpoint.
 * plus link_bytes_per_s() (about 1 000 000 for USB full speed).  TinyUSB (MIT
 * licence; tud_cdc_write / tud_cdc_read / tud_task in the main loop) or
 * libopencm3's usbd + cdcacm example provide exactly this; neither is in
 * Debian, so the reference build uses the UART link (link_uart.c).  See
 * rig_docs/firmware.md, "USB". */
#error "LINK=usb is not implemented: build with LINK=uart, or complete link_usb.c with a USB CDC driver (rig_docs/firmware.md)"
