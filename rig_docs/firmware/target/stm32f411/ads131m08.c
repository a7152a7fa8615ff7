/* One or two TI ADS131M08 on SPI1 (data sheet SBAS950): 8 simultaneous-sampling
 * 24-bit delta-sigma channels each, clocked from one 8.192 MHz oscillator and
 * started together by one SYNC/RESET line, so every bridge is sampled at the
 * same instant.  Data rate = fMOD / OSR with fMOD = 4.096 MHz (high-resolution
 * mode): OSR 8192 -> 500 Hz, 4096 -> 1 kHz, 2048 -> 2 kHz, 1024 -> 4 kHz.
 *
 * Each conversion: DRDY of ADC0 falls -> EXTI1 -> read a 10-word frame from
 * every converter (NULL command: word 0 is the STATUS register, words 1..8 the
 * channels, word 9 the output CRC) -> fw_sampler_push(). */
#include <stdbool.h>

#include "board.h"
#include "stm32f411.h"

#define CMD_NULL 0x0000u
#define CMD_RESET 0x0011u
#define CMD_WREG(addr, n) (0x6000u | ((addr) << 7) | ((n) - 1u))
#define CMD_RREG(addr, n) (0xA000u | ((addr) << 7) | ((n) - 1u))
#define REG_ID 0x00u
#define REG_MODE 0x02u
#define REG_CLOCK 0x03u
#define REG_GAIN1 0x04u
#define REG_GAIN2 0x05u
#define ID_ADS131M08 0x28u /* high byte of the ID register */

#define MODE_24BIT_NO_RESET_FLAG 0x0110u /* WLENGTH 24 bit, SPI timeout on, RESET flag cleared */
#define CLOCK_ALL_CHANNELS_HR 0xFF02u    /* CH0..CH7 on, high-resolution power mode; OSR in bits 4:2 */
#define GAIN_128_X4 0x7777u              /* PGA gain 128 on four channels */

static fw_sampler *g_sampler;
static uint16_t g_channels;
static unsigned g_adcs;
static uint16_t g_id[ADC_COUNT_MAX];
static volatile bool g_running;

static const struct {
    uint32_t rate_hz;
    uint32_t osr_code;
} rate_table[] = {{500, 6}, {1000, 5}, {2000, 4}, {4000, 3}};

static void cs(unsigned k, int active)
{
    if (k == 0) {
        gpio_set(GPIOA_BASE, 4, !active);
    } else {
        gpio_set(GPIOB_BASE, 0, !active);
    }
}

static uint8_t spi_byte(uint8_t out)
{
    while (!(SPI1_SR & SPI_SR_TXE)) {
    }
    SPI1_DR = out;
    while (!(SPI1_SR & SPI_SR_RXNE)) {
    }
    return SPI1_DR;
}

/* One full frame with converter k, always ADC_FRAME_WORDS words long (a
 * command and its register data fit inside it): words_out (16-bit commands or
 * data, left-justified in 24-bit words, zeros after them), words_in as 24-bit values. */
static void frame(unsigned k, const uint16_t *words_out, unsigned n_out, uint32_t *words_in)
{
    cs(k, 1);
    for (unsigned w = 0; w < ADC_FRAME_WORDS; w++) {
        uint16_t o = w < n_out ? words_out[w] : 0;
        uint32_t v = spi_byte((uint8_t)(o >> 8));
        v = (v << 8) | spi_byte((uint8_t)o);
        v = (v << 8) | spi_byte(0);
        words_in[w] = v;
    }
    while (SPI1_SR & SPI_SR_BSY) {
    }
    cs(k, 0);
}

static void write_reg(unsigned k, uint32_t addr, uint16_t value)
{
    uint16_t out[2] = {(uint16_t)CMD_WREG(addr, 1u), value};
    uint32_t in[ADC_FRAME_WORDS];
    frame(k, out, 2, in);
}

static uint16_t read_reg(unsigned k, uint32_t addr)
{
    uint16_t out[1] = {(uint16_t)CMD_RREG(addr, 1u)};
    uint32_t in[ADC_FRAME_WORDS];
    frame(k, out, 1, in);
    uint16_t nul[1] = {CMD_NULL};
    frame(k, nul, 1, in); /* the register arrives as the response word of the next frame */
    return (uint16_t)(in[0] >> 8);
}

static void delay_us(uint32_t us)
{
    for (volatile uint32_t i = 0; i < us * (CPU_HZ / 4000000u); i++) {
    }
}

static int32_t sign_extend24(uint32_t v) { return (int32_t)(v << 8) >> 8; }

/* The DRDY interrupt: one conversion of every channel. */
void EXTI1_IRQHandler(void)
{
    EXTI_PR = 1u << 1;
    if (!g_running) {
        return;
    }
    uint64_t t = clock_now_us(0);
    int32_t counts[ADC_COUNT_MAX * ADC_CHANNELS];
    uint32_t in[ADC_FRAME_WORDS];
    uint16_t nul[1] = {CMD_NULL};
    for (unsigned k = 0; k < g_adcs; k++) {
        frame(k, nul, 1, in);
        for (unsigned c = 0; c < ADC_CHANNELS; c++) {
            counts[k * ADC_CHANNELS + c] = sign_extend24(in[1 + c]);
        }
    }
    fw_sampler_push(g_sampler, counts, t);
}

static bool rate_supported(void *ctx, uint32_t rate_hz)
{
    (void)ctx;
    /* the link must carry the payload plus about 5 % framing */
    if ((uint64_t)rate_hz * g_channels * 3u * 105u / 100u > link_bytes_per_s()) {
        return false;
    }
    for (unsigned i = 0; i < sizeof rate_table / sizeof rate_table[0]; i++) {
        if (rate_table[i].rate_hz == rate_hz) {
            return true;
        }
    }
    return false;
}

