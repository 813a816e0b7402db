/* Fuzz the Modbus plugin's server side: framing and checks of requests from the
 * network, then libmodbus 3.1.6's modbus_reply() for whatever passes them (its
 * answers go into a socketpair). A crash here is a request that gets through. */
#include <fcntl.h>
#include <modbus/modbus.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NREGS 1010

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static modbus_t *ctx;
	static modbus_mapping_t *map;
	static int sv[2];
	uint8_t sink[512];
	size_t off = 0;

	if (!ctx) {
		ctx = modbus_new_tcp("127.0.0.1", 502);
		map = modbus_mapping_new(0, 0, NREGS, NREGS);
		if (!ctx || !map || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
			abort();
		fcntl(sv[1], F_SETFL, O_NONBLOCK);
		modbus_set_socket(ctx, sv[0]);
	}
	while (off < size) {
		long f = mb_server_frame_len(data + off, size - off);
		uint8_t *req;
		int exc;
		if (f <= 0)
			break;
		/* exactly the frame's bytes, so a read past it is caught */
		req = malloc((size_t)f);
		if (!req)
			break;
		memcpy(req, data + off, (size_t)f);
		exc = mb_server_check(req, (size_t)f, 1, NREGS);
		if (exc)
			modbus_reply_exception(ctx, req, (unsigned)exc);
		else
			modbus_reply(ctx, req, (int)f, map);
		free(req);
		while (read(sv[1], sink, sizeof(sink)) > 0)
			;
		off += (size_t)f;
	}
	return 0;
}
