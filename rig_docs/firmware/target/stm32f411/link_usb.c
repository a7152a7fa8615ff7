/* The link over native USB: a CDC-ACM device on the STM32F411's OTG_FS core
 * (PA11 D-, PA12 D+, 48 MHz from PLLQ), register level (RM0383 chapter 22),
 * so no vendor library is needed.  The rig appears as /dev/ttyACM0 and as
 * /dev/serial/by-id/usb-steplab_smart-step_<serial>-if00.  USB full speed
 * carries about 1 MB/s: every supported rate up to 16 channels at 4 kHz.
 *
 * All FIFO and endpoint work happens in the OTG_FS interrupt; the main loop
 * only fills and drains two rings and pends that interrupt.  Bulk IN: one
 * packet of up to 64 bytes per transfer (a zero-length packet ends a burst
 * that stopped on a full packet).  Bulk OUT is re-armed only while the
 * receive ring has room for a packet (USB flow control: the host waits).
 *
 * Status: written from the reference manual and compiled; not yet run on a
 * board here (rig_docs/firmware.md).  The UART link is the fallback. */
#include <stdbool.h>
#include <string.h>

#include "board.h"
#include "rig_table.h"
#include "stm32f411.h"

#define OTG 0x50000000u
#define GAHBCFG REG(OTG + 0x008)
#define GUSBCFG REG(OTG + 0x00C)
#define GRSTCTL REG(OTG + 0x010)
#define GINTSTS REG(OTG + 0x014)
#define GINTMSK REG(OTG + 0x018)
#define GRXSTSP REG(OTG + 0x020)
#define GRXFSIZ REG(OTG + 0x024)
#define DIEPTXF0 REG(OTG + 0x028)
#define GCCFG REG(OTG + 0x038)
#define DIEPTXF(n) REG(OTG + 0x104 + 4u * ((n) - 1u))
#define DCFG REG(OTG + 0x800)
#define DCTL REG(OTG + 0x804)
#define DIEPMSK REG(OTG + 0x810)
#define DOEPMSK REG(OTG + 0x814)
#define DAINT REG(OTG + 0x818)
#define DAINTMSK REG(OTG + 0x81C)
#define DIEPCTL(n) REG(OTG + 0x900 + 0x20u * (n))
#define DIEPINT(n) REG(OTG + 0x908 + 0x20u * (n))
#define DIEPTSIZ(n) REG(OTG + 0x910 + 0x20u * (n))
#define DOEPCTL(n) REG(OTG + 0xB00 + 0x20u * (n))
#define DOEPINT(n) REG(OTG + 0xB08 + 0x20u * (n))
#define DOEPTSIZ(n) REG(OTG + 0xB10 + 0x20u * (n))
#define PCGCCTL REG(OTG + 0xE00)
#define FIFO(n) REG(OTG + 0x1000 + 0x1000u * (n))

#define RCC_AHB2ENR REG(0x40023800u + 0x34)
#define NVIC_ISPR(n) REG(0xE000E200u + 4u * (n))
#define IRQ_OTG_FS 67u

#define GINT_RXFLVL (1u << 4)
#define GINT_USBRST (1u << 12)
#define GINT_ENUMDNE (1u << 13)
#define GINT_IEPINT (1u << 18)
#define GINT_OEPINT (1u << 19)
#define EP_EPENA (1u << 31)
#define EP_EPDIS (1u << 30)
#define EP_SD0PID (1u << 28)
#define EP_SNAK (1u << 27)
#define EP_CNAK (1u << 26)
#define EP_STALL (1u << 21)
#define EP_USBAEP (1u << 15)
#define XFRC (1u << 0)
#define STUP (1u << 3)

#define EP_DATA_IN 1u  /* 0x81 bulk IN */
#define EP_DATA_OUT 2u /* 0x02 bulk OUT */
#define EP_NOTIFY 3u   /* 0x83 interrupt IN (never sent: no serial state changes) */
#define PACKET 64u

