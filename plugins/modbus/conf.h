/* The Modbus plugin's configuration: [modbus], [modbus.<dev>], [modbus.<dev>.<point>]
 * bound through the host's table-driven parser, then cross-checked into the
 * structures the poller runs from (immutable once configured). */
#ifndef NOTEGW_MODBUS_CONF_H
#define NOTEGW_MODBUS_CONF_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decode.h"
#include "notegw/plugin.h"
#include "plan.h"

enum mb_report { MB_REPORT_ALWAYS, MB_REPORT_CHANGE };

/* Where a device is: parsed from its url. */
struct mb_url {
	enum { MB_URL_TCP, MB_URL_RTU } scheme;
	char host[256]; /* tcp: name or address (brackets stripped from IPv6) */
	char port[8];   /* tcp: service, default "502"                        */
	char path[256]; /* rtu: the serial device                             */
	int baud;       /* rtu: default 9600                                  */
	char parity;    /* 'N', 'E' or 'O'; default 'N'                       */
	int data, stop; /* default 8, 1                                       */
	bool rs485;     /* ask the port for RS-485 mode (TIOCSRS485)          */
};

/* Parse "tcp://host[:port]" or "rtu:/dev/tty?baud=..&parity=..&data=..&stop=..&rs485=..".
 * 0 or -EINVAL with a reason in err. */
int mb_url_parse(const char *s, struct mb_url *u, char *err, size_t errlen);

/* Parse "holding:40" into kind and address. 0 or -EINVAL with a reason. */
int mb_register_parse(const char *s, enum mb_kind *kind, uint16_t *addr, char *err, size_t errlen);

/* Parse the server key: "off" (-> *on = false), "on" (127.0.0.1:502), "PORT"
 * (127.0.0.1:PORT), "HOST:PORT", "[v6]:PORT". 0 or -EINVAL. */
int mb_server_parse(const char *s, bool *on, char *host, size_t hostlen, char *port, size_t portlen,
                    char *err, size_t errlen);

struct mb_point {
	char *name;
	char *section; /* for messages                                   */
	enum mb_kind kind;
	uint16_t addr;
	enum mb_type type;
	enum mb_order order;
	double scale, offset, deadband;
	bool writable;
	bool has_min, has_max;
	double min, max;
	struct mb_where where; /* filled by the planner                  */
	unsigned index;        /* position among all points (server map)   */
};

struct mb_device {
	char *name;
	char *section;
	char *url_text;
	struct mb_url url;
	int unit;
	uint64_t interval_ms, timeout_ms, backoff_ms, backoff_max_ms;
	unsigned gap;
	unsigned down_after;
	char *notefile;
	enum mb_report report;
	struct mb_point *points;
	size_t n_points;
	struct mb_block *blocks;
	size_t n_blocks;
	unsigned index; /* position among devices */
};

struct mb_conf {
	bool enabled;
	char *write_notefile, *result_notefile;
	bool server_on;
	char server_host[256], server_port[8];
	int server_unit;
	struct mb_device *devices;
	size_t n_devices;
	size_t n_points; /* over all devices */
};

/* Bind and check everything; problems go through host->cfg_error (FILE:LINE).
 * 0 with *out (caller frees with mb_conf_free), -EINVAL, or -ENOMEM. */
int mb_conf_load(struct ngw_plugin *self, struct mb_conf **out);
void mb_conf_free(struct mb_conf *c);
struct mb_device *mb_conf_device(const struct mb_conf *c, const char *name);
struct mb_point *mb_device_point(const struct mb_device *d, const char *name);
#endif
