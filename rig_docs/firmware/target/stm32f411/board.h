/* The reference board: a WeAct "Black Pill" STM32F411CEU6 (25 MHz crystal) and
 * one or two ADS131M08 on SPI1.  Pins (see rig_docs/firmware.md, wiring):
 *   PA5 SCK, PA6 MISO (ADC DOUT), PA7 MOSI (ADC DIN)   SPI1, both converters
 *   PA4 CS of ADC0, PB0 CS of ADC1
 *   PA1 DRDY of ADC0 (falling edge: a conversion of all channels is ready)
 *   PA3 SYNC/RESET of both converters
 *   PA9 TX, PA10 RX                                     USART1 to the host (LINK=uart)
 *   PA11 D-, PA12 D+                                    USB (LINK=usb, not complete)
 *   PC13 LED (low = on)
 * The converters' CLKIN comes from one 8.192 MHz oscillator. */
#ifndef BOARD_H
#define BOARD_H
#include <stdint.h>

#include "adc.h"
#include "sampler.h"
#include "usb_link.h"

#define ADC_COUNT_MAX 2
#define ADC_CHANNELS 8

/* 24-bit words of one ADS131M08 frame: response, 8 channels, CRC */
#define ADC_FRAME_WORDS (2 + ADC_CHANNELS)

void board_init(void);        /* clocks (96 MHz), GPIO clocks, watchdog */
void board_watchdog_kick(void);
void board_led(int on);
uint32_t board_unique_id_word(unsigned i);

void clock_init(void);
uint64_t clock_now_us(void *ctx);

/* 0, or -(k+1) if converter k does not answer with the ADS131M08 id. */
int ads_init(fw_adc *ops, fw_sampler *sampler, uint16_t channels);
/* The id register read from converter k at init (0 if it did not answer). */
uint16_t ads_id(unsigned k);
/* Raw conversion words for the boot id (the converters' noise), taken by polling. */
unsigned ads_entropy(uint32_t *words, unsigned max_words);

void link_init(fw_link *link);
/* Bytes per second the link carries (rates above it are refused). */
uint32_t link_bytes_per_s(void);

#endif
