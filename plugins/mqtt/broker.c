/* notegw_broker: a mosquitto plugin (v5 interface) that commits every
 * <prefix>/out/<notefile> message into notegw's SQLite store before mosquitto
 * answers the publisher. mosquitto sends PUBACK only after MOSQ_EVT_MESSAGE returns,
 * so the publisher's own PUBACK means the note is durable in the store, whatever
 * happens to the broker afterwards (the client plugin can only promise that for its
 * PUBACK to the broker; the broker's copy is in between).
 *
 *   plugin /usr/lib/<triplet>/notegw/mosquitto/notegw_broker.so
 *   plugin_opt_store /var/lib/notegw/queue/store.db
 *   plugin_opt_prefix notecard          (default notecard)
 *   plugin_opt_max_payload 8192         (bytes, K/M suffix; default 8K)
 *   plugin_opt_max_size 256M            (match [store] max_size; default unlimited)
 *   plugin_opt_when_full drop-oldest    (match [store] when_full)
 *   plugin_opt_config /path/rules.conf  (default: notefiles.conf beside the store)
 *
 * Every message goes through the daemon's own intake (src/intake.c, compiled in):
 * the same notefile rule, body limits, satellite (ntn) check and urgent priority
 * as a note from any producer inside notegwd. This is the one sanctioned way into
 * the store that does not pass through notegwd.
 *
 * The [notefile.*] rules come from notefiles.conf beside the store, which notegwd
 * writes at every start and reload from its own configuration (main file and
 * conf.d): mosquitto reaches the queue directory through the notegw-store group
 * and needs no access to notegwd's configuration, which may name keys and a
 * password file. plugin_opt_config names another file of [notefile.*] sections;
 * "plugin_opt_config none" reads none. The file is looked at (one stat) before each
 * message and read again when it changed, so a notegwd reload reaches the broker
 * without a mosquitto restart. A default file not there (yet) means no rules; one
 * there but unreadable or wrong at start stops the plugin, as notegwd would stop:
 * rules silently left out would queue urgent notes as ordinary ones and satellite
 * notes the card can never send.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "cfg.h"
#include "intake.h"
#include "store.h"
#include "validate.h"

#define TOPIC_MAX 512

struct broker {
	mosquitto_plugin_id_t *id;
	struct store *st;
	char *path;
	char prefix[MQTT_PREFIX_MAX + 1];
	uint64_t max_payload;
	struct store_opts opts;
	struct cfg *cfg;  /* the [notefile.*] rules; NULL: none */
	char *rules;      /* the file they come from; NULL: plugin_opt_config none */
	bool rules_given; /* named by plugin_opt_config, not notefiles.conf */
	struct stat seen; /* that file as last read (st_ino 0: not there) */
	uint64_t queued, refused, failed;
};

static void report_refusal(struct broker *b, const char *topic, const char *why)
{
	char etopic[TOPIC_MAX];
	char *js = mqtt_error_json(topic, why);

	if (js && mqtt_topic_build(etopic, sizeof(etopic), b->prefix, "error", NULL) == 0)
		mosquitto_broker_publish_copy(NULL, etopic, (int)strlen(js), js, 1, false, NULL);
	else
		mosquitto_log_printf(MOSQ_LOG_ERR, "notegw: cannot report refusal of %s", topic);
	free(js);
}

/* Turn a refused message into the error report about it: same QoS, not retained,
 * topic <prefix>/error. mosquitto takes event_data's topic and payload as left here. */
static int rewrite_as_error(struct broker *b, struct mosquitto_evt_message *ed, const char *why)
{
	char etopic[TOPIC_MAX];
	char *js = mqtt_error_json(ed->topic, why);
	char *t = NULL, *p = NULL;

	if (js && mqtt_topic_build(etopic, sizeof(etopic), b->prefix, "error", NULL) == 0) {
		t = mosquitto_strdup(etopic);
		p = mosquitto_strdup(js);
	}
	free(js);
	if (!t || !p) {
		mosquitto_free(t);
		mosquitto_free(p);
		return MOSQ_ERR_NOMEM;
	}
#if LIBMOSQUITTO_VERSION_NUMBER < 2001000
	/* mosquitto 2.0 frees a replaced payload but not a replaced topic; 2.1 frees
	 * both itself. */
	mosquitto_free(ed->topic);
#endif
	ed->topic = t;
	ed->payload = p;
	ed->payloadlen = (uint32_t)strlen(p);
	ed->retain = false;
	return MOSQ_ERR_SUCCESS;
}

