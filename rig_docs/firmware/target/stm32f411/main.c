/* The reference firmware on the STM32F411: power-up, boot id, main loop. */
#include "board.h"
#include "device.h"
#include "port.h"
#include "rig_table.h"

static fw_device dev;

int main(void)
{
    board_init();
    clock_init();
    static fw_link link;
    link_init(&link);
    const fw_rig_entry *rig = &fw_rigs[0];
    static fw_adc adc;
    int adc_rc = ads_init(&adc, &dev.sampler, rig->channels);

    /* boot id: the chip's 96-bit unique id (which box), the converters' noise
     * and the microsecond timer's jitter (which power-up) */
    uint32_t entropy[3 + 8 * ADC_COUNT_MAX * 8 + 1];
    unsigned n = 0;
    for (unsigned i = 0; i < 3; i++) {
        entropy[n++] = board_unique_id_word(i);
    }
    n += ads_entropy(entropy + n, 8 * ADC_COUNT_MAX * 8);
    entropy[n++] = (uint32_t)clock_now_us(0);
    uint32_t boot_id = fw_boot_id_mix(entropy, n);

    static fw_clock clock = {0, clock_now_us};
    fw_identity id = {rig->serial, rig->json, rig->channels, rig->rate_hz, false, 0};
    int rate_refused = 0;
    if (fw_device_init(&dev, &id, &adc, &clock, &link) != 0) {
        /* the rig file's rate is more than the link carries (embed_rig.py checks the rest) */
        id.rate_hz = 1000;
        rate_refused = 1;
        if (fw_device_init(&dev, &id, &adc, &clock, &link) != 0) {
            for (;;) {
                board_led(1); /* cannot happen with a rig file embed_rig.py accepted; the watchdog resets */
            }
        }
    }
    fw_device_boot(&dev, boot_id);
    if (rate_refused) {
        fw_device_log(&dev, "warning", "the rig file's sample rate is more than this link carries: streaming at 1000 Hz");
    }
    if (adc_rc != 0) {
        fw_device_set_fault(&dev, adc_rc == -1 ? "ADS131M08 #0 does not answer: check SPI wiring, CLKIN and power"
                                               : "ADS131M08 #1 does not answer: check SPI wiring, CLKIN and power");
    }
    for (;;) {
        fw_device_poll(&dev);
        board_watchdog_kick();
        /* LED: 1 Hz while streaming, 5 Hz with a converter fault */
        uint64_t half_periods = clock_now_us(0) / (dev.fault ? 100000u : 500000u);
        board_led((dev.streaming || dev.fault) && half_periods % 2u == 0);
    }
}
