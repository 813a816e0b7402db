/* Internal to the i2c transport: the few bus calls it makes, behind a table so that
 * unit tests and the bench can put a fake bus underneath the real framing code. */
#ifndef NOTEGW_NOTECARD_I2C_H
#define NOTEGW_NOTECARD_I2C_H
#include "notecard/transport.h"
#include <stddef.h>
#include <stdint.h>

struct card_i2c_bus {
	/* Open the adapter and select the address. Returns a handle >= 0 or -errno
	 * (-ENOENT/-ENODEV/-ENXIO: no such adapter). */
	int (*open)(void *ctx, const char *device, unsigned address);
	void (*close)(void *ctx, int h);
	/* One transfer: write wlen bytes, then (if rlen) read exactly rlen bytes, as a
	 * combined transaction. 0, or -errno (-EREMOTEIO/-EIO/-ENXIO: NACK, -EIO short). */
	int (*xfer)(void *ctx, int h, unsigned address, const uint8_t *w, size_t wlen, uint8_t *r,
	            size_t rlen);
	void *ctx;
};

/* The Linux i2c-dev bus (I2C_RDWR, falling back to I2C_SLAVE + read/write). */
extern const struct card_i2c_bus card_i2c_bus_linux;

/* The i2c transport over any bus; bus is copied. */
int card_transport_i2c_new_bus(const char *device, unsigned address, const struct card_timing *tm,
                               const struct card_clock *clk, const struct card_i2c_bus *bus,
                               struct card_transport **out);
#endif
