/* The firmware's C tests, run on the host (make test):
 *
 *   fw-tests VECTORS         unit checks, then every vector of the shared file:
 *                            what the firmware code produces must equal `wire`
 *   fw-tests --emit VECTORS  print "name hex" of what the code produces for each
 *                            vector (the Python tests compare it themselves)
 *
 * Vector file format (vectors/wire_vectors.txt, shared with tests/test_firmware.py):
 * "[name]" starts a vector, "key = value" lines follow, "#" lines are comments.
 * kind = cobs      raw, wire (COBS without the delimiter)
 * kind = data      boot_id seq first_sample device_time_us flags channels samples counts -> wire
 * kind = message   frame_type boot_id seq device_time_us flags payload -> wire
 * kind = exchange  a device (channels rate_hz serial rig simulated ring_slots) run by
 *                  `step` lines: time US | boot ID | reset ID | poll | samples N |
 *                  command HEX | input HEX | link_room N|unlimited | seq N | clip_every N
 *                  -> wire (everything the device sent, in order) */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cobs.h"
#include "crc32.h"
#include "device.h"
#include "frame.h"
#include "json_in.h"
#include "json_out.h"
#include "port.h"
#include "synthetic_adc.h"

static int failures;
static int checks;

static void check(int ok, const char *fmt, ...)
{
    checks++;
    if (!ok) {
        failures++;
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "FAIL: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
    }
}

/* -- growing byte buffers and hex ------------------------------------------------ */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void bytes_add(bytes *b, const uint8_t *d, size_t n)
{
    if (n == 0) return;
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) {
            perror("realloc");
            exit(2);
        }
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static int hexdigit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int from_hex(const char *s, bytes *out)
{
    out->n = 0;
    size_t len = strlen(s);
    if (len % 2) return -1;
    for (size_t i = 0; i < len; i += 2) {
        int hi = hexdigit(s[i]), lo = hexdigit(s[i + 1]);
        if (hi < 0 || lo < 0) return -1;
        uint8_t b = (uint8_t)(hi * 16 + lo);
        bytes_add(out, &b, 1);
    }
    return 0;
}

static void print_hex(FILE *f, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) fprintf(f, "%02x", p[i]);
}

/* -- unit checks -------------------------------------------------------------------- */

static void unit_crc(void)
{
    check(fw_crc32((const uint8_t *)"123456789", 9) == 0xCBF43926u, "CRC-32 check value of '123456789'");
    check(fw_crc32(NULL, 0) == 0, "CRC-32 of nothing is 0");
    uint32_t part = fw_crc32_update(0, (const uint8_t *)"1234", 4);
    check(fw_crc32_update(part, (const uint8_t *)"56789", 5) == 0xCBF43926u, "CRC-32 continues across calls");
}

static uint32_t lcg_state = 12345;
static uint32_t lcg(void)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return lcg_state >> 8;
}

static void unit_cobs(void)
{
    static uint8_t raw[70000], enc[FW_COBS_MAX(70000)], dec[70000];
    for (int trial = 0; trial < 300; trial++) {
        size_t n = trial < 10 ? (size_t)trial : (lcg() % (trial < 200 ? 1200u : 66000u));
        unsigned zero_every = 1 + lcg() % 300;
        for (size_t i = 0; i < n; i++) raw[i] = (lcg() % zero_every == 0) ? 0 : (uint8_t)(1 + lcg() % 255);
        size_t m = fw_cobs_encode(raw, n, enc);
        int clean = m <= FW_COBS_MAX(n);
        for (size_t i = 0; i < m; i++) clean &= enc[i] != 0;
        long back = fw_cobs_decode(enc, m, dec, sizeof dec);
        check(clean && back == (long)n && memcmp(raw, dec, n) == 0, "COBS round trip of %zu bytes", n);
    }
    uint8_t bad[] = {0x05, 0x01, 0x02};
    check(fw_cobs_decode(bad, 3, dec, sizeof dec) < 0, "a COBS block running past the end is refused");
    uint8_t zero_inside[] = {0x03, 0x00, 0x02};
    check(fw_cobs_decode(zero_inside, 3, dec, sizeof dec) < 0, "a 0x00 inside a COBS frame is refused");
}

