/* The few STM32F411 registers the reference firmware uses (RM0383), written out
 * so that no vendor header is needed.  Addresses and bits: RM0383 rev 3. */
#ifndef STM32F411_H
#define STM32F411_H
#include <stdint.h>

#define REG(addr) (*(volatile uint32_t *)(addr))

/* RCC */
#define RCC_BASE 0x40023800u
#define RCC_CR REG(RCC_BASE + 0x00)
#define RCC_PLLCFGR REG(RCC_BASE + 0x04)
#define RCC_CFGR REG(RCC_BASE + 0x08)
#define RCC_AHB1ENR REG(RCC_BASE + 0x30)
#define RCC_APB1ENR REG(RCC_BASE + 0x40)
#define RCC_APB2ENR REG(RCC_BASE + 0x44)
#define RCC_CSR REG(RCC_BASE + 0x74)
#define RCC_CR_HSEON (1u << 16)
#define RCC_CR_HSERDY (1u << 17)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
#define RCC_CSR_LSION (1u << 0)
#define RCC_CSR_LSIRDY (1u << 1)

/* PWR, FLASH */
#define PWR_CR REG(0x40007000u)
#define FLASH_ACR REG(0x40023C00u)

/* GPIO */
#define GPIOA_BASE 0x40020000u
#define GPIOB_BASE 0x40020400u
#define GPIOC_BASE 0x40020800u
#define GPIO_MODER(b) REG((b) + 0x00)
#define GPIO_OTYPER(b) REG((b) + 0x04)
#define GPIO_OSPEEDR(b) REG((b) + 0x08)
#define GPIO_PUPDR(b) REG((b) + 0x0C)
#define GPIO_IDR(b) REG((b) + 0x10)
#define GPIO_BSRR(b) REG((b) + 0x18)
#define GPIO_AFRL(b) REG((b) + 0x20)
#define GPIO_AFRH(b) REG((b) + 0x24)

/* SPI1 */
#define SPI1_BASE 0x40013000u
#define SPI1_CR1 REG(SPI1_BASE + 0x00)
#define SPI1_SR REG(SPI1_BASE + 0x08)
#define SPI1_DR (*(volatile uint8_t *)(SPI1_BASE + 0x0C))
#define SPI_SR_RXNE (1u << 0)
#define SPI_SR_TXE (1u << 1)
#define SPI_SR_BSY (1u << 7)

/* USART1 */
#define USART1_BASE 0x40011000u
#define USART1_SR REG(USART1_BASE + 0x00)
#define USART1_DR REG(USART1_BASE + 0x04)
#define USART1_BRR REG(USART1_BASE + 0x08)
#define USART1_CR1 REG(USART1_BASE + 0x0C)
#define USART_SR_ORE (1u << 3)
#define USART_SR_RXNE (1u << 5)
#define USART_SR_TXE (1u << 7)
#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_CR1_RXNEIE (1u << 5)
#define USART_CR1_TXEIE (1u << 7)
#define USART_CR1_UE (1u << 13)

/* TIM2 (32 bits) */
#define TIM2_BASE 0x40000000u
#define TIM2_CR1 REG(TIM2_BASE + 0x00)
#define TIM2_EGR REG(TIM2_BASE + 0x14)
#define TIM2_CNT REG(TIM2_BASE + 0x24)
#define TIM2_PSC REG(TIM2_BASE + 0x28)
#define TIM2_ARR REG(TIM2_BASE + 0x2C)

/* SYSCFG, EXTI */
#define SYSCFG_EXTICR1 REG(0x40013800u + 0x08)
#define EXTI_BASE 0x40013C00u
#define EXTI_IMR REG(EXTI_BASE + 0x00)
#define EXTI_FTSR REG(EXTI_BASE + 0x0C)
#define EXTI_PR REG(EXTI_BASE + 0x14)

/* IWDG */
#define IWDG_KR REG(0x40003000u + 0x00)
#define IWDG_PR REG(0x40003000u + 0x04)
#define IWDG_RLR REG(0x40003000u + 0x08)
#define IWDG_SR REG(0x40003000u + 0x0C)

/* Cortex-M4 */
#define NVIC_ISER(n) REG(0xE000E100u + 4u * (n))
#define NVIC_ICER(n) REG(0xE000E180u + 4u * (n))
#define NVIC_IPR(irq) (*(volatile uint8_t *)(0xE000E400u + (irq)))
#define SCB_CPACR REG(0xE000ED88u)

/* IRQ numbers (RM0383 table 37) */
#define IRQ_EXTI1 7
#define IRQ_USART1 37

/* 96-bit unique device id */
#define UID_WORD(i) REG(0x1FFF7A10u + 4u * (i))

#define CPU_HZ 96000000u

static inline uint32_t irq_save(void)
{
    uint32_t primask;
    __asm volatile("mrs %0, primask\n cpsid i" : "=r"(primask)::"memory");
    return primask;
}
static inline void irq_restore(uint32_t primask) { __asm volatile("msr primask, %0" ::"r"(primask) : "memory"); }
static inline void nvic_enable(unsigned irq) { NVIC_ISER(irq / 32u) = 1u << (irq % 32u); }
static inline void nvic_disable(unsigned irq) { NVIC_ICER(irq / 32u) = 1u << (irq % 32u); }

/* GPIO helpers: mode 0 input, 1 output, 2 alternate function */
static inline void gpio_mode(uint32_t base, unsigned pin, unsigned mode)
{
    GPIO_MODER(base) = (GPIO_MODER(base) & ~(3u << (2 * pin))) | (mode << (2 * pin));
    GPIO_OSPEEDR(base) |= 3u << (2 * pin); /* very high speed */
}
static inline void gpio_af(uint32_t base, unsigned pin, unsigned af)
{
    gpio_mode(base, pin, 2);
    if (pin < 8) {
        GPIO_AFRL(base) = (GPIO_AFRL(base) & ~(15u << (4 * pin))) | (af << (4 * pin));
    } else {
        GPIO_AFRH(base) = (GPIO_AFRH(base) & ~(15u << (4 * (pin - 8)))) | (af << (4 * (pin - 8)));
    }
}
static inline void gpio_set(uint32_t base, unsigned pin, int high)
{
    GPIO_BSRR(base) = high ? (1u << pin) : (1u << (pin + 16));
}

#endif
