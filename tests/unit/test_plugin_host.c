/* Unit tests for src/plugin_host.c: the API the daemon hands plugins. Each call must
 * reach the one collaborator it is for, through the plugin_env the loader was
 * given, with the plugin's name where the daemon needs to know who asks. What lies
 * below (submit, the store's inbound mark, the link) is replaced by link-time stubs;
 * the configuration calls go through the real binder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "link.h"
#include "plugins-private.h"
#include "store.h"
#include "submit.h"

/* ---- stubs of what lies below the host API ---------------------------------------- */

static struct {
	char actor[32], file[32], body[64];
	int puts, sync_puts, obj_puts, flushes;
	json_t *obj;
	size_t key_len;
	const struct submit *submit;
	char consumer[32];
	int64_t done_id;
	const char *req;
	int requests;
	char *status;
	int reoffers;
} seen;

int submit_note(const struct submit *s, const char *actor, const char *file, const char *body,
                const void *payload, size_t payload_len, ngw_put_cb cb, void *ud, const char **why)
{
	seen.puts++;
	seen.submit = s;
	snprintf(seen.actor, sizeof(seen.actor), "%s", actor);
	snprintf(seen.file, sizeof(seen.file), "%s", file);
	snprintf(seen.body, sizeof(seen.body), "%s", body ? body : "");
	return 0;
}

int submit_note_once(const struct submit *s, const char *actor, const void *key, size_t key_len,
                     const char *file, const char *body, const void *payload, size_t payload_len,
                     ngw_put_cb cb, void *ud, const char **why)
{
	seen.puts++;
	seen.submit = s;
	snprintf(seen.actor, sizeof(seen.actor), "%s", actor);
	snprintf(seen.file, sizeof(seen.file), "%s", file);
	return 0;
}

int submit_note_sync(const struct submit *s, const char *actor, const char *file, const char *body,
                     const void *payload, size_t payload_len, const char **why)
{
	seen.sync_puts++;
	snprintf(seen.actor, sizeof(seen.actor), "%s", actor);
	*why = "store full";
	return -ENOSPC;
}

int submit_note_obj_once(const struct submit *s, const char *actor, const void *key, size_t key_len,
                         const char *file, json_t *body, const void *payload, size_t payload_len,
                         ngw_put_cb cb, void *ud, const char **why)
{
	seen.obj_puts++;
	seen.submit = s;
	seen.obj = body;
	seen.key_len = key ? key_len : 0;
	snprintf(seen.actor, sizeof(seen.actor), "%s", actor);
	snprintf(seen.file, sizeof(seen.file), "%s", file);
	return 0;
}

void submit_flush(const struct submit *s)
{
	seen.flushes++;
	seen.submit = s;
}

int store_inbound_done(struct store *st, const char *consumer, int64_t id)
{
	snprintf(seen.consumer, sizeof(seen.consumer), "%s", consumer);
	seen.done_id = id;
	return 0;
}

const char *store_gateway_id(struct store *st)
{
	return "0123456789abcdef";
}

int link_request(struct link *l, const char *req_json, ngw_reply_cb cb, void *ud)
{
	seen.requests++;
	seen.req = req_json;
	return 0;
}

static char *status_text(void *ud)
{
	return strdup(ud);
}

static void reoffer(void *ud, const char *consumer)
{
	seen.reoffers++;
}

/* ---- a loaded plugin, as the loader would leave it -------------------------------- */

static int emitted;
static char emitted_from[32];

static int demo_configure(struct ngw_plugin *self)
{
	return 0;
}

static void demo_on_emit(struct ngw_plugin *self, const char *from, const char *topic,
                         const char *json)
{
	emitted++;
	snprintf(emitted_from, sizeof(emitted_from), "%s", from);
}

static const struct ngw_plugin_desc demo_desc = {
    .abi = NGW_PLUGIN_ABI,
    .name = "demo",
    .configure = demo_configure,
    .on_emit = demo_on_emit,
};
static const struct ngw_plugin_desc other_desc = {
    .abi = NGW_PLUGIN_ABI,
    .name = "other",
    .configure = demo_configure,
    .on_emit = demo_on_emit,
};