static void unit_clock(void)
{
    fw_clock_ext e = {0, 0};
    check(fw_clock_extend32(&e, 4294967000u) == 4294967000u, "32-bit clock before the wrap");
    check(fw_clock_extend32(&e, 5u) == 4294967296ull + 5u, "32-bit clock extended across the wrap");
    check(fw_clock_extend32(&e, 7u) == 4294967296ull + 7u, "no second wrap without one");
}

static void unit_boot_id(void)
{
    uint32_t seen[64];
    int distinct = 1;
    for (uint32_t i = 0; i < 64; i++) {
        uint32_t w[2] = {i, 0};
        seen[i] = fw_boot_id_mix(w, 2);
        check(seen[i] != 0, "boot id never 0");
        for (uint32_t k = 0; k < i; k++) distinct &= seen[k] != seen[i];
    }
    check(distinct, "boot ids of 64 different entropy words differ");
    int zero_ok = 1;
    for (uint32_t i = 0; i < 100000; i++) zero_ok &= fw_boot_id_mix(&i, 1) != 0;
    check(zero_ok, "boot id is never 0 over 100000 inputs");
}

static void unit_json(void)
{
    fw_command c;
    const char *t1 = "{\"cmd\":\"set_rate\",\"id\":12,\"rate_hz\":2000.0}";
    check(fw_parse_command(t1, strlen(t1), &c) == 0 && c.has_cmd && strcmp(c.cmd, "set_rate") == 0 && c.has_id
              && strcmp(c.id_text, "12") == 0 && c.rate_is_number && c.rate_is_whole && c.rate == 2000,
          "command with a float rate");
    const char *t2 = " { \"id\" : 3 , \"x\" : {\"a\":[1,{\"b\":\"}\"}]}, \"cmd\" : \"in\\u0066o\" } ";
    check(fw_parse_command(t2, strlen(t2), &c) == 0 && strcmp(c.cmd, "info") == 0 && strcmp(c.id_text, "3") == 0,
          "nested values skipped, escapes read");
    const char *t3 = "{\"cmd\":\"set_rate\",\"id\":1,\"rate_hz\":2.5e3}";
    check(fw_parse_command(t3, strlen(t3), &c) == 0 && c.rate_is_whole && c.rate == 2500, "exponent rate");
    const char *t4 = "{\"cmd\":\"set_rate\",\"id\":1,\"rate_hz\":1000.5}";
    check(fw_parse_command(t4, strlen(t4), &c) == 0 && c.rate_is_number && !c.rate_is_whole, "fractional rate");
    const char *t5 = "{\"cmd\":\"set_rate\",\"id\":1,\"rate_hz\":\"fast\"}";
    check(fw_parse_command(t5, strlen(t5), &c) == 0 && c.has_rate && !c.rate_is_number, "string rate");
    const char *bad[] = {"", "[]", "{", "{\"cmd\":}", "{\"cmd\":\"info\",}", "{\"cmd\":\"info\"} x", "{\"cmd\" \"info\"}"};
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        check(fw_parse_command(bad[i], strlen(bad[i]), &c) != 0, "not a JSON object: '%s'", bad[i]);
    }
    char buf[64];
    fw_json w;
    fw_json_begin(&w, buf, sizeof buf);
    fw_json_key(&w, "a");
    fw_json_millis(&w, 12000);
    fw_json_key(&w, "b");
    fw_json_millis(&w, 12340);
    fw_json_key(&w, "c");
    fw_json_millis(&w, 5);
    fw_json_end(&w);
    buf[w.len] = 0;
    check(strcmp(buf, "{\"a\":12.0,\"b\":12.34,\"c\":0.005}") == 0, "seconds printed as Python floats: %s", buf);
    fw_json_begin(&w, buf, 8);
    fw_json_key(&w, "long key");
    check(w.overflow, "a JSON object that does not fit is marked");
}

