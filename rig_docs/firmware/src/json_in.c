#include "json_in.h"

#include <string.h>

typedef struct {
    const char *p;
    const char *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) {
        c->p++;
    }
}

/* Skip a string starting at its opening quote; false if it is not closed. */
static bool skip_string(cursor *c)
{
    c->p++;
    while (c->p < c->end) {
        char ch = *c->p++;
        if (ch == '\\') {
            if (c->p >= c->end) {
                return false;
            }
            c->p++;
        } else if (ch == '"') {
            return true;
        } else if ((unsigned char)ch < 0x20) {
            return false;
        }
    }
    return false;
}

/* Skip one JSON value (nested objects and arrays included). */
static bool skip_value(cursor *c)
{
    skip_ws(c);
    if (c->p >= c->end) {
        return false;
    }
    if (*c->p == '"') {
        return skip_string(c);
    }
    if (*c->p == '{' || *c->p == '[') {
        int depth = 0;
        while (c->p < c->end) {
            char ch = *c->p;
            if (ch == '"') {
                if (!skip_string(c)) {
                    return false;
                }
                continue;
            }
            c->p++;
            if (ch == '{' || ch == '[') {
                depth++;
            } else if (ch == '}' || ch == ']') {
                if (--depth == 0) {
                    return true;
                }
            }
        }
        return false;
    }
    const char *start = c->p;
    while (c->p < c->end && *c->p != ',' && *c->p != '}' && *c->p != ']' && *c->p != ' ' && *c->p != '\t'
           && *c->p != '\n' && *c->p != '\r') {
        c->p++;
    }
    return c->p > start;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Unescape the string [s, e) (without quotes) into out (cap includes the NUL).
 * Non-ASCII \u escapes become '?'.  False if it does not fit. */
static bool unescape(const char *s, const char *e, char *out, size_t cap)
{
    size_t o = 0;
    while (s < e) {
        char ch = *s++;
        if (ch == '\\' && s < e) {
            char esc = *s++;
            switch (esc) {
            case 'n': ch = '\n'; break;
            case 't': ch = '\t'; break;
            case 'r': ch = '\r'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'u': {
                int v = 0;
                for (int k = 0; k < 4; k++) {
                    int h = s < e ? hexval(*s++) : -1;
                    if (h < 0) return false;
                    v = v * 16 + h;
                }
                ch = (v > 0 && v < 0x80) ? (char)v : '?';
                break;
            }
            default: ch = esc; /* \" \\ \/ */
            }
        }
        if (o + 1 >= cap) {
            return false;
        }
        out[o++] = ch;
    }
    out[o] = 0;
    return true;
}

static void copy_raw(const char *s, const char *e, char *out, size_t cap)
{
    size_t n = (size_t)(e - s);
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(out, s, n);
    out[n] = 0;
}

/* A JSON number [s, e): is it a whole number (0 .. 10^12)?  Exact, no floats. */
static void parse_number(const char *s, const char *e, fw_command *out)
{
    uint64_t mant = 0;
    int exp10 = 0, digits = 0;
    bool neg = false, any = false;
    out->rate_is_number = false;
    out->rate_is_whole = false;
    if (s < e && *s == '-') {
        neg = true;
        s++;
    }
    while (s < e && *s >= '0' && *s <= '9') {
        if (digits < 18) {
            mant = mant * 10 + (uint64_t)(*s - '0');
            if (mant) digits++;
        } else {
            exp10++;
        }
        s++;
        any = true;
    }
    if (s < e && *s == '.') {
        s++;
        bool frac_any = false;
        while (s < e && *s >= '0' && *s <= '9') {
            if (digits < 18) {
                mant = mant * 10 + (uint64_t)(*s - '0');
                if (mant) digits++;
                exp10--;
            } else if (*s != '0') {
                return; /* more precision than a rate needs: not whole here */
            }
            s++;
            frac_any = true;
        }
        if (!frac_any) return;
    }
    if (s < e && (*s == 'e' || *s == 'E')) {
        s++;
        bool eneg = false;
        int ev = 0;
        if (s < e && (*s == '+' || *s == '-')) {
            eneg = *s == '-';
            s++;
        }
        if (s >= e) return;
        while (s < e && *s >= '0' && *s <= '9') {
            if (ev < 1000) ev = ev * 10 + (*s - '0');
            s++;
        }
        exp10 += eneg ? -ev : ev;
    }
    if (!any || s != e) {
        return; /* not a JSON number */
    }
    out->rate_is_number = true;
    while (exp10 < 0 && mant % 10 == 0 && mant) {
        mant /= 10;
        exp10++;
    }
    if (mant == 0) {
        exp10 = 0;
    }
    if (exp10 < 0 || (neg && mant)) {
        return;
    }
    while (exp10 > 0) {
        if (mant > 100000000000ull) return;
        mant *= 10;
        exp10--;
    }
    if (mant > 1000000000000ull) return;
    out->rate_is_whole = true;
    out->rate = mant;
}

int fw_parse_command(const char *text, size_t n, fw_command *out)
{
    memset(out, 0, sizeof *out);
    cursor c = {text, text + n};
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{') {
        return -1;
    }
    c.p++;
    skip_ws(&c);
    if (c.p < c.end && *c.p == '}') {
        c.p++;
    } else {
        for (;;) {
            skip_ws(&c);
            if (c.p >= c.end || *c.p != '"') return -1;
            const char *ks = c.p + 1;
            if (!skip_string(&c)) return -1;
            const char *ke = c.p - 1;
            char key[16];
            bool key_ok = unescape(ks, ke, key, sizeof key);
            skip_ws(&c);
            if (c.p >= c.end || *c.p != ':') return -1;
            c.p++;
            skip_ws(&c);
            const char *vs = c.p;
            if (!skip_value(&c)) return -1;
            const char *ve = c.p;
            bool is_string = *vs == '"';
            bool is_scalar = *vs != '{' && *vs != '[';
            if (key_ok && strcmp(key, "cmd") == 0) {
                out->has_cmd = true;
                out->cmd_is_string = is_string;
                if (is_string) {
                    if (!unescape(vs + 1, ve - 1, out->cmd, sizeof out->cmd)) {
                        copy_raw(vs + 1, ve - 1, out->cmd, sizeof out->cmd);
                    }
                } else {
                    copy_raw(vs, ve, out->cmd, sizeof out->cmd);
                }
            } else if (key_ok && strcmp(key, "id") == 0) {
                out->has_id = is_scalar && (size_t)(ve - vs) <= FW_CMD_ID_MAX;
                if (out->has_id) copy_raw(vs, ve, out->id_text, sizeof out->id_text);
            } else if (key_ok && strcmp(key, "rate_hz") == 0) {
                out->has_rate = true;
                if (!is_string && is_scalar) parse_number(vs, ve, out);
            }
            skip_ws(&c);
            if (c.p < c.end && *c.p == ',') {
                c.p++;
                continue;
            }
            if (c.p < c.end && *c.p == '}') {
                c.p++;
                break;
            }
            return -1;
        }
    }
    skip_ws(&c);
    return c.p == c.end ? 0 : -1;
}