/* Read the rules file into b->cfg. Returns 0, -ENOENT when it is not there (b->cfg
 * left alone), or -EINVAL with every problem logged (b->cfg left alone). */
static int load_rules(struct broker *b)
{
	struct cfg_diag diag = {0};
	struct stat st;
	struct cfg *cfg;

	if (stat(b->rules, &st) < 0 && errno == ENOENT) {
		memset(&b->seen, 0, sizeof(b->seen));
		return -ENOENT;
	}
	/* notefiles.conf is whole as notegwd wrote it: no conf.d beside it is read (the
	 * queue directory is not a configuration directory); a file named by
	 * plugin_opt_config is read as notegwd reads its own, conf.d included. */
	struct cfg_doc *doc = cfg_doc_load(b->rules, b->rules_given ? NULL : "", &diag);
	cfg = doc ? cfg_from_doc(doc, b->rules, &diag) : NULL;
	if (doc && !cfg)
		cfg_doc_free(doc);
	for (size_t i = 0; i < diag.n; i++)
		mosquitto_log_printf(MOSQ_LOG_ERR, "notegw: notefile rules: %s", diag.msgs[i]);
	if (!cfg && diag.n == 0)
		mosquitto_log_printf(MOSQ_LOG_ERR, "notegw: notefile rules %s: cannot read it",
		                     b->rules);
	if (!cfg && access(b->rules, R_OK) < 0 && errno == EACCES)
		mosquitto_log_printf(MOSQ_LOG_ERR,
		                     "notegw: notefile rules %s: mosquitto's user may not read it "
		                     "(is it in group notegw-store?)",
		                     b->rules);
	cfg_diag_clear(&diag);
	if (!cfg)
		return -EINVAL;
	cfg_free(b->cfg);
	b->cfg = cfg;
	b->seen = st;
	return 0;
}

/* Before each message: the rules again if notegwd rewrote them (a rename gives a new
 * inode). A file gone or wrong now keeps the rules last read. */
static void refresh_rules(struct broker *b)
{
	struct stat st;

	if (!b->rules || stat(b->rules, &st) < 0)
		return;
	if (st.st_ino == b->seen.st_ino && st.st_dev == b->seen.st_dev &&
	    st.st_size == b->seen.st_size && st.st_mtim.tv_sec == b->seen.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == b->seen.st_mtim.tv_nsec)
		return;
	if (load_rules(b) == 0)
		mosquitto_log_printf(MOSQ_LOG_INFO, "notegw: notefile rules read again from %s",
		                     b->rules);
	else
		b->seen = st; /* logged once, not before every message */
}

/* At start: the rules file named, or notefiles.conf beside the store. */
static int open_rules(struct broker *b, bool given)
{
	const char *slash;
	size_t len;
	int r;

	if (!given) {
		slash = strrchr(b->path, '/');
		len = slash ? (size_t)(slash - b->path) + 1 : 0;
		b->rules = malloc(len + sizeof(INTAKE_RULES_FILE));
		if (!b->rules)
			return -ENOMEM;
		memcpy(b->rules, b->path, len);
		memcpy(b->rules + len, INTAKE_RULES_FILE, sizeof(INTAKE_RULES_FILE));
	}
	if (!b->rules)
		return 0; /* plugin_opt_config none */
	b->rules_given = given;
	r = load_rules(b);
	if (r == -ENOENT && !given) {
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
		                     "notegw: no %s yet (notegwd writes it when it starts): no "
		                     "notefile is urgent or satellite until then",
		                     b->rules);
		return 0;
	}
	if (r == -ENOENT)
		mosquitto_log_printf(MOSQ_LOG_ERR, "notegw: plugin_opt_config %s: no such file",
		                     b->rules);
	if (r == 0)
		mosquitto_log_printf(MOSQ_LOG_INFO, "notegw: notefile rules from %s", b->rules);
	return r;
}

