/* The link over USART1 (PA9 TX, PA10 RX) and any 3.3 V USB-serial adapter,
 * 8N1 at 921 600 baud (the rate steplab's serial reader opens ports with):
 * 92 kB/s, enough for 12 channels at 1 kHz (40 kB/s).  Interrupt-driven rings. */
#include "board.h"
#include "stm32f411.h"

#define TX_RING 8192u
#define RX_RING 512u
#define BAUD 921600u

static volatile uint8_t tx_ring[TX_RING];
static volatile uint32_t tx_head, tx_tail;
static volatile uint8_t rx_ring[RX_RING];
static volatile uint32_t rx_head, rx_tail;

void USART1_IRQHandler(void)
{
    uint32_t sr = USART1_SR;
    if (sr & (USART_SR_RXNE | USART_SR_ORE)) {
        uint8_t b = (uint8_t)USART1_DR; /* reading DR also clears an overrun */
        uint32_t next = (rx_head + 1u) % RX_RING;
        if (next != rx_tail) {
            rx_ring[rx_head] = b;
            rx_head = next;
        } /* else: a command the main loop had no time for is lost; the host resends it */
    }
    if ((sr & USART_SR_TXE) && (USART1_CR1 & USART_CR1_TXEIE)) {
        if (tx_tail != tx_head) {
            USART1_DR = tx_ring[tx_tail];
            tx_tail = (tx_tail + 1u) % TX_RING;
        } else {
            USART1_CR1 &= ~USART_CR1_TXEIE;
        }
    }
}

static size_t uart_write(void *ctx, const uint8_t *data, size_t n)
{
    (void)ctx;
    size_t taken = 0;
    while (taken < n) {
        uint32_t next = (tx_head + 1u) % TX_RING;
        if (next == tx_tail) {
            break;
        }
        tx_ring[tx_head] = data[taken++];
        tx_head = next;
    }
    if (taken) {
        USART1_CR1 |= USART_CR1_TXEIE;
    }
    return taken;
}

static size_t uart_read(void *ctx, uint8_t *buf, size_t cap)
{
    (void)ctx;
    size_t n = 0;
    while (n < cap && rx_tail != rx_head) {
        buf[n++] = rx_ring[rx_tail];
        rx_tail = (rx_tail + 1u) % RX_RING;
    }
    return n;
}

uint32_t link_bytes_per_s(void) { return BAUD / 10u; }

void link_init(fw_link *link)
{
    RCC_APB2ENR |= 1u << 4; /* USART1 */
    gpio_af(GPIOA_BASE, 9, 7);
    gpio_af(GPIOA_BASE, 10, 7);
    /* 96 MHz / (16 x 921600) = 6.51: mantissa 6, fraction 8/16 -> 923 077 baud (+0.16 %) */
    USART1_BRR = (6u << 4) | 8u;
    USART1_CR1 = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE;
    NVIC_IPR(IRQ_USART1) = 0x20;
    nvic_enable(IRQ_USART1);
    link->ctx = 0;
    link->write = uart_write;
    link->read = uart_read;
}