static void unit_sampler(void)
{
    static fw_sampler s;
    static fw_slot out;
    fw_sampler_reset(&s, 2, 1);
    int32_t v = 0;
    for (int i = 0; i < 4 * FW_RING_SLOTS; i++) { /* 2 N frames of 2 samples */
        v = i;
        fw_sampler_push(&s, &v, (uint64_t)i);
    }
    /* FW_RING_SLOTS - 1 complete slots fit; the oldest were dropped */
    uint64_t expect_first = (uint64_t)(FW_RING_SLOTS + 1) * 2;
    check(fw_sampler_pending(&s) == FW_RING_SLOTS - 1, "a full ring holds N-1 frames");
    check(s.overruns == expect_first, "dropped samples counted: %llu", (unsigned long long)s.overruns);
    check(fw_sampler_pop(&s, &out) && out.first_sample == expect_first && (out.flags & FW_FLAG_OVERRUN),
          "the oldest frame kept carries the overrun flag");
    check(fw_sampler_pop(&s, &out) && out.first_sample == expect_first + 2 && !(out.flags & FW_FLAG_OVERRUN),
          "the next one does not");
    fw_sampler_reset(&s, 4, 1);
    v = 1;
    fw_sampler_push(&s, &v, 10);
    fw_sampler_close(&s);
    check(fw_sampler_pop(&s, &out) && out.samples == 1 && out.first_sample == 0, "a closed partial frame is short");
    v = FW_COUNTS_MIN;
    for (int i = 0; i < 4; i++) fw_sampler_push(&s, &v, 20);
    check(fw_sampler_pop(&s, &out) && (out.flags & FW_FLAG_CLIPPING) && out.first_sample == 1, "rail sets clipping");
    check(fw_samples_per_frame(1000) == 10 && fw_samples_per_frame(4000) == 40 && fw_samples_per_frame(8000) == 40
              && fw_samples_per_frame(20) == 1,
          "samples per frame");
}

/* -- vectors -------------------------------------------------------------------------- */

#define MAX_KEYS 256
typedef struct {
    char *name;
    int n;
    char *key[MAX_KEYS];
    char *val[MAX_KEYS];
} vector;

static const char *get(const vector *v, const char *key)
{
    for (int i = 0; i < v->n; i++)
        if (strcmp(v->key[i], key) == 0) return v->val[i];
    return NULL;
}

static uint64_t get_u64(const vector *v, const char *key, uint64_t dflt)
{
    const char *s = get(v, key);
    return s ? strtoull(s, NULL, 0) : dflt;
}

/* fake clock, capture link, test ADC */
static uint64_t fake_now;
static uint64_t fake_now_us(void *ctx) { (void)ctx; return fake_now; }

typedef struct {
    bytes out;
    bytes in;
    size_t in_pos;
    long room; /* -1: unlimited */
} capture_link;

static size_t cap_write(void *ctx, const uint8_t *d, size_t n)
{
    capture_link *l = ctx;
    size_t take = n;
    if (l->room >= 0 && (size_t)l->room < take) take = (size_t)l->room;
    bytes_add(&l->out, d, take);
    if (l->room >= 0) l->room -= (long)take;
    return take;
}

static size_t cap_read(void *ctx, uint8_t *buf, size_t cap)
{
    capture_link *l = ctx;
    size_t n = l->in.n - l->in_pos;
    if (n > cap) n = cap;
    if (n == 0) return 0;
    memcpy(buf, l->in.p + l->in_pos, n);
    l->in_pos += n;
    return n;
}

typedef struct {
    int running;
    uint32_t rate;
} test_adc;

static bool tadc_supported(void *ctx, uint32_t r)
{
    (void)ctx;
    return r == 500 || r == 1000 || r == 2000 || r == 4000;
}
static int tadc_start(void *ctx, uint32_t r)
{
    test_adc *a = ctx;
    a->running = 1;
    a->rate = r;
    return 0;
}
static void tadc_stop(void *ctx) { ((test_adc *)ctx)->running = 0; }

static void unit_fault_in_status(void)
{
    static fw_device dev;
    static test_adc tadc;
    static capture_link link;
    fw_adc adc = {&tadc, tadc_supported, tadc_start, tadc_stop, "500, 1000, 2000, 4000"};
    fw_clock clock = {NULL, fake_now_us};
    fw_link l = {&link, cap_write, cap_read};
    link.room = -1;
    fw_identity id = {"S-1", "{}", 4, 1000, false, NULL};
    fake_now = 0;
    check(fw_device_init(&dev, &id, &adc, &clock, &l) == 0 && fw_device_boot(&dev, 9) == 0, "device boots");
    fw_device_set_fault(&dev, "ADS131M08 #1 does not answer");
    fake_now = 1000000;
    fw_device_poll(&dev);
    static uint8_t body[4096];
    int logs = 0, faults = 0;
    size_t start = 0;
    for (size_t i = 0; i < link.out.n; i++) {
        if (link.out.p[i] != 0) continue;
        fw_header h;
        long n = fw_frame_decode(link.out.p + start, i - start, body, sizeof body, &h);
        if (n > 0) {
            body[n - 4] = 0;
            const char *text = (const char *)body + 32;
            logs += h.frame_type == FW_FRAME_LOG && strstr(text, "\"level\":\"error\"") != NULL;
            faults += h.frame_type == FW_FRAME_STATUS && strstr(text, "\"fault\":\"ADS131M08 #1 does not answer\"") != NULL;
        }
        start = i + 1;
    }
    check(logs == 1 && faults == 1, "a fault is logged once and named in the status frame (%d, %d)", logs, faults);
    free(link.out.p);
    memset(&link, 0, sizeof link);
}


