/* Unit tests for src/delivery.c: inbound notes from a real store offered to every
 * consuming plugin once per run, again after a reoffer (a reload), sealed ones
 * opened with our key or reported and kept. The plugin loader below it is replaced
 * by link-time stubs of the three calls delivery makes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto.h"
#include "delivery.h"
#include "plugins.h"
#include "store.h"

/* ---- stubs of the plugin loader ---------------------------------------------------- */

#define MAX_GOT 32
static struct {
	const char *consumers[4];
	size_t n_consumers;
	char name[MAX_GOT][16];
	int64_t id[MAX_GOT];
	char body[MAX_GOT][512];
	size_t n;
	char error[256];
	size_t errors;
} fake;

bool plugins_consumes_inbound(struct plugins *ps, const char **names, size_t max, size_t *n)
{
	*n = 0;
	for (size_t i = 0; i < fake.n_consumers && *n < max; i++)
		names[(*n)++] = fake.consumers[i];
	return *n > 0;
}

int plugins_inbound_one(struct plugins *ps, const char *name, const struct ngw_note *note)
{
	assert_true(fake.n < MAX_GOT);
	snprintf(fake.name[fake.n], sizeof(fake.name[0]), "%s", name);
	fake.id[fake.n] = note->id;
	snprintf(fake.body[fake.n], sizeof(fake.body[0]), "%s", note->body ? note->body : "");
	fake.n++;
	return 0;
}

void plugins_error(struct plugins *ps, const char *source, const char *error)
{
	snprintf(fake.error, sizeof(fake.error), "%s: %s", source, error);
	fake.errors++;
}

/* ---- fixture ------------------------------------------------------------------------ */

struct fx {
	char dir[64];
	struct store *st;
	struct delivery d;
};

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	char path[128];
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/ngw-delivery-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(path, sizeof(path), "%s/store.db", fx->dir);
	struct store_opts so = {0};
	assert_int_equal(store_open(path, &so, &fx->st), 0);
	fx->d.store = fx->st;
	fx->d.plugins = (struct plugins *)fx; /* never looked into: the stubs take it */
	memset(&fake, 0, sizeof(fake));
	fake.consumers[0] = "mqtt";
	fake.consumers[1] = "modbus";
	fake.n_consumers = 2;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	store_close(fx->st);
	nftw(fx->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

static int64_t add(struct fx *fx, const char *body, int64_t t)
{
	int64_t id = 0;
	assert_int_equal(store_inbound_add(fx->st, "cmd.qi", NULL, body, NULL, t, &id), 0);
	return id;
}

static size_t count_for(const char *name)
{
	size_t k = 0;
	for (size_t i = 0; i < fake.n; i++)
		k += strcmp(fake.name[i], name) == 0;
	return k;
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_each_consumer_once(void **state)
{
	struct fx *fx = *state;
	int64_t a = add(fx, "{\"n\":1}", 1700000000);
	int64_t b = add(fx, "{\"n\":2}", 1700000001);

	delivery_run(&fx->d);
	assert_int_equal(fake.n, 4);
	assert_int_equal(count_for("mqtt"), 2);
	assert_int_equal(count_for("modbus"), 2);
	/* oldest first, per consumer */
	assert_string_equal(fake.name[0], "mqtt");
	assert_int_equal(fake.id[0], a);
	assert_int_equal(fake.id[1], b);
	assert_string_equal(fake.body[0], "{\"n\":1}");

	/* not offered twice while the consumer runs (it marks delivery itself) */
	delivery_run(&fx->d);
	assert_int_equal(fake.n, 4);
	/* a new note is offered, alone */
	int64_t c = add(fx, "{\"n\":3}", 1700000002);
	delivery_run(&fx->d);
	assert_int_equal(fake.n, 6);
	assert_int_equal(fake.id[4], c);
}

/* A reload replaced mqtt: what it had not delivered is offered again, to it only. */
static void test_reoffer(void **state)
{
	struct fx *fx = *state;
	int64_t a = add(fx, "{\"n\":1}", 1700000000);
	int64_t b = add(fx, "{\"n\":2}", 1700000001);
	delivery_run(&fx->d);
	assert_int_equal(fake.n, 4);
	assert_int_equal(store_inbound_done(fx->st, "mqtt", a), 0);

	delivery_reoffer(&fx->d, "mqtt");
	fake.n = 0;
	delivery_run(&fx->d);
	assert_int_equal(fake.n, 1);
	assert_string_equal(fake.name[0], "mqtt");
	assert_int_equal(fake.id[0], b);
}

static void test_no_consumers(void **state)
{
	struct fx *fx = *state;
	add(fx, "{\"n\":1}", 1700000000);
	fake.n_consumers = 0;
	delivery_run(&fx->d);
	assert_int_equal(fake.n, 0);
}

static json_t *sealed_for(struct crypto_key *k, const char *plain)
{
	json_t *env = NULL;
	assert_int_equal(crypto_seal(k, plain, strlen(plain), &env), 0);
	return env;
}

/* A sealed note is opened for the plugins with our key; one sealed to another key
 * is reported and kept in the store, and the others still go. */
static void test_sealed(void **state)
{
	struct fx *fx = *state;
	struct crypto_key *ours = NULL, *theirs = NULL;
	assert_int_equal(crypto_key_generate(CRYPTO_KEY_P384, 0, &ours), 0);
	assert_int_equal(crypto_key_generate(CRYPTO_KEY_P384, 0, &theirs), 0);
	json_t *e1 = sealed_for(ours, "{\"secret\":1}");
	json_t *e2 = sealed_for(theirs, "{\"secret\":2}");
	char *t1 = json_dumps(e1, JSON_COMPACT), *t2 = json_dumps(e2, JSON_COMPACT);
	int64_t a = add(fx, t1, 1700000000);
	int64_t b = add(fx, t2, 1700000001);
	int64_t c = add(fx, "{\"plain\":3}", 1700000002);
	fake.n_consumers = 1;
	fx->d.key = ours;

	delivery_run(&fx->d);
	assert_int_equal(fake.n, 2);
	assert_int_equal(fake.id[0], a);
	assert_string_equal(fake.body[0], "{\"secret\":1}");
	assert_int_equal(fake.id[1], c);
	assert_string_equal(fake.body[1], "{\"plain\":3}");
	assert_int_equal(fake.errors, 1);
	assert_non_null(strstr(fake.error, "cannot be decrypted"));
	assert_non_null(strstr(fake.error, "kept in the store"));

	/* kept: still pending for the consumer */
	struct store_in **v = NULL;
	size_t n = 0;
	assert_int_equal(store_inbound_pending(fx->st, "mqtt", 0, &v, &n), 0);
	bool kept = false;
	for (size_t i = 0; i < n; i++)
		kept |= v[i]->id == b;
	store_in_list_free(v, n);
	assert_true(kept);

	/* without a key, envelopes pass as they are */
	fx->d.key = NULL;
	delivery_reoffer(&fx->d, "mqtt");
	fake.n = 0;
	delivery_run(&fx->d);
	assert_int_equal(fake.n, 3);
	assert_string_equal(fake.body[1], t2);

	free(t1);
	free(t2);
	json_decref(e1);
	json_decref(e2);
	crypto_key_free(ours);
	crypto_key_free(theirs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_each_consumer_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reoffer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_consumers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sealed, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
