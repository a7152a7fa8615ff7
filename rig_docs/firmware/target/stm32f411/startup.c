/* Vector table and reset handler of the STM32F411 (RM0383 table 37): copy
 * .data from flash, clear .bss, enable the FPU, run main(). */
#include <stdint.h>

#include "stm32f411.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);

void Reset_Handler(void);
void Default_Handler(void);
/* The drivers define the interrupts they use; the others run Default_Handler. */
void EXTI1_IRQHandler(void) __attribute__((weak, alias("Default_Handler")));
void USART1_IRQHandler(void) __attribute__((weak, alias("Default_Handler")));
void OTG_FS_IRQHandler(void) __attribute__((weak, alias("Default_Handler")));

void Default_Handler(void)
{
    for (;;) {
        /* an unexpected interrupt or fault: the watchdog resets the box (new boot id) */
    }
}

void Reset_Handler(void)
{
    uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0;
    }
    SCB_CPACR |= 0xFu << 20; /* CP10, CP11: the FPU (the code is built for hard float) */
    __asm volatile("dsb\n isb");
    main();
    for (;;) {
    }
}

#define VECTORS (16 + 86)
typedef void (*handler)(void);

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init" /* the named IRQs replace the default entries */
__attribute__((section(".isr_vector"), used)) static const handler vector_table[VECTORS] = {
    [0] = (handler)(uintptr_t)&_estack,
    [1] = Reset_Handler,
    [2 ... VECTORS - 1] = Default_Handler,
    [16 + IRQ_EXTI1] = EXTI1_IRQHandler,
    [16 + IRQ_USART1] = USART1_IRQHandler,
    [16 + 67] = OTG_FS_IRQHandler,
};
#pragma GCC diagnostic pop