struct fx {
	struct cfg *cfg;
	struct submit submit;
	struct plugin_env env;
	struct plugins ps;
	struct plugin demo, other;
};

static const char conf_text[] = "[daemon]\n"
                                "state_dir = /var/lib/notegw-test\n"
                                "[demo]\n"
                                "rate = 5\n"
                                "[demo.a]\n"
                                "[demo.b]\n";

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct cfg_diag diag = {0};
	struct cfg_doc *doc = cfg_doc_parse_string(conf_text, "test.conf", &diag);
	cfg_doc_claim(doc, "demo");
	cfg_doc_claim(doc, "demo.*");
	fx->cfg = cfg_from_doc(doc, "test.conf", &diag);
	assert_non_null(fx->cfg);
	assert_int_equal(diag.n, 0);
	fx->env = (struct plugin_env){
	    .cfg = fx->cfg,
	    .config_file = "test.conf",
	    .submit = &fx->submit,
	    .store = (struct store *)fx, /* only passed through to the stubs */
	    .status_text = status_text,
	    .reoffer = reoffer,
	    .ud = (void *)"{\"daemon\":{}}",
	};
	fx->ps.env = &fx->env;
	fx->demo = (struct plugin){
	    .pub.host = &plugin_host_api, .owner = &fx->ps, .desc = &demo_desc, .state = P_RUNNING};
	fx->other = (struct plugin){.pub.host = &plugin_host_api,
	                            .owner = &fx->ps,
	                            .desc = &other_desc,
	                            .state = P_RUNNING};
	fx->ps.v[0] = &fx->demo;
	fx->ps.v[1] = &fx->other;
	fx->ps.n = 2;
	memset(&seen, 0, sizeof(seen));
	emitted = 0;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	cfg_free(fx->cfg);
	free(fx);
	return 0;
}

static void test_notes_go_to_submit(void **state)
{
	struct fx *fx = *state;
	struct ngw_plugin *self = &fx->demo.pub;
	const char *why = NULL;

	assert_int_equal(self->host->abi, NGW_PLUGIN_ABI);
	assert_int_equal(
	    self->host->note_put(self, "data.qo", "{\"a\":1}", NULL, 0, NULL, NULL, &why), 0);
	assert_int_equal(seen.puts, 1);
	assert_ptr_equal(seen.submit, &fx->submit);
	assert_string_equal(seen.actor, "demo"); /* the log says who */
	assert_string_equal(seen.file, "data.qo");
	assert_string_equal(seen.body, "{\"a\":1}");

	assert_int_equal(self->host->note_put_sync(self, "data.qo", "{}", NULL, 0, &why), -ENOSPC);
	assert_int_equal(seen.sync_puts, 1);
	assert_string_equal(why, "store full");
}

/* Minor 2: a body the plugin parsed reaches submit as the same object (no text in
 * between, so nothing parses it again), with its delivery key; a flush asks submit
 * to commit now. */
static void test_parsed_bodies_and_flush(void **state)
{
	struct fx *fx = *state;
	struct ngw_plugin *self = &fx->demo.pub;
	const char *why = NULL;
	json_t *body = json_pack("{si}", "a", 1);

	assert_true((self->host->abi & 0xffff) >= 2);
	assert_non_null(self->host->note_put_json);
	assert_int_equal(
	    self->host->note_put_json(self, "k1", 2, "data.qo", body, NULL, 0, NULL, NULL, &why),
	    0);
	assert_int_equal(seen.obj_puts, 1);
	assert_ptr_equal(seen.obj, body);
	assert_int_equal(seen.key_len, 2);
	assert_string_equal(seen.actor, "demo");
	assert_string_equal(seen.file, "data.qo");
	assert_int_equal(seen.puts, 0);
	json_decref(body);

	self->host->note_flush(self);
	assert_int_equal(seen.flushes, 1);
	assert_ptr_equal(seen.submit, &fx->submit);
}

