/* Fuzz the Modbus plugin's client side: a device's answer, whatever its bytes,
 * goes through libmodbus 3.1.6 and the plugin's own checks (mb_run_job) without
 * reading or writing out of bounds, and a poll either fails or delivers exactly
 * the registers asked for. Byte 0 picks TCP or RTU and the block read; the rest is
 * the answer (the harness fixes the TCP transaction id / RTU CRC so it gets past
 * the framing checks and into the parsing). */
#include <modbus/modbus.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint16_t crc16(const uint8_t *p, size_t n)
{
	uint16_t crc = 0xFFFF;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
	}
	return crc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char name[] = "fuzz";
	struct mb_block blk;
	struct mb_device dev;
	struct mb_job *j;
	uint8_t frame[600];
	size_t n;
	int sv[2], connected = 1;
	modbus_t *ctx;
	int rtu;

	if (size < 1 || size > 500)
		return 0;
	rtu = data[0] & 1;
	blk.kind = (enum mb_kind)((data[0] >> 1) & 3);
	blk.addr = 0;
	blk.count = mb_kind_is_bits(blk.kind) ? 19 : 7;
	memset(&dev, 0, sizeof(dev));
	dev.name = name;
	dev.unit = 1;
	dev.timeout_ms = 20;
	dev.url.scheme = rtu ? MB_URL_RTU : MB_URL_TCP;
	dev.blocks = &blk;
	dev.n_blocks = 1;
	data++, size--;
	n = size;
	memcpy(frame, data, n);
	if (!rtu && n >= 4) {
		frame[0] = 0, frame[1] = 1; /* the first request's transaction id */
		frame[2] = 0, frame[3] = 0;
	}
	if (rtu) {
		uint16_t crc = crc16(frame, n);
		frame[n++] = (uint8_t)crc;
		frame[n++] = (uint8_t)(crc >> 8);
	}
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 0;
	ctx = rtu ? modbus_new_rtu("/dev/null", 9600, 'N', 8, 1) : modbus_new_tcp("127.0.0.1", 502);
	modbus_set_error_recovery(ctx, MODBUS_ERROR_RECOVERY_NONE);
	modbus_set_socket(ctx, sv[0]);
	/* the answer is waiting before the request goes out; then end of stream */
	if (write(sv[1], frame, n) < 0) {
		/* cannot happen with a fresh socketpair and < 600 bytes */
	}
	shutdown(sv[1], SHUT_WR);
	j = mb_job_new(MB_JOB_POLL, &dev);
	mb_run_job(ctx, &connected, j);
	if (j->fault == MB_OK && j->n_data != blk.count)
		abort();
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "fuzz_modbus_client: %s %s\n", mb_fault_name(j->fault), j->msg);
	mb_job_free(j);
	if (connected)
		modbus_close(ctx); /* closes sv[0] */
	modbus_free(ctx);
	close(sv[1]);
	return 0;
}
