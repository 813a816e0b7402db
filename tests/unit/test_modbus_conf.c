/* Unit tests for plugins/modbus/conf.c and values.c: url and register syntax, the
 * cross-key checks (with FILE:LINE), write requests, change detection, JSON values. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../fakehost/fakehost.h"
#include "bus.h"
#include "conf.h"
#include "server.h"
#include "values.h"

static void test_url(void **state)
{
	struct mb_url u;
	char err[160];

	assert_int_equal(mb_url_parse("tcp://10.0.0.5:1502", &u, err, sizeof(err)), 0);
	assert_int_equal(u.scheme, MB_URL_TCP);
	assert_string_equal(u.host, "10.0.0.5");
	assert_string_equal(u.port, "1502");
	assert_int_equal(mb_url_parse("tcp://plc.local", &u, err, sizeof(err)), 0);
	assert_string_equal(u.port, "502");
	assert_int_equal(mb_url_parse("tcp://[::1]:5020", &u, err, sizeof(err)), 0);
	assert_string_equal(u.host, "::1");
	assert_string_equal(u.port, "5020");
	assert_int_equal(mb_url_parse("rtu:/dev/ttyUSB0", &u, err, sizeof(err)), 0);
	assert_int_equal(u.scheme, MB_URL_RTU);
	assert_string_equal(u.path, "/dev/ttyUSB0");
	assert_int_equal(u.baud, 9600);
	assert_int_equal(u.parity, 'N');
	assert_int_equal(u.data, 8);
	assert_int_equal(u.stop, 1);
	assert_false(u.rs485);
	assert_int_equal(mb_url_parse("rtu:/dev/ttyS1?baud=115200&parity=e&data=7&stop=2&rs485=1",
	                              &u, err, sizeof(err)),
	                 0);
	assert_int_equal(u.baud, 115200);
	assert_int_equal(u.parity, 'E');
	assert_int_equal(u.data, 7);
	assert_int_equal(u.stop, 2);
	assert_true(u.rs485);

	assert_int_equal(mb_url_parse("udp://x", &u, err, sizeof(err)), -EINVAL);
	assert_int_equal(mb_url_parse("tcp://", &u, err, sizeof(err)), -EINVAL);
	assert_int_equal(mb_url_parse("tcp://h:0", &u, err, sizeof(err)), -EINVAL);
	assert_int_equal(mb_url_parse("tcp://h:70000", &u, err, sizeof(err)), -EINVAL);
	assert_int_equal(mb_url_parse("tcp://::1:502", &u, err, sizeof(err)), -EINVAL);
	assert_int_equal(mb_url_parse("tcp://h/path", &u, err, sizeof(err)), -EINVAL);
	assert_int_equal(mb_url_parse("rtu:ttyUSB0", &u, err, sizeof(err)), -EINVAL);
	assert_int_equal(mb_url_parse("rtu:/dev/x?baud=9601", &u, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "baud"));
	assert_int_equal(mb_url_parse("rtu:/dev/x?parity=X", &u, err, sizeof(err)), -EINVAL);
	assert_int_equal(mb_url_parse("rtu:/dev/x?stop=3", &u, err, sizeof(err)), -EINVAL);
	assert_int_equal(mb_url_parse("rtu:/dev/x?data=9", &u, err, sizeof(err)), -EINVAL);
	assert_int_equal(mb_url_parse("rtu:/dev/x?speed=1", &u, err, sizeof(err)), -EINVAL);
	assert_int_equal(mb_url_parse("rtu:/dev/x?baud", &u, err, sizeof(err)), -EINVAL);
}

static void test_register_and_server(void **state)
{
	enum mb_kind k;
	uint16_t a;
	bool on;
	char err[160], host[64], port[8];

	assert_int_equal(mb_register_parse("holding:0", &k, &a, err, sizeof(err)), 0);
	assert_int_equal(k, MB_HOLDING);
	assert_int_equal(mb_register_parse("discrete:65535", &k, &a, err, sizeof(err)), 0);
	assert_int_equal(a, 65535);
	assert_int_equal(mb_register_parse("holding:65536", &k, &a, err, sizeof(err)), -EINVAL);
	assert_int_equal(mb_register_parse("holding:-1", &k, &a, err, sizeof(err)), -EINVAL);
	assert_int_equal(mb_register_parse("holdings:1", &k, &a, err, sizeof(err)), -EINVAL);
	assert_int_equal(mb_register_parse("40001", &k, &a, err, sizeof(err)), -EINVAL);

	assert_int_equal(mb_server_parse("off", &on, host, 64, port, 8, err, 160), 0);
	assert_false(on);
	assert_int_equal(mb_server_parse("5020", &on, host, 64, port, 8, err, 160), 0);
	assert_true(on);
	assert_string_equal(host, "127.0.0.1"); /* loopback unless told otherwise */
	assert_string_equal(port, "5020");
	assert_int_equal(mb_server_parse("on", &on, host, 64, port, 8, err, 160), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_string_equal(port, "502");
	assert_int_equal(mb_server_parse("0.0.0.0:1502", &on, host, 64, port, 8, err, 160), 0);
	assert_string_equal(host, "0.0.0.0");
	assert_int_equal(mb_server_parse("[::1]:1502", &on, host, 64, port, 8, err, 160), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(mb_server_parse("x:y", &on, host, 64, port, 8, err, 160), -EINVAL);
}

static const char good_conf[] = "[modbus]\n"
                                "enabled = true\n"
                                "server = 15020\n"
                                "[modbus.meter1]\n"
                                "url = tcp://127.0.0.1:1502\n"
                                "interval = 2s\n"
                                "notefile = meter.qo\n"
                                "report = change\n"
                                "[modbus.meter1.voltage]\n"
                                "register = holding:0\n"
                                "scale = 0.1\n"
                                "deadband = 0.5\n"
                                "[modbus.meter1.energy]\n"
                                "register = holding:1\n"
                                "type = u32_le\n"
                                "[modbus.meter1.setpoint]\n"
                                "register = holding:10\n"
                                "type = i16\n"
                                "writable = true\n"
                                "min = -50\n"
                                "max = 50\n"
                                "[modbus.meter1.temp]\n"
                                "register = input:0\n"
                                "type = f32\n"
                                "[modbus.meter1.relay]\n"
                                "register = coil:3\n"
                                "writable = yes\n"
                                "[modbus.meter1.alarm]\n"
                                "register = discrete:0\n";

static struct fakehost host;

static struct mb_conf *load(const char *text, int expect_rc)
{
	struct mb_conf *c = NULL;
	assert_int_equal(fakehost_init(&host, NULL, text, NULL), 0);
	assert_int_equal(mb_conf_load(&host.plugin, &c), expect_rc);
	return c;
}

static void test_conf_good(void **state)
{
	struct mb_conf *c = load(good_conf, 0);
	struct mb_device *d;
	struct mb_point *p;

	assert_int_equal(host.errors, 0);
	assert_true(c->enabled);
	assert_true(c->server_on);
	assert_string_equal(c->server_host, "127.0.0.1");
	assert_string_equal(c->write_notefile, "modbus.qi");
	assert_string_equal(c->result_notefile, "modbus.qo");
	assert_int_equal(c->n_devices, 1);
	assert_int_equal(c->n_points, 6);
	d = mb_conf_device(c, "meter1");
	assert_non_null(d);
	assert_int_equal(d->interval_ms, 2000);
	assert_int_equal(d->timeout_ms, 1000);
	assert_int_equal(d->report, MB_REPORT_CHANGE);
	assert_int_equal(d->unit, 1);
	/* holding 0..2 one read, holding 10 another, input 0..1, coil 3, discrete 0 */
	assert_int_equal(d->n_blocks, 5);
	p = mb_device_point(d, "relay");
	assert_int_equal(p->type, MB_BOOL); /* bits default to bool */
	assert_true(p->writable);
	p = mb_device_point(d, "voltage");
	assert_int_equal(p->type, MB_U16); /* registers default to u16 */
	assert_true(p->scale == 0.1);
	p = mb_device_point(d, "energy");
	assert_int_equal(p->order, MB_ORDER_LE);
	assert_int_equal(p->where.block, 0);
	assert_int_equal(p->where.offset, 1);
	mb_conf_free(c);
	fakehost_fini(&host);
}

/* each bad config: the message and the line it must point at */
static void expect_error(const char *text, const char *what, const char *where)
{
	struct mb_conf *c = load(text, -EINVAL);
	assert_null(c);
	assert_true(host.errors > 0);
	if (!strstr(host.last_error, what) || !strstr(host.last_error, where))
		fail_msg("want '%s' at '%s', got: %s", what, where, host.last_error);
	fakehost_fini(&host);
}

static void test_conf_errors(void **state)
{
	expect_error("[modbus.m]\nurl = tcp://h:99999\n[modbus.m.p]\nregister = holding:0\n",
	             "bad port", "test.conf:2:");
	expect_error("[modbus.m]\nurl = tcp://h\n[modbus.m.p]\nregister = coil:0\ntype = u16\n",
	             "must be bool", "test.conf:5:");
	expect_error("[modbus.m]\nurl = tcp://h\n[modbus.m.p]\nregister = holding:65535\n"
	             "type = f32\n",
	             "past 65535", "test.conf:4:");
	expect_error("[modbus.m]\nurl = tcp://h\n[modbus.m.a]\nregister = holding:4\ntype = u32\n"
	             "[modbus.m.b]\nregister = holding:5\n",
	             "overlaps point 'a'", "test.conf:7:");
	expect_error(
	    "[modbus.m]\nurl = tcp://h\n[modbus.m.p]\nregister = input:0\nwritable = true\n",
	    "read-only", "test.conf:5:");
	expect_error("[modbus.m]\nurl = tcp://h\n[modbus.x.p]\nregister = input:0\n",
	             "unknown device 'x'", "test.conf:3:");
	expect_error("[modbus.m]\nurl = tcp://h\n", "no points", "test.conf:1:");
	expect_error("[modbus.m]\nurl = rtu:/dev/ttyS0\nunit = 0\n[modbus.m.p]\n"
	             "register = holding:0\n",
	             "1-247", "test.conf:3:");
	expect_error("[modbus.m]\nurl = tcp://h\nunit = 250\n[modbus.m.p]\nregister = holding:0\n",
	             "0-247 or 255", "test.conf:3:");
	expect_error("[modbus.a]\nurl = rtu:/dev/ttyS0\n[modbus.a.p]\nregister = holding:0\n"
	             "[modbus.b]\nurl = rtu:/dev/ttyS0?baud=19200\nunit = 2\n[modbus.b.p]\n"
	             "register = holding:0\n",
	             "other line settings", "test.conf:6:");
	expect_error("[modbus.a]\nurl = rtu:/dev/ttyS0\n[modbus.a.p]\nregister = holding:0\n"
	             "[modbus.b]\nurl = rtu:/dev/ttyS0\n[modbus.b.p]\nregister = holding:0\n",
	             "also device 'a'", "test.conf:5:");
	expect_error("[modbus.m]\nurl = tcp://h\n[modbus.m.p]\nregister = holding:0\nmin = 5\n"
	             "max = 1\n",
	             "above max", "test.conf:5:");
	expect_error("[modbus.m]\nurl = tcp://h\n[modbus.m.p]\nregister = holding:0\nscale = 0\n",
	             "nonzero", "test.conf:5:");
	expect_error(
	    "[modbus.m]\nurl = tcp://h\n[modbus.m.p]\nregister = holding:0\ntype = u16_le\n",
	    "unknown type", "test.conf:5:");
	expect_error("[modbus]\nserver = nowhere:port\n", "bad port", "test.conf:2:");
	expect_error("[modbus]\nresult_notefile = results.qi\n", ".qo", "test.conf:2:");
	expect_error(
	    "[modbus.m]\nurl = tcp://h\n[modbus.m.p]\nregister = holding:0\ncolour = red\n",
	    "unknown key", "test.conf:5:");
}

static void test_values(void **state)
{
	struct mb_conf *c = load(good_conf, 0);
	struct mb_device *d = mb_conf_device(c, "meter1");
	struct mb_job *j = mb_job_new(MB_JOB_POLL, d);
	struct mb_point *volt = mb_device_point(d, "voltage"),
	                *energy = mb_device_point(d, "energy");
	struct mb_point *temp = mb_device_point(d, "temp"), *relay = mb_device_point(d, "relay");
	json_t *v;

	/* blocks: holding 0..2, holding 10, input 0..1, coil 3, discrete 0 */
	assert_int_equal(j->n_data, 3 + 1 + 2 + 1 + 1);
	j->data[0] = 2301;
	j->data[1] = 0x5678; /* energy u32_le = 0x12345678 */
	j->data[2] = 0x1234;
	j->data[4] = 0x7FC0; /* temp f32 NaN */
	j->data[5] = 0;
	j->data[6] = 1;
	assert_true(fabs(mb_point_value(d, volt, j->data) - 230.1) < 1e-9);
	assert_true(mb_point_value(d, energy, j->data) == 305419896.0);
	assert_true(isnan(mb_point_value(d, temp, j->data)));
	assert_true(mb_point_value(d, relay, j->data) == 1);

	v = mb_value_json(temp, NAN);
	assert_true(json_is_null(v)); /* NaN goes up as null */
	json_decref(v);
	v = mb_value_json(relay, 1);
	assert_true(json_is_true(v));
	json_decref(v);
	v = mb_value_json(energy, 305419896.0);
	assert_true(json_is_integer(v));
	json_decref(v);
	v = mb_value_json(volt, 230.1);
	assert_true(json_is_real(v));
	json_decref(v);

	/* deadband 0.5 on voltage */
	assert_true(mb_changed(volt, false, 0, 230));
	assert_false(mb_changed(volt, true, 230, 230.5));
	assert_true(mb_changed(volt, true, 230, 230.6));
	assert_true(mb_changed(volt, true, 230, 229.4));
	assert_true(mb_changed(temp, true, 1, NAN));
	assert_false(mb_changed(temp, true, NAN, NAN));
	assert_true(mb_changed(energy, true, 1, 2)); /* deadband 0: any move */
	assert_false(mb_changed(energy, true, 2, 2));
	mb_job_free(j);
	mb_conf_free(c);
	fakehost_fini(&host);
}

static void test_write_parse(void **state)
{
	struct mb_conf *c = load(good_conf, 0);
	struct mb_write w;
	char err[200];

	assert_int_equal(mb_write_parse(c,
	                                "{\"device\":\"meter1\",\"point\":\"relay\",\"value\":1}",
	                                &w, err, sizeof(err)),
	                 0);
	assert_int_equal(w.words[0], 1);
	assert_int_equal(
	    mb_write_parse(c, "{\"device\":\"meter1\",\"point\":\"relay\",\"value\":false}", &w,
	                   err, sizeof(err)),
	    0);
	assert_int_equal(w.words[0], 0);
	assert_int_equal(
	    mb_write_parse(c, "{\"device\":\"meter1\",\"point\":\"setpoint\",\"value\":-7}", &w,
	                   err, sizeof(err)),
	    0);
	assert_int_equal((int16_t)w.words[0], -7);

	assert_int_equal(mb_write_parse(c,
	                                "{\"device\":\"meter1\",\"point\":\"voltage\",\"value\":1}",
	                                &w, err, sizeof(err)),
	                 -EPERM);
	assert_non_null(strstr(err, "not writable"));
	assert_int_equal(
	    mb_write_parse(c, "{\"device\":\"meter1\",\"point\":\"setpoint\",\"value\":51}", &w,
	                   err, sizeof(err)),
	    -ERANGE);
	assert_non_null(strstr(err, "outside its range"));
	assert_int_equal(
	    mb_write_parse(c, "{\"device\":\"meter1\",\"point\":\"setpoint\",\"value\":1.5}", &w,
	                   err, sizeof(err)),
	    -ERANGE);
	assert_int_equal(mb_write_parse(c,
	                                "{\"device\":\"meter1\",\"point\":\"relay\",\"value\":2}",
	                                &w, err, sizeof(err)),
	                 -ERANGE);
	assert_int_equal(
	    mb_write_parse(c, "{\"device\":\"meter1\",\"point\":\"relay\",\"value\":\"on\"}", &w,
	                   err, sizeof(err)),
	    -EINVAL);
	assert_int_equal(mb_write_parse(c,
	                                "{\"device\":\"meter2\",\"point\":\"relay\",\"value\":1}",
	                                &w, err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "no device"));
	assert_int_equal(mb_write_parse(c, "{\"device\":\"meter1\",\"point\":\"x\",\"value\":1}",
	                                &w, err, sizeof(err)),
	                 -EINVAL);
	assert_int_equal(mb_write_parse(c, "[1]", &w, err, sizeof(err)), -EINVAL);
	assert_int_equal(mb_write_parse(c, "{\"device\":\"meter1\"}", &w, err, sizeof(err)),
	                 -EINVAL);
	assert_int_equal(mb_write_parse(c, NULL, &w, err, sizeof(err)), -EINVAL);
	mb_conf_free(c);
	fakehost_fini(&host);
}

static void test_gw_state(void **state)
{
	struct mb_gw_state g;
	json_t *st = json_loads("{\"store\":{\"queued\":12},\"notecard\":{\"connected\":true,"
	                        "\"bars\":3},\"hub\":{\"last_sync\":1700000000}}",
	                        0, NULL);
	mb_gw_state_from_json(st, &g);
	assert_int_equal(g.queued, 12);
	assert_int_equal(g.connected, 1);
	assert_int_equal(g.bars, 3);
	assert_int_equal(g.last_sync, 1700000000);
	json_decref(st);
	st = json_loads("{}", 0, NULL);
	mb_gw_state_from_json(st, &g);
	assert_int_equal(g.queued, -1);
	assert_int_equal(g.bars, -1);
	json_decref(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_url),       cmocka_unit_test(test_register_and_server),
	    cmocka_unit_test(test_conf_good), cmocka_unit_test(test_conf_errors),
	    cmocka_unit_test(test_values),    cmocka_unit_test(test_write_parse),
	    cmocka_unit_test(test_gw_state),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
