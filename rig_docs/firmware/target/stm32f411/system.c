/* Clocks, watchdog, LED, unique id and the ring lock of the reference board. */
#include "board.h"
#include "port.h"
#include "stm32f411.h"

void board_init(void)
{
    /* 25 MHz HSE -> PLL: /25 *192 = 192 MHz VCO; /2 = 96 MHz system clock, /4 = 48 MHz USB */
    RCC_CR |= RCC_CR_HSEON;
    while (!(RCC_CR & RCC_CR_HSERDY)) {
    }
    RCC_APB1ENR |= 1u << 28;      /* PWREN */
    PWR_CR |= 3u << 14;           /* voltage scale 1 (up to 100 MHz) */
    FLASH_ACR = 3u | (1u << 8) | (1u << 9) | (1u << 10); /* 3 wait states, prefetch, I and D caches */
    RCC_PLLCFGR = 25u | (192u << 6) | (0u << 16) | (1u << 22) | (4u << 24); /* M, N, P=2, HSE, Q */
    RCC_CFGR = (0u << 4) | (4u << 10) | (0u << 13); /* AHB /1, APB1 /2 (48 MHz), APB2 /1 (96 MHz) */
    RCC_CR |= RCC_CR_PLLON;
    while (!(RCC_CR & RCC_CR_PLLRDY)) {
    }
    RCC_CFGR = (RCC_CFGR & ~3u) | 2u; /* system clock from the PLL */
    while (((RCC_CFGR >> 2) & 3u) != 2u) {
    }
    RCC_AHB1ENR |= 7u;             /* GPIOA, GPIOB, GPIOC */
    gpio_mode(GPIOC_BASE, 13, 1);  /* LED */
    board_led(0);
    /* independent watchdog: LSI 32 kHz / 32 = 1 kHz, reload 250: a stuck loop resets in 250 ms */
    IWDG_KR = 0x5555u;
    IWDG_PR = 3u;
    IWDG_RLR = 250u;
    IWDG_KR = 0xAAAAu;
    IWDG_KR = 0xCCCCu;
}

void board_watchdog_kick(void) { IWDG_KR = 0xAAAAu; }
void board_led(int on) { gpio_set(GPIOC_BASE, 13, !on); }
uint32_t board_unique_id_word(unsigned i) { return UID_WORD(i); }

/* The data-ready interrupt and the main loop share the sample ring: the main
 * loop masks interrupts for the few microseconds it needs (one frame copy). */
static uint32_t saved_primask;
static unsigned lock_depth;

void fw_port_lock(void)
{
    uint32_t p = irq_save();
    if (lock_depth++ == 0) {
        saved_primask = p;
    }
}

void fw_port_unlock(void)
{
    if (lock_depth && --lock_depth == 0) {
        irq_restore(saved_primask);
    }
}
