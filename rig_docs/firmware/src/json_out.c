#include "json_out.h"

#include <string.h>

static void put(fw_json *w, char c)
{
    if (w->len + 1 >= w->cap) {
        w->overflow = true;
        return;
    }
    w->buf[w->len++] = c;
}

void fw_json_raw(fw_json *w, const char *text, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        put(w, text[i]);
    }
}

void fw_json_begin(fw_json *w, char *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->overflow = false;
    w->need_comma = false;
    put(w, '{');
}

void fw_json_end(fw_json *w) { put(w, '}'); }

void fw_json_string(fw_json *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    put(w, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fw_json_raw(w, "\\\"", 2); break;
        case '\\': fw_json_raw(w, "\\\\", 2); break;
        case '\n': fw_json_raw(w, "\\n", 2); break;
        case '\r': fw_json_raw(w, "\\r", 2); break;
        case '\t': fw_json_raw(w, "\\t", 2); break;
        case '\b': fw_json_raw(w, "\\b", 2); break;
        case '\f': fw_json_raw(w, "\\f", 2); break;
        default:
            if (c < 0x20) {
                fw_json_raw(w, "\\u00", 4);
                put(w, hex[c >> 4]);
                put(w, hex[c & 15]);
            } else {
                put(w, (char)c);
            }
        }
    }
    put(w, '"');
}

void fw_json_key(fw_json *w, const char *key)
{
    if (w->need_comma) {
        put(w, ',');
    }
    w->need_comma = true;
    fw_json_string(w, key, strlen(key));
    put(w, ':');
}

void fw_json_u64(fw_json *w, uint64_t v)
{
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) {
        put(w, digits[--n]);
    }
}

void fw_json_bool(fw_json *w, bool v) { v ? fw_json_raw(w, "true", 4) : fw_json_raw(w, "false", 5); }
void fw_json_null(fw_json *w) { fw_json_raw(w, "null", 4); }

void fw_json_millis(fw_json *w, uint64_t v_ms)
{
    fw_json_u64(w, v_ms / 1000);
    put(w, '.');
    unsigned frac = (unsigned)(v_ms % 1000);
    char d[3] = {(char)('0' + frac / 100), (char)('0' + frac / 10 % 10), (char)('0' + frac % 10)};
    int n = 3;
    while (n > 1 && d[n - 1] == '0') {
        n--; /* Python's shortest float repr: trailing zeros go, one digit stays */
    }
    fw_json_raw(w, d, (size_t)n);
}