/* Random bytes with valid commands mixed in: nothing crashes (ASan/UBSan watch),
 * every valid command is answered once, in order, and nothing else is. */
static void unit_command_fuzz(void)
{
    static fw_device dev;
    static test_adc tadc;
    static capture_link link;
    fw_adc adc = {&tadc, tadc_supported, tadc_start, tadc_stop, "500, 1000, 2000, 4000"};
    fw_clock clock = {NULL, fake_now_us};
    fw_link l = {&link, cap_write, cap_read};
    memset(&link, 0, sizeof link);
    link.room = -1;
    fw_identity id = {"S-2", "{\"a\":1}", 12, 1000, false, NULL};
    fake_now = 0;
    check(fw_device_init(&dev, &id, &adc, &clock, &l) == 0 && fw_device_boot(&dev, 77) == 0, "device boots");
    fw_device_poll(&dev);
    size_t after_info = link.out.n;
    int sent = 0;
    for (int round = 0; round < 400; round++) {
        uint8_t junk[700];
        size_t n = lcg() % sizeof junk;
        for (size_t i = 0; i < n; i++) junk[i] = (uint8_t)(lcg() % 7 == 0 ? 0 : lcg());
        bytes_add(&link.in, junk, n);
        if (round % 4 == 0) {
            /* a valid tare_hint command, id = round: header + JSON + CRC, COBS, 0x00 */
            static uint8_t body[128], wire[160];
            char text[48];
            int len = snprintf(text, sizeof text, "{\"cmd\":\"tare_hint\",\"id\":%d}", round);
            fw_header h = {0};
            h.frame_type = FW_FRAME_COMMAND;
            h.seq = (uint32_t)round;
            fw_header_put(body, &h);
            memcpy(body + FW_HEADER_SIZE, text, (size_t)len);
            uint8_t zero = 0;
            bytes_add(&link.in, &zero, 1); /* end whatever junk frame is open */
            bytes_add(&link.in, wire, fw_frame_finish(body, FW_HEADER_SIZE + (size_t)len, wire));
            sent++;
        }
        for (int k = 0; k < 50; k++) fw_device_poll(&dev);
    }
    /* count the replies */
    static uint8_t body[8192];
    int replies = 0, in_order = 1, last = -1;
    size_t start = after_info;
    for (size_t i = after_info; i < link.out.n; i++) {
        if (link.out.p[i] != 0) continue;
        fw_header h;
        long n = fw_frame_decode(link.out.p + start, i - start, body, sizeof body, &h);
        start = i + 1;
        if (n <= 0 || h.frame_type != FW_FRAME_REPLY) continue;
        body[n - 4] = 0;
        int cid = -1;
        if (sscanf((const char *)body + 32, "{\"id\":%d,\"ok\":true}", &cid) == 1) {
            in_order &= cid > last && cid % 4 == 0;
            last = cid;
            replies++;
        }
    }
    check(replies == sent && in_order, "every valid command among random bytes answered once, in order (%d of %d)",
          replies, sent);
    free(link.out.p);
    free(link.in.p);
    memset(&link, 0, sizeof link);
}