/* -- descriptors (USB 2.0 ch. 9; CDC 1.2 PSTN ACM) -------------------------- */
static const uint8_t device_desc[18] = {
    18, 1, 0x00, 0x02, 0x02, 0x00, 0x00, 64,
    0x09, 0x12, 0x01, 0x00, /* VID 0x1209 (pid.codes), PID 0x0001: a test id, apply for your own */
    0x00, 0x01, 1, 2, 3, 1,
};
static const uint8_t config_desc[67] = {
    9, 2, 67, 0, 2, 1, 0, 0xC0, 50,                 /* self-powered, 100 mA */
    9, 4, 0, 0, 1, 0x02, 0x02, 0x00, 0,             /* interface 0: CDC ACM control */
    5, 0x24, 0x00, 0x10, 0x01,                      /* header, CDC 1.10 */
    5, 0x24, 0x01, 0x00, 0x01,                      /* call management */
    4, 0x24, 0x02, 0x02,                            /* ACM: line coding and state */
    5, 0x24, 0x06, 0x00, 0x01,                      /* union: 0 controls 1 */
    7, 5, 0x80 | EP_NOTIFY, 0x03, 8, 0, 16,         /* notification IN, 8 bytes, 16 ms */
    9, 4, 1, 0, 2, 0x0A, 0x00, 0x00, 0,             /* interface 1: CDC data */
    7, 5, EP_DATA_OUT, 0x02, PACKET, 0, 0,          /* bulk OUT */
    7, 5, 0x80 | EP_DATA_IN, 0x02, PACKET, 0, 0,    /* bulk IN */
};
static const uint8_t lang_desc[4] = {4, 3, 0x09, 0x04};
static uint8_t string_buf[2 + 2 * 40];

static const uint8_t *string_desc(unsigned index, unsigned *len)
{
    const char *s = index == 1 ? "steplab" : index == 2 ? "smart-step" : fw_rigs[0].serial;
    unsigned n = 0;
    while (s[n] && n < 40) {
        string_buf[2 + 2 * n] = (uint8_t)s[n];
        string_buf[3 + 2 * n] = 0;
        n++;
    }
    string_buf[0] = (uint8_t)(2 + 2 * n);
    string_buf[1] = 3;
    *len = string_buf[0];
    return string_buf;
}

/* -- rings between the main loop and the interrupt ----------------------------- */
#define TX_RING 8192u
#define RX_RING 1024u
static volatile uint8_t tx_ring[TX_RING];
static volatile uint32_t tx_head, tx_tail;
static volatile uint8_t rx_ring[RX_RING];
static volatile uint32_t rx_head, rx_tail;

static volatile bool configured, in_busy, last_was_full, out_armed;
static uint8_t line_coding[7] = {0x00, 0x10, 0x0E, 0x00, 0, 0, 8}; /* 921600 8N1 (ignored on USB) */

/* control transfers */
static uint8_t setup[8];
static const uint8_t *ep0_data;
static unsigned ep0_left;
static bool ep0_zlp, ep0_out_line_coding;

static void pend_irq(void) { NVIC_ISPR(IRQ_OTG_FS / 32u) = 1u << (IRQ_OTG_FS % 32u); }

static void fifo_write(unsigned ep, const uint8_t *src, unsigned n)
{
    for (unsigned i = 0; i < n; i += 4) {
        uint32_t w = 0;
        for (unsigned k = 0; k < 4 && i + k < n; k++) {
            w |= (uint32_t)src[i + k] << (8 * k);
        }
        FIFO(ep) = w;
    }
}

static void ep0_arm_setup(void)
{
    DOEPTSIZ(0) = (3u << 29) | (1u << 19) | 64u;
    DOEPCTL(0) |= EP_EPENA | EP_CNAK;
}

static void ep0_send_chunk(void)
{
    unsigned n = ep0_left < 64u ? ep0_left : 64u;
    DIEPTSIZ(0) = (1u << 19) | n;
    DIEPCTL(0) |= EP_EPENA | EP_CNAK;
    fifo_write(0, ep0_data, n);
    ep0_data += n;
    ep0_left -= n;
}