static void test_inbound_done_names_the_plugin(void **state)
{
	struct fx *fx = *state;
	struct ngw_plugin *self = &fx->other.pub;
	assert_int_equal(self->host->inbound_done(self, 42), 0);
	assert_string_equal(seen.consumer, "other");
	assert_int_equal(seen.done_id, 42);
}

static void test_card_request(void **state)
{
	struct fx *fx = *state;
	struct ngw_plugin *self = &fx->demo.pub;
	/* no link yet (before start): the card is not there */
	assert_int_equal(self->host->card_request(self, "{\"req\":\"card.version\"}", NULL, NULL),
	                 -ENODEV);
	assert_int_equal(seen.requests, 0);
	fx->env.link = (struct link *)fx;
	assert_int_equal(self->host->card_request(self, "{\"req\":\"card.version\"}", NULL, NULL),
	                 0);
	assert_int_equal(seen.requests, 1);
	assert_string_equal(seen.req, "{\"req\":\"card.version\"}");
}

static void test_status_and_state_dir(void **state)
{
	struct fx *fx = *state;
	struct ngw_plugin *self = &fx->demo.pub;
	char *s = self->host->status_json(self);
	assert_string_equal(s, "{\"daemon\":{}}");
	free(s);
	assert_string_equal(self->host->state_dir(self), "/var/lib/notegw-test");
	fx->env.cfg = NULL;
	assert_string_equal(self->host->state_dir(self), LOCALSTATEDIR "/lib/notegw");
}

/* the gateway id is the store's, and absent while no store is open (--check-config) */
static void test_gateway_id(void **state)
{
	struct fx *fx = *state;
	struct ngw_plugin *self = &fx->demo.pub;
	assert_true((self->host->abi & 0xffff) >= 2);
	assert_string_equal(self->host->gateway_id(self), "0123456789abcdef");
	fx->env.store = NULL;
	assert_null(self->host->gateway_id(self));
}

/* emit reaches the other running plugins, never the emitter itself */
static void test_emit(void **state)
{
	struct fx *fx = *state;
	struct ngw_plugin *self = &fx->demo.pub;
	self->host->emit(self, "modbus/result", "{}");
	assert_int_equal(emitted, 1);
	assert_string_equal(emitted_from, "demo");
	fx->other.state = P_STOPPED;
	self->host->emit(self, "modbus/result", "{}");
	assert_int_equal(emitted, 1);
}

struct demo_conf {
	long long rate;
};

/* Sections and binding go through the daemon's own binder, on the running
 * configuration (or the one a configure() is validating). */
static void test_config(void **state)
{
	struct fx *fx = *state;
	struct ngw_plugin *self = &fx->demo.pub;
	static const struct ngw_cfg_key keys[] = {
	    {"rate", NGW_CFG_INT, "1", 1, 100, NULL, offsetof(struct demo_conf, rate), NULL, 0},
	};
	const char **names = NULL;
	assert_int_equal(self->host->cfg_sections(self, "demo.*", &names), 2);
	assert_string_equal(names[0], "demo.a");
	assert_string_equal(names[1], "demo.b");
	free(names);

	struct demo_conf c = {0};
	assert_int_equal(self->host->cfg_bind(self, "demo", keys, 1, &c), 0);
	assert_int_equal(c.rate, 5);
	self->host->cfg_free(keys, 1, &c);

	/* while configure() runs, problems go to its diagnostics with FILE:LINE */
	struct cfg_diag diag = {0};
	fx->demo.diag = &diag;
	self->host->cfg_error(self, "demo", "rate", "too fast for %s", "this bus");
	fx->demo.diag = NULL;
	assert_int_equal(diag.n, 1);
	assert_non_null(strstr(diag.msgs[0], "test.conf:4"));
	assert_non_null(strstr(diag.msgs[0], "[demo] rate: too fast for this bus"));
	cfg_diag_clear(&diag);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_notes_go_to_submit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_parsed_bodies_and_flush, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inbound_done_names_the_plugin, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_card_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_status_and_state_dir, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gateway_id, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_emit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_config, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
