/* steplab-fw-host: the reference firmware's logic on a PC, serving the wire
 * protocol on a pseudo-terminal from synthetic bridge signals, so that
 * `steplab record --device /dev/pts/N` reads the real firmware code.
 *
 *   steplab-fw-host --pty [--seconds S] [--channels 12|16] [--rate HZ]
 *                   [--boot-id N] [--reset-after S] [--clip-every N]
 *
 * The first line on stdout is "port: /dev/pts/N"; "event: reset" follows a
 * reboot (--reset-after S, or SIGUSR1 at any time: a power cycle of the box).  Bad options: one line on stderr, exit status 2. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "device.h"
#include "port.h"
#include "rig_table.h"
#include "synthetic_adc.h"

static volatile sig_atomic_t stop_requested, reset_requested;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }
static void on_usr1(int sig) { (void)sig; reset_requested = 1; }

static uint64_t host_now_us(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

typedef struct {
    int master;
} pty_link;

static size_t pty_write(void *ctx, const uint8_t *data, size_t n)
{
    pty_link *p = ctx;
    ssize_t r = write(p->master, data, n);
    return r > 0 ? (size_t)r : 0; /* EAGAIN: the host is not reading; the ring holds the samples */
}

static size_t pty_read(void *ctx, uint8_t *buf, size_t cap)
{
    pty_link *p = ctx;
    ssize_t r = read(p->master, buf, cap);
    return r > 0 ? (size_t)r : 0;
}

/* A fresh random boot id (getrandom, else /dev/urandom), mixed so that 0 cannot come out. */
static int random_boot_id(uint32_t *out)
{
    uint32_t words[2] = {0, 0};
    ssize_t got = getrandom(words, sizeof words, 0);
    if (got != (ssize_t)sizeof words) {
        FILE *f = fopen("/dev/urandom", "rb");
        if (!f || fread(words, sizeof words, 1, f) != 1) {
            if (f) fclose(f);
            return -1;
        }
        fclose(f);
    }
    *out = fw_boot_id_mix(words, 2);
    return 0;
}

static int fail(const char *msg, const char *arg)
{
    fprintf(stderr, "steplab-fw-host: %s%s%s\n", msg, arg ? " " : "", arg ? arg : "");
    return 2;
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, double *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !(v > 0) || v > 1e7) return -1;
    *out = v;
    return 0;
}

static const char usage[] =
    "usage: steplab-fw-host --pty [--seconds S] [--channels 12|16] [--rate 500|1000|2000|4000]\n"
    "                       [--boot-id N] [--reset-after S] [--clip-every N]\n"
    "Serves the steplab wire protocol from the reference firmware's logic on a pseudo-terminal\n"
    "with synthetic bridge signals; prints 'port: /dev/pts/N' first.  SIGUSR1 reboots the device\n"
    "(new boot id; sequence, sample index and device time restart at 0).\n";

