/* The converter seam: ADS131M08 on the target, a synthetic bridge model on the host.
 *
 * While started, the driver calls fw_sampler_push() once per conversion (from
 * the data-ready interrupt on the target) with all channels of one instant. */
#ifndef FW_ADC_H
#define FW_ADC_H
#include <stdbool.h>
#include <stdint.h>

typedef struct fw_adc {
    void *ctx;
    /* Can the converter sample at exactly rate_hz? */
    bool (*rate_supported)(void *ctx, uint32_t rate_hz);
    /* Start conversions at rate_hz (supported).  0 on success, -1 on a fault. */
    int (*start)(void *ctx, uint32_t rate_hz);
    /* Stop conversions; no fw_sampler_push() call happens after it returns. */
    void (*stop)(void *ctx);
    /* The supported rates for error messages, e.g. "500, 1000, 2000, 4000". */
    const char *supported_text;
} fw_adc;

#endif
