#include "device.h"

#include <string.h>

#include "frame.h"
#include "json_in.h"
#include "json_out.h"

uint16_t fw_samples_per_frame(uint32_t rate_hz)
{
    uint32_t spf = (rate_hz + 50u) / 100u;
    if (spf < 1) spf = 1;
    if (spf > FW_MAX_SPF) spf = FW_MAX_SPF;
    return (uint16_t)spf;
}

static uint64_t now_us(fw_device *d) { return d->clock->now_us(d->clock->ctx); }
static uint64_t device_time(fw_device *d, uint64_t t) { return t >= d->boot_time_us ? t - d->boot_time_us : 0; }

static void copy_text(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

int fw_device_init(fw_device *d, const fw_identity *id, const fw_adc *adc, const fw_clock *clock,
                   const fw_link *link)
{
    memset(d, 0, sizeof *d);
    if (id->channels < 1 || id->channels > FW_MAX_CHANNELS || !id->rig_json || !id->serial) {
        return -1;
    }
    /* the info reply is the rig description plus about 300 bytes of fields */
    if (strlen(id->rig_json) + strlen(id->serial) + 400 > FW_MAX_MESSAGE_PAYLOAD) {
        return -1;
    }
    if (!adc->rate_supported(adc->ctx, id->rate_hz)) {
        return -1;
    }
    d->id = *id;
    d->adc = adc;
    d->clock = clock;
    d->link = link;
    return 0;
}

int fw_device_boot(fw_device *d, uint32_t boot_id)
{
    if (boot_id == 0) {
        return -1;
    }
    d->adc->stop(d->adc->ctx);
    d->boot_id = boot_id;
    d->seq = 0;
    d->boot_time_us = now_us(d);
    d->next_status_us = d->boot_time_us + FW_STATUS_PERIOD_US;
    d->rate_hz = d->id.rate_hz;
    d->announce = true;
    d->in_len = d->in_pos = 0;
    d->rx_len = 0;
    d->rx_skip = false;
    d->tx_len = d->tx_off = 0;
    d->log_pending = false;
    fw_sampler_reset(&d->sampler, fw_samples_per_frame(d->rate_hz), d->id.channels);
    d->adc_fault = d->adc->start(d->adc->ctx, d->rate_hz) != 0;
    d->streaming = !d->adc_fault;
    if (d->adc_fault) {
        fw_device_log(d, "error", "the ADC did not start: check its supply, clock and wiring");
    }
    return 0;
}

void fw_device_log(fw_device *d, const char *level, const char *msg)
{
    copy_text(d->log_level, sizeof d->log_level, level);
    copy_text(d->log_msg, sizeof d->log_msg, msg);
    d->log_pending = true;
}

void fw_device_set_fault(fw_device *d, const char *msg)
{
    d->fault = msg;
    if (msg) {
        fw_device_log(d, "error", msg);
    }
}

/* -- frames out ----------------------------------------------------------------- */

static void send_body(fw_device *d, size_t len)
{
    d->tx_len = fw_frame_finish(d->body, len, d->tx);
    d->tx_off = 0;
}

static char *message_text(fw_device *d) { return (char *)d->body + FW_HEADER_SIZE; }

static void send_message(fw_device *d, uint8_t frame_type, const fw_json *w)
{
    if (w->overflow) {
        return; /* cannot happen with a checked identity; never send a cut JSON object */
    }
    fw_header h = {0};
    h.frame_type = frame_type;
    h.flags = d->id.simulated ? FW_FLAG_SIMULATED : 0;
    h.boot_id = d->boot_id;
    h.seq = d->seq++;
    h.device_time_us = device_time(d, now_us(d));
    fw_header_put(d->body, &h);
    send_body(d, FW_HEADER_SIZE + w->len);
}

static void begin_message(fw_device *d, fw_json *w) { fw_json_begin(w, message_text(d), FW_MAX_MESSAGE_PAYLOAD + 1); }

/* The info fields (protocol.md section 9), shared by the info frame and the info reply. */
static void info_fields(fw_device *d, fw_json *w)
{
    fw_json_key(w, "firmware");
    fw_json_string(w, FW_VERSION, strlen(FW_VERSION));
    fw_json_key(w, "serial");
    fw_json_string(w, d->id.serial, strlen(d->id.serial));
    fw_json_key(w, "channels");
    fw_json_u64(w, d->id.channels);
    fw_json_key(w, "rate_hz");
    fw_json_u64(w, d->rate_hz);
    fw_json_key(w, "samples_per_frame");
    fw_json_u64(w, d->sampler.spf);
    fw_json_key(w, "rig");
    fw_json_raw(w, d->id.rig_json, strlen(d->id.rig_json));
    fw_json_key(w, "calibration_hash");
    if (d->id.calibration_hash) {
        fw_json_string(w, d->id.calibration_hash, strlen(d->id.calibration_hash));
    } else {
        fw_json_null(w);
    }
    fw_json_key(w, "boot_id");
    fw_json_u64(w, d->boot_id);
    if (d->id.simulated) {
        fw_json_key(w, "simulated");
        fw_json_bool(w, true);
    }
}

static void send_info_frame(fw_device *d)
{
    fw_json w;
    begin_message(d, &w);
    info_fields(d, &w);
    fw_json_end(&w);
    send_message(d, FW_FRAME_INFO, &w);
}

static void send_status(fw_device *d, uint64_t now)
{
    fw_json w;
    begin_message(d, &w);
    fw_json_key(&w, "uptime_s");
    fw_json_millis(&w, device_time(d, now) / 1000u);
    fw_json_key(&w, "overruns");
    fw_json_u64(&w, d->sampler.overruns);
    fw_json_key(&w, "streaming");
    fw_json_bool(&w, d->streaming);
    fw_json_key(&w, "rate_hz");
    fw_json_u64(&w, d->rate_hz);
    if (d->fault) {
        fw_json_key(&w, "fault");
        fw_json_string(&w, d->fault, strlen(d->fault));
    }
    fw_json_end(&w);
    send_message(d, FW_FRAME_STATUS, &w);
}

static void send_log(fw_device *d)
{
    fw_json w;
    begin_message(d, &w);
    fw_json_key(&w, "level");
    fw_json_string(&w, d->log_level, strlen(d->log_level));
    fw_json_key(&w, "msg");
    fw_json_string(&w, d->log_msg, strlen(d->log_msg));
    fw_json_end(&w);
    d->log_pending = false;
    send_message(d, FW_FRAME_LOG, &w);
}

static void send_data(fw_device *d, const fw_slot *s)
{
    fw_header h = {0};
    h.frame_type = FW_FRAME_DATA;
    h.flags = (uint16_t)(s->flags | (d->id.simulated ? FW_FLAG_SIMULATED : 0));
    h.boot_id = d->boot_id;
    h.seq = d->seq++;
    h.first_sample = s->first_sample;
    h.device_time_us = device_time(d, s->time_us);
    h.channels = s->channels;
    h.samples = s->samples;
    fw_header_put(d->body, &h);
    size_t n = (size_t)s->samples * s->channels * 3u;
    memcpy(d->body + FW_HEADER_SIZE, s->payload, n);
    send_body(d, FW_HEADER_SIZE + n);
}

/* -- commands in ------------------------------------------------------------------ */

static void reply_head(fw_device *d, fw_json *w, const fw_command *c, bool ok)
{
    begin_message(d, w);
    fw_json_key(w, "id");
    if (c->has_id) {
        fw_json_raw(w, c->id_text, strlen(c->id_text));
    } else {
        fw_json_null(w);
    }
    fw_json_key(w, "ok");
    fw_json_bool(w, ok);
}

/* A failed command: "error" is the concatenation of up to five parts (NULL ends early). */
static void reply_error5(fw_device *d, const fw_command *c, const char *a, const char *b, const char *e,
                         const char *f, const char *g)
{
    fw_json w;
    char msg[160];
    size_t n = 0;
    const char *parts[5] = {a, b, e, f, g};
    for (int i = 0; i < 5 && parts[i]; i++) {
        for (const char *p = parts[i]; p && *p && n + 1 < sizeof msg; p++) {
            msg[n++] = *p;
        }
    }
    reply_head(d, &w, c, false);
    fw_json_key(&w, "error");
    fw_json_string(&w, msg, n);
    fw_json_end(&w);
    send_message(d, FW_FRAME_REPLY, &w);
}

static void reply_error(fw_device *d, const fw_command *c, const char *a, const char *b, const char *e)
{
    reply_error5(d, c, a, b, e, NULL, NULL);
}

static void reply_streaming(fw_device *d, const fw_command *c)
{
    fw_json w;
    reply_head(d, &w, c, true);
    fw_json_key(&w, "streaming");
    fw_json_bool(&w, d->streaming);
    fw_json_end(&w);
    send_message(d, FW_FRAME_REPLY, &w);
}

static void format_u64(char *out, size_t cap, uint64_t v)
{
    fw_json w;
    w.buf = out;
    w.cap = cap;
    w.len = 0;
    w.overflow = false;
    fw_json_u64(&w, v);
    out[w.len] = 0;
}

static void do_set_rate(fw_device *d, const fw_command *c)
{
    if (!c->has_rate) {
        reply_error(d, c, "bad arguments for 'set_rate': ", "rate_hz is missing", NULL);
        return;
    }
    if (!c->rate_is_number) {
        reply_error(d, c, "bad arguments for 'set_rate': ", "rate_hz must be a number", NULL);
        return;
    }
    if (!c->rate_is_whole) {
        reply_error5(d, c, "rate_hz is not a whole number of Hz; supported rates: ", d->adc->supported_text, " Hz",
                     NULL, NULL);
        return;
    }
    if (c->rate > 0xFFFFFFFFu || !d->adc->rate_supported(d->adc->ctx, (uint32_t)c->rate)) {
        char num[24];
        format_u64(num, sizeof num, c->rate);
        reply_error5(d, c, "rate ", num, " Hz is not supported; supported rates: ", d->adc->supported_text, " Hz");
        return;
    }
    uint32_t rate = (uint32_t)c->rate;
    if (rate != d->rate_hz) {
        bool was_streaming = d->streaming;
        if (was_streaming) {
            d->adc->stop(d->adc->ctx);
            fw_sampler_close(&d->sampler); /* the frame in progress ends at the old rate */
        }
        d->rate_hz = rate;
        fw_sampler_set_spf(&d->sampler, fw_samples_per_frame(rate));
        if (was_streaming && d->adc->start(d->adc->ctx, rate) != 0) {
            d->streaming = false;
            d->adc_fault = true;
            reply_error(d, c, "the ADC did not restart at the new rate", NULL, NULL);
            return;
        }
    }
    fw_json w;
    reply_head(d, &w, c, true);
    fw_json_key(&w, "rate_hz");
    fw_json_u64(&w, d->rate_hz);
    fw_json_end(&w);
    send_message(d, FW_FRAME_REPLY, &w);
}

static void execute(fw_device *d, const fw_command *c)
{
    if (!c->has_cmd) {
        reply_error(d, c, "the command has no 'cmd' name", NULL, NULL);
        return;
    }
    if (!c->cmd_is_string) {
        reply_error(d, c, "unknown command ", c->cmd, NULL);
        return;
    }
    const char *name = c->cmd;
    if (strcmp(name, "info") == 0) {
        fw_json w;
        reply_head(d, &w, c, true);
        info_fields(d, &w);
        fw_json_end(&w);
        send_message(d, FW_FRAME_REPLY, &w);
    } else if (strcmp(name, "start") == 0) {
        if (!d->streaming) {
            if (d->adc->start(d->adc->ctx, d->rate_hz) != 0) {
                d->adc_fault = true;
                reply_error(d, c, "the ADC did not start: check its supply, clock and wiring", NULL, NULL);
                return;
            }
            d->adc_fault = false;
            d->streaming = true;
        }
        reply_streaming(d, c);
    } else if (strcmp(name, "stop") == 0) {
        if (d->streaming) {
            d->adc->stop(d->adc->ctx);
            fw_sampler_close(&d->sampler); /* every acquired sample is still sent */
            d->streaming = false;
        }
        reply_streaming(d, c);
    } else if (strcmp(name, "set_rate") == 0) {
        do_set_rate(d, c);
    } else if (strcmp(name, "tare_hint") == 0) {
        fw_json w;
        reply_head(d, &w, c, true);
        fw_json_end(&w);
        send_message(d, FW_FRAME_REPLY, &w);
    } else {
        reply_error(d, c, "unknown command '", name, "'");
    }
}

/* One complete frame from the host (without its 0x00): true if a reply was built. */
static bool handle_frame(fw_device *d)
{
    fw_header h;
    long len = fw_frame_decode(d->rx, d->rx_len, d->cmd_body, sizeof d->cmd_body, &h);
    if (len < 0 || h.frame_type != FW_FRAME_COMMAND) {
        return false; /* damaged or not a command: not answered (protocol.md section 9) */
    }
    fw_command c;
    if (fw_parse_command((const char *)d->cmd_body + FW_HEADER_SIZE, (size_t)len - FW_HEADER_SIZE - FW_CRC_SIZE, &c)
        != 0) {
        return false;
    }
    execute(d, &c);
    return true;
}

/* Read host bytes until a command has been answered (true) or the input is empty. */
static bool read_commands(fw_device *d)
{
    for (;;) {
        if (d->in_pos >= d->in_len) {
            d->in_len = d->link->read(d->link->ctx, d->in, sizeof d->in);
            d->in_pos = 0;
            if (d->in_len == 0) {
                return false;
            }
        }
        while (d->in_pos < d->in_len) {
            uint8_t b = d->in[d->in_pos++];
            if (b == 0) {
                bool complete = !d->rx_skip && d->rx_len > 0;
                d->rx_skip = false;
                size_t n = d->rx_len;
                d->rx_len = 0;
                if (complete) {
                    d->rx_len = n;
                    bool replied = handle_frame(d);
                    d->rx_len = 0;
                    if (replied) {
                        return true;
                    }
                }
            } else if (!d->rx_skip) {
                if (d->rx_len < sizeof d->rx) {
                    d->rx[d->rx_len++] = b;
                } else {
                    d->rx_skip = true;
                    d->rx_len = 0;
                }
            }
        }
    }
}

/* Build the next frame into tx: false if nothing is due. */
static bool next_frame(fw_device *d)
{
    if (d->announce) {
        d->announce = false;
        send_info_frame(d);
        return true;
    }
    if (d->log_pending) {
        send_log(d);
        return true;
    }
    if (read_commands(d)) {
        return true;
    }
    if (fw_sampler_pop(&d->sampler, &d->scratch)) {
        send_data(d, &d->scratch);
        return true;
    }
    uint64_t now = now_us(d);
    if (now >= d->next_status_us) {
        d->next_status_us += FW_STATUS_PERIOD_US;
        if (d->next_status_us <= now) {
            d->next_status_us = now + FW_STATUS_PERIOD_US;
        }
        send_status(d, now);
        return true;
    }
    return false;
}

void fw_device_poll(fw_device *d)
{
    for (int frames = 0; frames < 64; frames++) {
        if (d->tx_off < d->tx_len) {
            d->tx_off += d->link->write(d->link->ctx, d->tx + d->tx_off, d->tx_len - d->tx_off);
            if (d->tx_off < d->tx_len) {
                return; /* the link is full: try again on the next poll */
            }
        }
        if (!next_frame(d)) {
            return;
        }
    }
}
