/* Every pause the Notecard needs, in one place, so that measurements on a real card
 * can tune them. Defaults follow note-c (n_lib.h, n_i2c.c, n_serial.c). */
#ifndef NOTEGW_TIMING_H
#define NOTEGW_TIMING_H
#include <stdint.h>

struct card_timing {
	unsigned i2c_chunk_max;        /* data bytes per I2C transfer: 253 (255 - header) */
	unsigned i2c_pre_io_us;        /* before every I2C transfer (note-c: ~6 ms)        */
	unsigned i2c_chunk_delay_ms;   /* after each written chunk (20)                   */
	unsigned segment_bytes;        /* segment size, I2C and serial (250)              */
	unsigned segment_delay_ms;     /* after each segment (250)                        */
	unsigned poll_ms;              /* between polls for a response (50)               */
	unsigned nack_delay_ms;        /* after an I2C NACK (1000)                        */
	unsigned reset_settle_ms;      /* after the reset newline (250)                   */
	unsigned reset_drain_ms;       /* drain window when resetting (500)               */
	unsigned reset_tries;          /* (10)                                            */
	unsigned byte_timeout_ms;      /* between bytes of a response (1000)              */
	unsigned response_timeout_ms;  /* default wait for a response to start (30000)    */
	unsigned long_timeout_ms;      /* web.*: (90000)                                   */
	unsigned retries;              /* attempts per request (5)                         */
	unsigned retry_delay_ms;       /* between attempts (500)                          */
};

/* note-c's numbers. */
extern const struct card_timing card_timing_default;
/* Scale every pause by pct/100 (tests run at a few percent; 100 is real). */
void card_timing_scaled(struct card_timing *out, unsigned pct);
#endif