static int run_exchange(const vector *v, bytes *out)
{
    static fw_device dev;
    static test_adc tadc;
    static capture_link link;
    fw_adc adc = {&tadc, tadc_supported, tadc_start, tadc_stop, "500, 1000, 2000, 4000"};
    fw_clock clock = {NULL, fake_now_us};
    free(link.out.p);
    free(link.in.p);
    memset(&link, 0, sizeof link);
    link.room = -1;
    fw_link l = {&link, cap_write, cap_read};
    memset(&tadc, 0, sizeof tadc);
    fake_now = 0;
    if (get_u64(v, "ring_slots", 0) != FW_RING_SLOTS) {
        fprintf(stderr, "%s: the vector needs ring_slots = %d\n", v->name, FW_RING_SLOTS);
        return -1;
    }
    fw_identity id = {get(v, "serial"), get(v, "rig"), (uint16_t)get_u64(v, "channels", 0),
                      (uint32_t)get_u64(v, "rate_hz", 0), get_u64(v, "simulated", 0) != 0, NULL};
    if (!id.serial || !id.rig_json || fw_device_init(&dev, &id, &adc, &clock, &l) != 0) {
        fprintf(stderr, "%s: bad device identity\n", v->name);
        return -1;
    }
    uint64_t clip_every = 0;
    bytes tmp = {0};
    for (int i = 0; i < v->n; i++) {
        if (strcmp(v->key[i], "step") != 0) continue;
        char op[16];
        char arg[8192] = "";
        if (sscanf(v->val[i], "%15s %8191s", op, arg) < 1) return -1;
        uint64_t a = strtoull(arg, NULL, 0);
        if (strcmp(op, "time") == 0) {
            fake_now = a;
        } else if (strcmp(op, "boot") == 0 || strcmp(op, "reset") == 0) {
            if (fw_device_boot(&dev, (uint32_t)a) != 0) return -1;
        } else if (strcmp(op, "poll") == 0) {
            size_t before;
            int rounds = 0;
            do {
                before = link.out.n;
                fw_device_poll(&dev);
            } while (link.out.n != before && ++rounds < 10000);
        } else if (strcmp(op, "samples") == 0) {
            int32_t counts[FW_MAX_CHANNELS];
            for (uint64_t k = 0; k < a && tadc.running; k++) {
                synthetic_counts(dev.sampler.next_index, tadc.rate, id.channels, clip_every, counts);
                fw_sampler_push(&dev.sampler, counts, fake_now + k * 1000000u / tadc.rate);
            }
        } else if (strcmp(op, "command") == 0 || strcmp(op, "input") == 0) {
            if (from_hex(arg, &tmp)) return -1;
            bytes_add(&link.in, tmp.p, tmp.n);
        } else if (strcmp(op, "link_room") == 0) {
            link.room = strcmp(arg, "unlimited") == 0 ? -1 : (long)a;
        } else if (strcmp(op, "seq") == 0) {
            dev.seq = (uint32_t)a; /* test hook: start near the 32-bit wrap */
        } else if (strcmp(op, "clip_every") == 0) {
            clip_every = a;
        } else {
            fprintf(stderr, "%s: unknown step '%s'\n", v->name, op);
            return -1;
        }
    }
    free(tmp.p);
    out->n = 0;
    bytes_add(out, link.out.p, link.out.n);
    return 0;
}

static int produce(const vector *v, bytes *out)
{
    const char *kind = get(v, "kind");
    static uint8_t body[70000], wire[FW_COBS_MAX(70000) + 1];
    bytes raw = {0};
    int rc = 0;
    out->n = 0;
    if (!kind) return -1;
    if (strcmp(kind, "cobs") == 0) {
        if (from_hex(get(v, "raw") ? get(v, "raw") : "", &raw)) rc = -1;
        else bytes_add(out, wire, fw_cobs_encode(raw.p, raw.n, wire));
    } else if (strcmp(kind, "data") == 0) {
        fw_header h = {0};
        h.frame_type = FW_FRAME_DATA;
        h.flags = (uint16_t)get_u64(v, "flags", 0);
        h.boot_id = (uint32_t)get_u64(v, "boot_id", 0);
        h.seq = (uint32_t)get_u64(v, "seq", 0);
        h.first_sample = get_u64(v, "first_sample", 0);
        h.device_time_us = get_u64(v, "device_time_us", 0);
        h.channels = (uint16_t)get_u64(v, "channels", 0);
        h.samples = (uint16_t)get_u64(v, "samples", 0);
        size_t n = (size_t)h.channels * h.samples;
        int32_t *counts = calloc(n + 1, sizeof *counts);
        const char *s = get(v, "counts");
        for (size_t i = 0; i < n && s; i++) {
            char *end;
            counts[i] = (int32_t)strtol(s, &end, 10);
            if (end == s) rc = -1;
            s = end;
        }
        if (FW_HEADER_SIZE + 3 * n + FW_CRC_SIZE > sizeof body) rc = -1;
        if (rc == 0) {
            if (fw_pack_counts(counts, n, body + FW_HEADER_SIZE)) h.flags |= FW_FLAG_CLIPPING;
            fw_header_put(body, &h);
            bytes_add(out, wire, fw_frame_finish(body, FW_HEADER_SIZE + 3 * n, wire));
        }
        free(counts);
    } else if (strcmp(kind, "message") == 0) {
        fw_header h = {0};
        h.frame_type = (uint8_t)get_u64(v, "frame_type", 0);
        h.flags = (uint16_t)get_u64(v, "flags", 0);
        h.boot_id = (uint32_t)get_u64(v, "boot_id", 0);
        h.seq = (uint32_t)get_u64(v, "seq", 0);
        h.device_time_us = get_u64(v, "device_time_us", 0);
        const char *p = get(v, "payload");
        size_t n = p ? strlen(p) : 0;
        fw_header_put(body, &h);
        memcpy(body + FW_HEADER_SIZE, p ? p : "", n);
        bytes_add(out, wire, fw_frame_finish(body, FW_HEADER_SIZE + n, wire));
    } else if (strcmp(kind, "exchange") == 0) {
        rc = run_exchange(v, out);
    } else {
        rc = -1;
    }
    free(raw.p);
    return rc;
}