/* Start the IN data stage (or a zero-length status stage when n == 0). */
static void ep0_send(const uint8_t *data, unsigned n, unsigned w_length)
{
    if (n > w_length) {
        n = w_length;
    }
    ep0_data = data;
    ep0_left = n;
    ep0_zlp = n < w_length && n % 64u == 0 && n > 0; /* a short transfer ending on a full packet */
    ep0_send_chunk();
}

static void ep0_stall(void)
{
    DIEPCTL(0) |= EP_STALL;
    DOEPCTL(0) |= EP_STALL;
    ep0_arm_setup();
}

static void activate_data_endpoints(void)
{
    DIEPCTL(EP_DATA_IN) = PACKET | (2u << 18) | (1u << 22) | EP_USBAEP | EP_SD0PID | EP_SNAK;
    DIEPCTL(EP_NOTIFY) = 8u | (3u << 18) | (2u << 22) | EP_USBAEP | EP_SD0PID | EP_SNAK;
    DOEPCTL(EP_DATA_OUT) = PACKET | (2u << 18) | EP_USBAEP | EP_SD0PID;
    DAINTMSK |= (1u << EP_DATA_IN) | (1u << (16 + EP_DATA_OUT));
    in_busy = false;
    out_armed = false;
    configured = true;
}

static void handle_setup(void)
{
    uint8_t type = setup[0], req = setup[1];
    unsigned value = (unsigned)setup[2] | ((unsigned)setup[3] << 8);
    unsigned length = (unsigned)setup[6] | ((unsigned)setup[7] << 8);
    static uint8_t two[2];
    if (type == 0x80 && req == 6) { /* GET_DESCRIPTOR */
        unsigned kind = value >> 8, index = value & 0xFFu, n;
        if (kind == 1) {
            ep0_send(device_desc, sizeof device_desc, length);
        } else if (kind == 2) {
            ep0_send(config_desc, sizeof config_desc, length);
        } else if (kind == 3 && index == 0) {
            ep0_send(lang_desc, sizeof lang_desc, length);
        } else if (kind == 3 && index <= 3) {
            const uint8_t *s = string_desc(index, &n);
            ep0_send(s, n, length);
        } else {
            ep0_stall(); /* device qualifier and others: a full-speed-only device */
        }
    } else if (type == 0x00 && req == 5) { /* SET_ADDRESS: takes effect before the status stage on this core */
        DCFG = (DCFG & ~(0x7Fu << 4)) | ((value & 0x7Fu) << 4);
        ep0_send(0, 0, 0);
    } else if (type == 0x00 && req == 9) { /* SET_CONFIGURATION */
        if (value == 1) {
            activate_data_endpoints();
        } else {
            configured = false;
        }
        ep0_send(0, 0, 0);
        pend_irq();
    } else if (type == 0x80 && req == 8) { /* GET_CONFIGURATION */
        two[0] = configured ? 1 : 0;
        ep0_send(two, 1, length);
    } else if ((type & 0x80) && req == 0) { /* GET_STATUS: self-powered device, interfaces, endpoints */
        two[0] = (type & 0x1F) == 0 ? 1 : 0;
        two[1] = 0;
        ep0_send(two, 2, length);
    } else if (type == 0x21 && req == 0x20) { /* SET_LINE_CODING: 7 bytes follow */
        ep0_out_line_coding = true;
        DOEPTSIZ(0) = (3u << 29) | (1u << 19) | 7u;
        DOEPCTL(0) |= EP_EPENA | EP_CNAK;
    } else if (type == 0xA1 && req == 0x21) { /* GET_LINE_CODING */
        ep0_send(line_coding, sizeof line_coding, length);
    } else if (type == 0x21 && (req == 0x22 || req == 0x23)) { /* SET_CONTROL_LINE_STATE, SEND_BREAK */
        ep0_send(0, 0, 0);
    } else if (type == 0x00 && (req == 1 || req == 3)) { /* CLEAR/SET_FEATURE (remote wake-up): accept */
        ep0_send(0, 0, 0);
    } else if (type == 0x02 && req == 1) { /* CLEAR_FEATURE(ENDPOINT_HALT) */
        ep0_send(0, 0, 0);
    } else {
        ep0_stall();
    }
}