static int on_message(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_message *ed = event_data;
	struct broker *b = userdata;
	const char *notefile = NULL, *why = NULL;
	const char *client = mosquitto_client_id(ed->client);
	json_t *obj = NULL;
	struct intake_note n = {0};
	int r;

	switch (mqtt_topic_classify(b->prefix, ed->topic, &notefile)) {
	case MQTT_TOPIC_OUT:
		break;
	case MQTT_TOPIC_PING: {
		/* notegwd with ingest = broker asks whether we are here: a client plugin
		 * that leaves out/ to us must learn when nobody takes it. */
		char pong[TOPIC_MAX];
		if (mqtt_topic_build(pong, sizeof(pong), b->prefix, "broker", "pong") == 0)
			mosquitto_broker_publish_copy(NULL, pong, (int)ed->payloadlen, ed->payload,
			                              1, false, NULL);
		return MOSQ_ERR_SUCCESS;
	}
	default:
		return MOSQ_ERR_SUCCESS;
	}
	r = mqtt_out_check_obj(notefile, ed->payload, ed->payloadlen, (size_t)b->max_payload, &obj,
	                       &why);
	if (r == 0) {
		refresh_rules(b);
		struct intake_rules rules = {.cfg = b->cfg};
		r = intake_prepare_obj(&rules, notefile, obj, 0, &n, &why);
	}
	json_decref(obj);
	if (r == 0) {
		/* Outside a batch store_enqueue commits by itself (WAL, synchronous=FULL):
		 * when it returns 0 the note survives a crash or a power cut. */
		r = store_enqueue(b->st, notefile, n.body, NULL, 0, n.prio, NULL);
		intake_note_clear(&n);
		if (r == 0) {
			b->queued++;
			/* The broker need not keep a retained copy: the note is in the store,
			 * and a retained out/ message would be replayed to every new
			 * subscriber. */
			ed->retain = false;
			return MOSQ_ERR_SUCCESS;
		}
		if (r != -ENOSPC && r != -EINVAL) {
			/* Not committed for a reason that may pass (a full disk, I/O, lock
			 * held too long): no PUBACK. mosquitto drops the publisher's
			 * connection; its QoS 1 message is sent again when it reconnects. */
			b->failed++;
			mosquitto_log_printf(MOSQ_LOG_ERR,
			                     "notegw: store could not commit %s from %s (%s): "
			                     "publisher not acknowledged",
			                     ed->topic, client ? client : "?",
			                     r == -EAGAIN ? "disk full" : strerror(-r));
			report_refusal(b, ed->topic,
			               "store could not commit the note; not acknowledged");
			return MOSQ_ERR_UNKNOWN;
		}
		/* -ENOSPC is max_size with refuse-new only: a full disk is -EAGAIN */
		why = r == -ENOSPC ? "store full" : "store refused the note";
	}
	/* Refused for good (bad notefile, not JSON, too large, too big for a satellite
	 * notefile, store full with refuse-new): report it and swallow the message.
	 * Returning an error would make mosquitto 2.0 drop the publisher's connection
	 * without PUBACK, and a persistent-session publisher would then send the same
	 * bad message forever. Instead the message is acknowledged and turned into the
	 * error report itself, so nothing of it is queued and nothing reaches out/
	 * subscribers. */
	b->refused++;
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "notegw: refused %s from %s: %s", ed->topic,
	                     client ? client : "?", why);
	return rewrite_as_error(b, ed, why);
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for (int i = 0; i < supported_version_count; i++)
		if (supported_versions[i] == 5)
			return 5;
	return -1;
}

