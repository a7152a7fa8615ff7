/* Device time: TIM2 counts microseconds (96 MHz timer clock / 96), 32 bits,
 * extended to 64 bits (clock.h).  The status frame reads it every second, far
 * more often than the 71.6-minute wrap. */
#include "board.h"
#include "clock.h"
#include "port.h"
#include "stm32f411.h"

static fw_clock_ext ext;

void clock_init(void)
{
    RCC_APB1ENR |= 1u << 0; /* TIM2 */
    TIM2_PSC = 96u - 1u;    /* APB1 timers run at 2 x 48 MHz */
    TIM2_ARR = 0xFFFFFFFFu;
    TIM2_EGR = 1u;          /* load the prescaler */
    TIM2_CNT = 0;
    TIM2_CR1 = 1u;
}

uint64_t clock_now_us(void *ctx)
{
    (void)ctx;
    fw_port_lock(); /* the data-ready interrupt reads the clock too */
    uint64_t t = fw_clock_extend32(&ext, TIM2_CNT);
    fw_port_unlock();
    return t;
}
