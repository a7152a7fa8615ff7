/* Reading a host command: one flat JSON object {"cmd": NAME, "id": INT, ...args}. */
#ifndef FW_JSON_IN_H
#define FW_JSON_IN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FW_CMD_NAME_MAX 32
#define FW_CMD_ID_MAX 24

typedef struct {
    bool has_cmd;
    bool cmd_is_string;
    char cmd[FW_CMD_NAME_MAX + 1]; /* the name (unescaped), or the raw JSON text if not a string */
    bool has_id;                   /* id is a JSON scalar that fits: echoed as id_text */
    char id_text[FW_CMD_ID_MAX + 1];
    bool has_rate;
    bool rate_is_number;
    bool rate_is_whole;            /* a whole number in 0 .. 10^12 */
    uint64_t rate;
} fw_command;

/* Parse a command payload.  Returns 0 if text is a JSON object (unknown keys
 * and nested values are skipped), -1 if it is not (no reply is sent then). */
int fw_parse_command(const char *text, size_t n, fw_command *out);

#endif