static void start_in(void)
{
    if (!configured || in_busy) {
        return;
    }
    uint32_t head = tx_head, tail = tx_tail;
    unsigned avail = (head + TX_RING - tail) % TX_RING;
    if (avail == 0 && !last_was_full) {
        return;
    }
    uint8_t pkt[PACKET];
    unsigned n = avail < PACKET ? avail : PACKET;
    for (unsigned i = 0; i < n; i++) {
        pkt[i] = tx_ring[(tail + i) % TX_RING];
    }
    tx_tail = (tail + n) % TX_RING;
    last_was_full = n == PACKET; /* a zero-length packet follows a full one when the ring runs dry */
    DIEPTSIZ(EP_DATA_IN) = (1u << 19) | n;
    DIEPCTL(EP_DATA_IN) |= EP_EPENA | EP_CNAK;
    fifo_write(EP_DATA_IN, pkt, n);
    in_busy = true;
}

static void arm_out(void)
{
    unsigned used = (rx_head + RX_RING - rx_tail) % RX_RING;
    if (!configured || out_armed || RX_RING - 1u - used < PACKET) {
        return;
    }
    DOEPTSIZ(EP_DATA_OUT) = (1u << 19) | PACKET;
    DOEPCTL(EP_DATA_OUT) |= EP_EPENA | EP_CNAK;
    out_armed = true;
}

static void bus_reset(void)
{
    configured = false;
    in_busy = false;
    out_armed = false;
    last_was_full = false;
    DCFG &= ~(0x7Fu << 4);
    for (unsigned ep = 0; ep < 4; ep++) {
        DIEPINT(ep) = 0xFFFFu;
        DOEPINT(ep) = 0xFFFFu;
        DOEPCTL(ep) |= EP_SNAK;
    }
    DAINTMSK = (1u << 0) | (1u << 16);
    GRSTCTL = (0x10u << 6) | (1u << 5) | (1u << 4); /* flush every TX FIFO and the RX FIFO */
    while (GRSTCTL & ((1u << 5) | (1u << 4))) {
    }
    ep0_arm_setup();
}

void OTG_FS_IRQHandler(void)
{
    uint32_t sts = GINTSTS & GINTMSK;
    if (sts & GINT_USBRST) {
        GINTSTS = GINT_USBRST;
        bus_reset();
    }
    if (sts & GINT_ENUMDNE) {
        GINTSTS = GINT_ENUMDNE;
        DIEPCTL(0) &= ~3u; /* EP0 max packet 64 */
        DCTL |= 1u << 8;   /* clear global IN NAK */
        ep0_arm_setup();
    }
    while (GINTSTS & GINT_RXFLVL) {
        uint32_t st = GRXSTSP;
        unsigned ep = st & 15u, count = (st >> 4) & 0x7FFu, kind = (st >> 17) & 15u;
        uint8_t buf[PACKET];
        for (unsigned i = 0; i < count; i += 4) {
            uint32_t w = FIFO(0);
            for (unsigned k = 0; k < 4 && i + k < count && i + k < PACKET; k++) {
                buf[i + k] = (uint8_t)(w >> (8 * k));
            }
        }
        if (count > PACKET) {
            count = PACKET;
        }
        if (kind == 6 && count == 8) { /* SETUP data */
            memcpy(setup, buf, 8);
        } else if (kind == 2 && ep == 0 && ep0_out_line_coding && count == 7) {
            memcpy(line_coding, buf, 7);
        } else if (kind == 2 && ep == EP_DATA_OUT) {
            for (unsigned i = 0; i < count; i++) {
                uint32_t next = (rx_head + 1u) % RX_RING;
                if (next == rx_tail) {
                    break; /* cannot happen: OUT is armed only with a packet of room */
                }
                rx_ring[rx_head] = buf[i];
                rx_head = next;
            }
        }
    }
    if (sts & GINT_OEPINT) {
        uint32_t daint = DAINT >> 16;
        if (daint & 1u) {
            uint32_t f = DOEPINT(0);
            DOEPINT(0) = f;
            if (f & STUP) {
                handle_setup();
            } else if ((f & XFRC) && ep0_out_line_coding) {
                ep0_out_line_coding = false;
                ep0_send(0, 0, 0); /* status stage of SET_LINE_CODING */
            } else if (f & XFRC) {
                ep0_arm_setup();
            }
        }
        if (daint & (1u << EP_DATA_OUT)) {
            uint32_t f = DOEPINT(EP_DATA_OUT);
            DOEPINT(EP_DATA_OUT) = f;
            if (f & XFRC) {
                out_armed = false;
            }
        }
    }
    if (sts & GINT_IEPINT) {
        uint32_t daint = DAINT & 0xFFFFu;
        if (daint & 1u) {
            uint32_t f = DIEPINT(0);
            DIEPINT(0) = f;
            if (f & XFRC) {
                if (ep0_left) {
                    ep0_send_chunk();
                } else if (ep0_zlp) {
                    ep0_zlp = false;
                    DIEPTSIZ(0) = 1u << 19;
                    DIEPCTL(0) |= EP_EPENA | EP_CNAK;
                } else {
                    ep0_arm_setup(); /* the host's OUT status stage, or the next SETUP */
                }
            }
        }
        if (daint & (1u << EP_DATA_IN)) {
            uint32_t f = DIEPINT(EP_DATA_IN);
            DIEPINT(EP_DATA_IN) = f;
            if (f & XFRC) {
                in_busy = false;
            }
        }
    }
    start_in();
    arm_out();
}