static void pulse_sync(uint32_t low_us)
{
    gpio_set(GPIOA_BASE, 3, 0);
    delay_us(low_us);
    gpio_set(GPIOA_BASE, 3, 1);
}

static int start(void *ctx, uint32_t rate_hz)
{
    (void)ctx;
    uint32_t osr = 5;
    for (unsigned i = 0; i < sizeof rate_table / sizeof rate_table[0]; i++) {
        if (rate_table[i].rate_hz == rate_hz) {
            osr = rate_table[i].osr_code;
        }
    }
    nvic_disable(IRQ_EXTI1);
    for (unsigned k = 0; k < g_adcs; k++) {
        write_reg(k, REG_CLOCK, (uint16_t)(CLOCK_ALL_CHANNELS_HR | (osr << 2)));
    }
    /* a short SYNC pulse (< 2048 CLKIN periods = 250 us is a sync, not a reset)
     * restarts every converter's filter at the same CLKIN edge */
    pulse_sync(20);
    g_running = true;
    EXTI_PR = 1u << 1;
    nvic_enable(IRQ_EXTI1);
    return 0;
}

static void stop(void *ctx)
{
    (void)ctx;
    nvic_disable(IRQ_EXTI1);
    g_running = false;
}

uint16_t ads_id(unsigned k) { return k < ADC_COUNT_MAX ? g_id[k] : 0; }

int ads_init(fw_adc *ops, fw_sampler *sampler, uint16_t channels)
{
    g_sampler = sampler;
    g_channels = channels;
    g_adcs = (channels + ADC_CHANNELS - 1u) / ADC_CHANNELS;
    RCC_APB2ENR |= (1u << 12) | (1u << 14); /* SPI1, SYSCFG */
    gpio_af(GPIOA_BASE, 5, 5);
    gpio_af(GPIOA_BASE, 6, 5);
    gpio_af(GPIOA_BASE, 7, 5);
    gpio_mode(GPIOA_BASE, 4, 1);
    gpio_mode(GPIOB_BASE, 0, 1);
    gpio_mode(GPIOA_BASE, 3, 1);
    gpio_mode(GPIOA_BASE, 1, 0);
    GPIO_PUPDR(GPIOA_BASE) |= 1u << (2 * 1); /* DRDY pull-up */
    cs(0, 0);
    cs(1, 0);
    /* SPI mode 1 (CPOL 0, CPHA 1), master, 96 MHz / 8 = 12 MHz (the ADS131M08 takes up to 25 MHz) */
    SPI1_CR1 = (1u << 0) | (1u << 2) | (2u << 3) | (1u << 8) | (1u << 9) | (1u << 6);
    /* DRDY of ADC0 on EXTI1, falling edge */
    SYSCFG_EXTICR1 = (SYSCFG_EXTICR1 & ~(15u << 4)) | (0u << 4);
    EXTI_FTSR |= 1u << 1;
    EXTI_IMR |= 1u << 1;
    NVIC_IPR(IRQ_EXTI1) = 0x10; /* above the link's interrupt */
    /* hold SYNC/RESET low >= 2048 CLKIN periods: a full reset of both converters */
    pulse_sync(500);
    delay_us(1000);
    int rc = 0;
    for (unsigned k = 0; k < g_adcs; k++) {
        write_reg(k, REG_MODE, MODE_24BIT_NO_RESET_FLAG);
        write_reg(k, REG_GAIN1, GAIN_128_X4);
        write_reg(k, REG_GAIN2, GAIN_128_X4);
        g_id[k] = read_reg(k, REG_ID);
        if ((g_id[k] >> 8) != ID_ADS131M08 && rc == 0) {
            rc = -(int)(k + 1);
        }
    }
    ops->ctx = 0;
    ops->rate_supported = rate_supported;
    ops->start = start;
    ops->stop = stop;
    /* the rates this build really offers: the converter's, as far as the link carries them */
    static char supported[40];
    unsigned n = 0;
    for (unsigned i = 0; i < sizeof rate_table / sizeof rate_table[0]; i++) {
        if (!rate_supported(0, rate_table[i].rate_hz)) {
            continue;
        }
        char digits[6];
        unsigned d = 0;
        for (uint32_t v = rate_table[i].rate_hz; v; v /= 10u) {
            digits[d++] = (char)('0' + v % 10u);
        }
        if (n && n + 2 < sizeof supported) {
            supported[n++] = ',';
            supported[n++] = ' ';
        }
        while (d && n + 1 < sizeof supported) {
            supported[n++] = digits[--d];
        }
    }
    supported[n] = 0;
    ops->supported_text = supported;
    return rc;
}

unsigned ads_entropy(uint32_t *words, unsigned max_words)
{
    /* poll DRDY (the interrupt is not on yet) and keep whole conversion words:
     * at gain 128 their low bits are the bridges' and the converter's noise */
    unsigned n = 0;
    uint32_t in[ADC_FRAME_WORDS];
    uint16_t nul[1] = {CMD_NULL};
    for (unsigned round = 0; round < 8 && n < max_words; round++) {
        for (uint32_t wait = 0; (GPIO_IDR(GPIOA_BASE) & (1u << 1)) && wait < 100000u; wait++) {
        }
        for (unsigned k = 0; k < g_adcs && n < max_words; k++) {
            frame(k, nul, 1, in);
            for (unsigned c = 0; c < ADC_CHANNELS && n < max_words; c++) {
                words[n++] = in[1 + c] ^ (TIM2_CNT << 24);
            }
        }
    }
    return n;
}