int main(int argc, char **argv)
{
    int want_pty = 0;
    double seconds = 0, reset_after = 0;
    uint64_t channels = 12, rate = 0, boot_id = 0, clip_every = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(a, "--pty") == 0) {
            want_pty = 1;
        } else if (strcmp(a, "--seconds") == 0) {
            if (parse_seconds(v, &seconds)) return fail("--seconds needs a positive number of seconds, not", v ? v : "nothing");
            i++;
        } else if (strcmp(a, "--reset-after") == 0) {
            if (parse_seconds(v, &reset_after)) return fail("--reset-after needs a positive number of seconds, not", v ? v : "nothing");
            i++;
        } else if (strcmp(a, "--channels") == 0) {
            if (parse_u64(v, &channels) || (channels != 12 && channels != 16)) return fail("--channels must be 12 or 16, not", v ? v : "nothing");
            i++;
        } else if (strcmp(a, "--rate") == 0) {
            if (parse_u64(v, &rate) || (rate != 500 && rate != 1000 && rate != 2000 && rate != 4000))
                return fail("--rate must be 500, 1000, 2000 or 4000 Hz, not", v ? v : "nothing");
            i++;
        } else if (strcmp(a, "--boot-id") == 0) {
            if (parse_u64(v, &boot_id) || boot_id == 0 || boot_id > 0xFFFFFFFFu) return fail("--boot-id must be 1..4294967295, not", v ? v : "nothing");
            i++;
        } else if (strcmp(a, "--clip-every") == 0) {
            if (parse_u64(v, &clip_every) || clip_every == 0 || clip_every >= (1ull << 62))
                return fail("--clip-every needs a positive number of samples, not", v ? v : "nothing");
            i++;
        } else {
            return fail("unknown option", a);
        }
    }
    if (!want_pty) {
        return fail("--pty is required (the host build serves a pseudo-terminal)", NULL);
    }

    const fw_rig_entry *rig = NULL;
    for (unsigned k = 0; k < fw_rig_count; k++) {
        if (fw_rigs[k].channels == channels) {
            rig = &fw_rigs[k];
            break;
        }
    }
    if (!rig) {
        return fail("no compiled-in rig with that many channels", NULL);
    }

    static fw_device dev; /* ~1 MB with the host's deep ring: not on the stack */
    static synthetic_adc synth;
    fw_clock clock = {NULL, host_now_us};
    fw_adc adc;
    synthetic_adc_init(&synth, &adc, &dev.sampler, &clock, rig->channels);
    synth.clip_every = clip_every;

    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) || unlockpt(master)) {
        return fail("cannot open a pseudo-terminal:", strerror(errno));
    }
    const char *name = ptsname(master);
    int slave = name ? open(name, O_RDWR | O_NOCTTY) : -1;
    if (slave < 0) {
        return fail("cannot open the pseudo-terminal's slave side:", strerror(errno));
    }
    struct termios tio;
    if (tcgetattr(slave, &tio) == 0) {
        cfmakeraw(&tio);
        tcsetattr(slave, TCSANOW, &tio);
    }
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    pty_link link_ctx = {master};
    fw_link link = {&link_ctx, pty_write, pty_read};

    fw_identity id = {rig->serial, rig->json, rig->channels, rate ? (uint32_t)rate : rig->rate_hz, true, NULL};
    if (fw_device_init(&dev, &id, &adc, &clock, &link) != 0) {
        return fail("the compiled-in rig does not fit the firmware", NULL);
    }
    uint32_t boot = (uint32_t)boot_id;
    if (!boot && random_boot_id(&boot) != 0) {
        return fail("no random source for the boot id (getrandom, /dev/urandom)", NULL);
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    printf("port: %s\n", name);
    fflush(stdout);

    uint64_t t_start = host_now_us(NULL);
    fw_device_boot(&dev, boot);
    int did_reset = 0;
    while (!stop_requested) {
        uint64_t elapsed = host_now_us(NULL) - t_start;
        if (seconds > 0 && (double)elapsed >= seconds * 1e6) {
            break;
        }
        if (reset_requested || (reset_after > 0 && !did_reset && (double)elapsed >= reset_after * 1e6)) {
            did_reset = 1;
            reset_requested = 0;
            uint32_t next = boot_id ? (uint32_t)(boot_id + 1u) : 0;
            if (!next && random_boot_id(&next) != 0) {
                next = boot + 1u;
            }
            if (!next || next == boot) next = boot ^ 0x5a5a5a5au;
            boot = next;
            fw_device_boot(&dev, boot);
            printf("event: reset\n");
            fflush(stdout);
        }
        synthetic_adc_run(&synth);
        fw_device_poll(&dev);
        struct pollfd pfd = {master, POLLIN, 0};
        if (dev.tx_off < dev.tx_len) {
            poll(NULL, 0, 1); /* the pty is full: wait, whatever input is pending */
        } else {
            poll(&pfd, 1, 1); /* wake for a command, or after 1 ms for the next conversions */
        }
    }
    close(slave);
    close(master);
    return 0;
}