/* Read the vector file into vectors (the file text is kept and cut in place). */
static int load(const char *path, vector **vs, int *count)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    if (!text || fread(text, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        return -1;
    }
    fclose(f);
    text[size] = 0;
    *vs = NULL;
    *count = 0;
    vector *cur = NULL;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || line[0] == 0) continue;
        if (line[0] == '[') {
            char *end = strchr(line, ']');
            if (!end) return -1;
            *end = 0;
            *vs = realloc(*vs, sizeof(vector) * (size_t)(*count + 1));
            cur = &(*vs)[(*count)++];
            memset(cur, 0, sizeof *cur);
            cur->name = line + 1;
            continue;
        }
        char *eq = strstr(line, " = ");
        if (!cur || !eq || cur->n >= MAX_KEYS) {
            fprintf(stderr, "%s: bad line: %.60s\n", path, line);
            return -1;
        }
        *eq = 0;
        cur->key[cur->n] = line;
        cur->val[cur->n] = eq + 3;
        cur->n++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int emit = argc == 3 && strcmp(argv[1], "--emit") == 0;
    if (argc != 2 && !emit) {
        fprintf(stderr, "usage: fw-tests [--emit] VECTORS\n");
        return 2;
    }
    vector *vs;
    int count;
    if (load(argv[argc - 1], &vs, &count) != 0) {
        fprintf(stderr, "cannot read the vectors in %s\n", argv[argc - 1]);
        return 2;
    }
    bytes got = {0}, want = {0};
    if (emit) {
        for (int i = 0; i < count; i++) {
            if (produce(&vs[i], &got) != 0) {
                fprintf(stderr, "vector %s: cannot run it\n", vs[i].name);
                return 1;
            }
            printf("%s ", vs[i].name);
            print_hex(stdout, got.p, got.n);
            printf("\n");
        }
        free(got.p);
        free(vs);
        return 0;
    }
    unit_crc();
    unit_cobs();
    unit_clock();
    unit_boot_id();
    unit_json();
    unit_sampler();
    unit_fault_in_status();
    unit_command_fuzz();
    int units = checks;
    for (int i = 0; i < count; i++) {
        const char *w = get(&vs[i], "wire");
        int ok = w && from_hex(w, &want) == 0 && produce(&vs[i], &got) == 0;
        ok = ok && got.n == want.n && memcmp(got.p, want.p, got.n) == 0;
        check(ok, "vector %s: the firmware's bytes differ from the expected ones", vs[i].name);
        if (!ok && got.n) {
            size_t k = 0;
            while (k < got.n && k < want.n && got.p[k] == want.p[k]) k++;
            fprintf(stderr, "  first difference at byte %zu (got %zu bytes, want %zu)\n", k, got.n, want.n);
        }
    }
    printf("fw-tests: %d unit checks, %d vectors, %d failures\n", units, count, failures);
    fflush(stdout);
    free(got.p);
    free(want.p);
    free(vs);
    return failures ? 1 : 0;
}
