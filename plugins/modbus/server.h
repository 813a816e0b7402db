/* The gateway's own Modbus TCP server, for a local PLC or SCADA: read-only input and
 * holding registers with the latest polled values and the gateway's state. Served
 * from the daemon's loop without blocking (frames are assembled and checked here;
 * libmodbus only formats the answer). The register map is in docs/modbus.md. */
#ifndef NOTEGW_MODBUS_SERVER_H
#define NOTEGW_MODBUS_SERVER_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "conf.h"

#define MB_MAP_VERSION      1
#define MB_MAP_DEVICES_BASE 100 /* one register per device: 0 unknown, 1 up, 2 down */
#define MB_MAP_MAX_DEVICES  900
#define MB_MAP_POINTS_BASE  1000 /* two registers (f32, high word first) per point  */

struct mb_server;

/* Listen on the conf's address. err gets the reason on failure. */
int mb_server_new(sd_event *ev, const struct mb_conf *c, struct mb_server **out, char *err,
                  size_t errlen);
void mb_server_free(struct mb_server *s);
/* Latest value of point index (struct mb_point.index); NaN = unknown. */
void mb_server_set_point(struct mb_server *s, unsigned index, double value);
void mb_server_set_device(struct mb_server *s, unsigned index, int state);
/* Gateway state from the host's status JSON (borrowed). */
void mb_server_set_status(struct mb_server *s, const char *status_json);
/* The registers as the server holds them, for tests: count words from addr. */
int mb_server_peek(struct mb_server *s, unsigned addr, unsigned count, uint16_t *out);
json_t *mb_server_stats(struct mb_server *s);
/* The actual port listened on (useful with port 0). */
int mb_server_port(struct mb_server *s);

/* Framing and checks of the server's requests, exposed for the fuzzer and tests.
 * frame_len: the length of the first complete Modbus TCP frame in buf, 0 when more
 * bytes are needed, -1 when buf does not start with a Modbus TCP header.
 * check: 0 when modbus_reply() may answer the frame, else the exception code. */
long mb_server_frame_len(const uint8_t *buf, size_t len);
int mb_server_check(const uint8_t *req, size_t len, int unit, unsigned nregs);

/* Gateway fields out of a status JSON object: tried paths in order, first found
 * wins. Exposed for unit tests. Missing values are -1. */
struct mb_gw_state {
	long long queued, connected, bars, last_sync;
};
void mb_gw_state_from_json(json_t *status, struct mb_gw_state *st);
#endif