static void broker_free(struct broker *b)
{
	if (!b)
		return;
	store_close(b->st);
	cfg_free(b->cfg);
	free(b->rules);
	free(b->path);
	free(b);
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *options, int option_count)
{
	struct broker *b = calloc(1, sizeof(*b));
	const char *why = NULL;
	bool config_given = false;
	int r;

	if (!b)
		return MOSQ_ERR_NOMEM;
	b->id = identifier;
	b->max_payload = 8192;
	b->opts.when_full = STORE_DROP_OLDEST;
	snprintf(b->prefix, sizeof(b->prefix), "notecard");
	for (int i = 0; i < option_count; i++) {
		const char *k = options[i].key, *v = options[i].value;
		if (strcmp(k, "store") == 0) {
			free(b->path);
			b->path = strdup(v);
		} else if (strcmp(k, "prefix") == 0) {
			if (mqtt_prefix_check(v, &why) < 0 ||
			    snprintf(b->prefix, sizeof(b->prefix), "%s", v) >=
			        (int)sizeof(b->prefix)) {
				mosquitto_log_printf(MOSQ_LOG_ERR,
				                     "notegw: plugin_opt_prefix %s: %s", v,
				                     why ? why : "too long");
				goto fail;
			}
		} else if (strcmp(k, "max_payload") == 0) {
			if (cfg_parse_size(v, &b->max_payload) < 0 || b->max_payload < 2) {
				mosquitto_log_printf(
				    MOSQ_LOG_ERR, "notegw: plugin_opt_max_payload %s: not a size",
				    v);
				goto fail;
			}
		} else if (strcmp(k, "max_size") == 0) {
			if (cfg_parse_size(v, &b->opts.max_size) < 0) {
				mosquitto_log_printf(
				    MOSQ_LOG_ERR, "notegw: plugin_opt_max_size %s: not a size", v);
				goto fail;
			}
		} else if (strcmp(k, "config") == 0) {
			config_given = true;
			free(b->rules);
			b->rules = strcmp(v, "none") == 0 ? NULL : strdup(v);
			if (strcmp(v, "none") != 0 && !b->rules)
				goto fail;
		} else if (strcmp(k, "when_full") == 0) {
			if (strcmp(v, "drop-oldest") == 0)
				b->opts.when_full = STORE_DROP_OLDEST;
			else if (strcmp(v, "refuse-new") == 0)
				b->opts.when_full = STORE_REFUSE_NEW;
			else {
				mosquitto_log_printf(MOSQ_LOG_ERR,
				                     "notegw: plugin_opt_when_full %s: expected "
				                     "drop-oldest or refuse-new",
				                     v);
				goto fail;
			}
		}
		/* Other plugin_opt_* belong to other plugins when per_listener_settings
		 * is off: mosquitto hands every plugin all of them. */
	}
	if (!b->path) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "notegw: plugin_opt_store is required "
		                                   "(the path of notegwd's store.db)");
		goto fail;
	}
	if (open_rules(b, config_given) < 0)
		goto fail;
	r = store_open(b->path, &b->opts, &b->st);
	if (r < 0) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "notegw: cannot open store %s: %s", b->path,
		                     strerror(-r));
		goto fail;
	}
	r = mosquitto_callback_register(identifier, MOSQ_EVT_MESSAGE, on_message, NULL, b);
	if (r != MOSQ_ERR_SUCCESS) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "notegw: cannot register for messages: %s",
		                     mosquitto_strerror(r));
		goto fail;
	}
	mosquitto_log_printf(MOSQ_LOG_INFO, "notegw: %s/out/<notefile> is committed to %s",
	                     b->prefix, b->path);
	*userdata = b;
	return MOSQ_ERR_SUCCESS;
fail:
	broker_free(b);
	return MOSQ_ERR_UNKNOWN;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	struct broker *b = userdata;

	if (!b)
		return MOSQ_ERR_SUCCESS;
	mosquitto_callback_unregister(b->id, MOSQ_EVT_MESSAGE, on_message, NULL);
	mosquitto_log_printf(MOSQ_LOG_INFO, "notegw: %llu queued, %llu refused, %llu not committed",
	                     (unsigned long long)b->queued, (unsigned long long)b->refused,
	                     (unsigned long long)b->failed);
	broker_free(b);
	return MOSQ_ERR_SUCCESS;
}