static size_t usb_write(void *ctx, const uint8_t *data, size_t n)
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
        pend_irq();
    }
    return taken;
}

static size_t usb_read(void *ctx, uint8_t *buf, size_t cap)
{
    (void)ctx;
    size_t n = 0;
    while (n < cap && rx_tail != rx_head) {
        buf[n++] = rx_ring[rx_tail];
        rx_tail = (rx_tail + 1u) % RX_RING;
    }
    if (n) {
        pend_irq(); /* room again: the interrupt re-arms bulk OUT */
    }
    return n;
}

uint32_t link_bytes_per_s(void) { return 1000000u; }

void link_init(fw_link *link)
{
    RCC_AHB2ENR |= 1u << 7; /* OTG_FS */
    gpio_af(GPIOA_BASE, 11, 10);
    gpio_af(GPIOA_BASE, 12, 10);
    GUSBCFG = (GUSBCFG & ~(15u << 10)) | (6u << 10) | (1u << 30) | (1u << 6); /* TRDT 6 (AHB >= 32 MHz), device mode */
    for (volatile uint32_t i = 0; i < 600000u; i++) {
        /* >= 25 ms (RM0383: after forcing device mode), well inside the 250 ms watchdog */
    }
    while (!(GRSTCTL & (1u << 31))) {
    }
    GRSTCTL = 1u; /* core soft reset */
    while (GRSTCTL & 1u) {
    }
    GCCFG = (1u << 16) | (1u << 21); /* transceiver on, no VBUS sensing (self-powered board) */
    PCGCCTL = 0;
    DCFG = 3u;                       /* full speed */
    GRXFSIZ = 128u;                  /* FIFO RAM in words: RX 128, EP0 TX 16, EP1 TX 128, EP3 TX 16 */
    DIEPTXF0 = (16u << 16) | 128u;
    DIEPTXF(1) = (128u << 16) | 144u;
    DIEPTXF(2) = (16u << 16) | 272u;
    DIEPTXF(3) = (16u << 16) | 288u;
    DIEPMSK = XFRC;
    DOEPMSK = XFRC | STUP;
    GINTSTS = 0xFFFFFFFFu;
    GINTMSK = GINT_RXFLVL | GINT_USBRST | GINT_ENUMDNE | GINT_IEPINT | GINT_OEPINT;
    GAHBCFG = 1u;                    /* global interrupt enable */
    NVIC_IPR(IRQ_OTG_FS) = 0x20;     /* below the converter's data-ready */
    nvic_enable(IRQ_OTG_FS);
    DCTL &= ~(1u << 1);              /* soft connect: the host sees the device */
    link->ctx = 0;
    link->write = usb_write;
    link->read = usb_read;
}
