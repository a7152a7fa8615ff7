/* A small JSON writer for flat objects, compact like json.dumps(separators=(",", ":")). */
#ifndef FW_JSON_OUT_H
#define FW_JSON_OUT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    bool overflow; /* something did not fit: the text is unusable */
    bool need_comma;
} fw_json;

void fw_json_begin(fw_json *w, char *buf, size_t cap); /* writes "{" */
void fw_json_end(fw_json *w);                           /* writes "}" */
void fw_json_key(fw_json *w, const char *key);          /* "key": (with a comma before if needed) */
void fw_json_raw(fw_json *w, const char *text, size_t n);
void fw_json_string(fw_json *w, const char *s, size_t n); /* quoted and escaped */
void fw_json_u64(fw_json *w, uint64_t v);
void fw_json_bool(fw_json *w, bool v);
void fw_json_null(fw_json *w);
/* v_ms / 1000 as Python prints a float: "12.0", "12.5", "12.345". */
void fw_json_millis(fw_json *w, uint64_t v_ms);

#endif
