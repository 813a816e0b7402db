/* mqtt plugin: the gateway as an MQTT client of a local broker (libmosquitto). This
 * file is the plugin itself: [mqtt] configuration, start/stop/reload, what the host
 * tells it (inbound notes on <prefix>/in/<file>, marked delivered on the broker's
 * PUBACK; status; env; errors; emits). The connection and its events live in
 * session.c, out/ and req handling in ingest.c. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "mqtt-private.h"
#include "notegw/plugin.h"
#include "validate.h"

#define PASSWORD_MAX 4096

static const char *const protocol_names[] = {"3.1.1", "5", NULL};
static const char *const ingest_names[] = {"client", "broker", NULL};

/* A share name is one topic level (MQTT 5 4.8.2: no '/', '+' or '#'), short enough
 * that $share/<name>/<prefix>/out/# stays well inside TOPIC_MAX. */
static int check_share_group(const char *v, char *err, size_t errlen)
{
	if (!*v || strpbrk(v, "/+#") || strlen(v) > MQTT_SHARE_GROUP_MAX) {
		snprintf(err, errlen,
		         "'%s' is not a share group name: one topic level of 1 to %d bytes, "
		         "without '/', '+' or '#'",
		         v, MQTT_SHARE_GROUP_MAX);
		return -1;
	}
	return 0;
}

static const struct ngw_cfg_key keys[] = {
    NGW_CFG_KEY(struct mqtt_conf, "enabled", NGW_CFG_BOOL, "true", enabled),
    NGW_CFG_KEY(struct mqtt_conf, "host", NGW_CFG_STR, "localhost", host),
    NGW_CFG_KEY(struct mqtt_conf, "port", NGW_CFG_INT, "1883", port, .min = 1, .max = 65535),
    NGW_CFG_KEY(struct mqtt_conf, "prefix", NGW_CFG_STR, "notecard", prefix),
    NGW_CFG_KEY(struct mqtt_conf, "client_id", NGW_CFG_STR, NULL, client_id),
    NGW_CFG_KEY(struct mqtt_conf, "protocol", NGW_CFG_ENUM, "3.1.1", protocol,
                .choices = protocol_names),
    NGW_CFG_KEY(struct mqtt_conf, "keepalive", NGW_CFG_DURATION, "60s", keepalive, .min = 5000,
                .max = 65535000),
    NGW_CFG_KEY(struct mqtt_conf, "tls", NGW_CFG_BOOL, "false", tls),
    NGW_CFG_KEY(struct mqtt_conf, "ca_file", NGW_CFG_STR, NULL, ca_file),
    NGW_CFG_KEY(struct mqtt_conf, "cert_file", NGW_CFG_STR, NULL, cert_file),
    NGW_CFG_KEY(struct mqtt_conf, "key_file", NGW_CFG_STR, NULL, key_file),
    NGW_CFG_KEY(struct mqtt_conf, "insecure", NGW_CFG_BOOL, "false", insecure),
    NGW_CFG_KEY(struct mqtt_conf, "username", NGW_CFG_STR, NULL, username),
    NGW_CFG_KEY(struct mqtt_conf, "password_file", NGW_CFG_STR, NULL, password_file),
    /* QoS 0 would let the broker drop what we promise to keep: 1 or 2 only. */
    NGW_CFG_KEY(struct mqtt_conf, "qos", NGW_CFG_INT, "1", qos, .min = 1, .max = 2),
    /* 8 KiB: a note body must travel in one note.add request; at the Notecard's
     * I2C pacing (250 bytes per 250 ms) 8 KiB already holds the bus ~8 s, and
     * the card's own transfer unit (dfu.get chunks) is 8192 bytes. */
    NGW_CFG_KEY(struct mqtt_conf, "max_payload", NGW_CFG_SIZE, "8K", max_payload, .min = 2,
                .max = 1 << 20),
    NGW_CFG_KEY(struct mqtt_conf, "raw_requests", NGW_CFG_BOOL, "false", raw_requests),
    NGW_CFG_KEY(struct mqtt_conf, "reconnect_min", NGW_CFG_DURATION, "1s", reconnect_min, .min = 10,
                .max = 3600000),
    NGW_CFG_KEY(struct mqtt_conf, "reconnect_max", NGW_CFG_DURATION, "60s", reconnect_max,
                .min = 10, .max = 3600000),
    NGW_CFG_KEY(struct mqtt_conf, "session_expiry", NGW_CFG_DURATION, "0", session_expiry, .min = 0,
                .max = 4294967000LL),
    NGW_CFG_KEY(struct mqtt_conf, "ingest", NGW_CFG_ENUM, "client", ingest,
                .choices = ingest_names),
    NGW_CFG_KEY(struct mqtt_conf, "share_group", NGW_CFG_STR, NULL, share_group,
                .check = check_share_group),
    /* Long enough that a card re-enumerating (a few seconds) does not shake the
     * group; short enough that the site's messages do not pile up here meanwhile. */
    NGW_CFG_KEY(struct mqtt_conf, "share_leave_after", NGW_CFG_DURATION, "60s", share_leave_after,
                .min = 1000, .max = 86400000),
};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

/* ---- configuration --------------------------------------------------------------- */

static void mqtt_free(struct mqtt *m)
{
	if (!m)
		return;
	if (m->conf_bound)
		m->self->host->cfg_free(keys, N_KEYS, &m->conf);
	free(m->client_id);
	if (m->password) {
		explicit_bzero(m->password, strlen(m->password));
		free(m->password);
	}
	free(m->status);
	free(m->mid_ids);
	mqtt_free_held(m);
	free(m);
}

static int mqtt_configure(struct ngw_plugin *self)
{
	const struct ngw_host_api *h = self->host;
	struct mqtt *m = calloc(1, sizeof(*m));
	const char *why;
	char host[256];
	int bad = 0, r;

	if (!m)
		return -ENOMEM;
	m->self = self;
	m->io_fd = -1;
	m->held_tail = &m->held;
	m->broker_plugin = -1;
	/* Bound strings are ours to free even when binding fails: destroy() does. */
	r = h->cfg_bind(self, "mqtt", keys, N_KEYS, &m->conf);
	m->conf_bound = true;
	self->priv = m;
	if (r < 0)
		return -EINVAL;
	if (mqtt_prefix_check(m->conf.prefix, &why) < 0) {
		h->cfg_error(self, "mqtt", "prefix", "%s", why);
		bad = 1;
	}
	if (m->conf.reconnect_min > m->conf.reconnect_max) {
		h->cfg_error(self, "mqtt", "reconnect_min", "reconnect_min is above reconnect_max");
		bad = 1;
	}
	if (!m->conf.cert_file != !m->conf.key_file) {
		h->cfg_error(self, "mqtt", m->conf.cert_file ? "cert_file" : "key_file",
		             "cert_file and key_file go together");
		bad = 1;
	}
	if (!m->conf.tls && (m->conf.ca_file || m->conf.cert_file || m->conf.insecure)) {
		h->cfg_error(self, "mqtt", "tls", "TLS settings given but tls = false");
		bad = 1;
	}
	if (m->conf.password_file && !m->conf.username) {
		h->cfg_error(self, "mqtt", "password_file", "password_file needs a username");
		bad = 1;
	}
	if (m->conf.share_group && m->conf.ingest != INGEST_CLIENT) {
		h->cfg_error(self, "mqtt", "share_group",
		             "share_group needs ingest = client (with ingest = broker the broker "
		             "queues out/ messages itself)");
		bad = 1;
	}
	if (!m->conf.host || !*m->conf.host) {
		h->cfg_error(self, "mqtt", "host", "host must not be empty");
		bad = 1;
	}
	if (m->conf.client_id) {
		m->client_id = strdup(m->conf.client_id);
	} else {
		/* Stable across restarts, so the broker finds our persistent session. */
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "gateway");
		host[sizeof(host) - 1] = '\0';
		if (asprintf(&m->client_id, "notegw-%s", host) < 0)
			m->client_id = NULL;
	}
	if (!m->client_id || !*m->client_id || strlen(m->client_id) > 65535) {
		h->cfg_error(self, "mqtt", "client_id", "client_id is empty or too long");
		bad = 1;
	}
	self->priv = m;
	return bad ? -EINVAL : 0;
}

static int mqtt_disabled(struct ngw_plugin *self)
{
	struct mqtt *m = self->priv;
	return !m->conf.enabled;
}

/* gcc 12's -fanalyzer loses track of memory stored into *m across calls through the
 * host's function pointers (LOG) and reports it leaked; mqtt_free releases it. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak"
#endif
/* The password file must be readable by the service only: refuse one that others
 * can read or write, so a packaging mistake is caught instead of leaking. */
static int read_password(struct mqtt *m)
{
	const char *path = m->conf.password_file;
	char buf[PASSWORD_MAX + 1];
	struct stat st;
	char *pw;
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		r = -errno;
		LOG(m, LOG_ERR, "cannot open password_file %s: %s", path, strerror(errno));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & (S_IROTH | S_IWOTH))) {
		LOG(m, LOG_ERR,
		    "password_file %s is readable or writable by others "
		    "(chmod o-rw): refused",
		    path);
		r = -EPERM;
		goto out;
	}
	n = read(fd, buf, sizeof(buf));
	if (n < 0) {
		r = -errno;
		goto out;
	}
	if (n > PASSWORD_MAX) {
		LOG(m, LOG_ERR, "password_file %s is larger than 4 KiB", path);
		r = -EFBIG;
		goto out;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	pw = strdup(buf);
	if (pw)
		m->password = pw;
	else
		r = -ENOMEM;
out:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	if (r < 0 && r != -EPERM && r != -EFBIG)
		LOG(m, LOG_ERR, "cannot read password_file %s: %s", path, strerror(-r));
	return r;
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

static int setup_client(struct mqtt *m)
{
	const struct mqtt_conf *c = &m->conf;
	char topic[TOPIC_MAX];
	static const char will[] = "{\"online\":false}";
	int rc;

	m->mosq = mosquitto_new(m->client_id, false, m);
	if (!m->mosq)
		return -errno ? -errno : -ENOMEM;
	mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION,
	                     c->protocol == PROTO_5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
	mqtt_session_callbacks(m->mosq);
	/* The PUBACK window, closed: libmosquitto queues the PUBACK for an incoming
	 * QoS 1 message before it calls on_message, and in its default mode writes it
	 * to the socket at once. Marked as driven by an external thread, it only
	 * queues packets and leaves the writing to mosquitto_loop_write(), which this
	 * plugin calls only after on_message returned, i.e. after the commit. So the
	 * broker hears PUBACK only for notes already in the store. (No thread is
	 * started; the flag only changes when packets are written, and adds locks.) */
	mosquitto_threaded_set(m->mosq, true);
	if (mqtt_topic_build(topic, sizeof(topic), m->own, "status", NULL) < 0)
		return -ENAMETOOLONG;
	rc = mosquitto_will_set(m->mosq, topic, (int)strlen(will), will, (int)c->qos, true);
	if (rc)
		goto fail;
	if (c->username) {
		rc = mosquitto_username_pw_set(m->mosq, c->username, m->password);
		if (rc)
			goto fail;
	}
	if (c->tls) {
		/* Without ca_file, trust the system's CAs. */
		rc = mosquitto_tls_set(m->mosq, c->ca_file, c->ca_file ? NULL : "/etc/ssl/certs",
		                       c->cert_file, c->key_file, NULL);
		if (rc)
			goto fail;
		/* insecure = true turns off both chain and hostname checks; the default
		 * verifies the server's certificate and its name. */
		rc = mosquitto_tls_opts_set(m->mosq, c->insecure ? 0 : 1, NULL, NULL);
		if (rc)
			goto fail;
		rc = mosquitto_tls_insecure_set(m->mosq, c->insecure);
		if (rc)
			goto fail;
	}
	return 0;
fail:
	LOG(m, LOG_ERR, "cannot set up the client: %s",
	    rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
	return -EINVAL;
}

/* As for read_password: m->mid_ids is released by mqtt_free. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak"
#endif
static int mqtt_start(struct ngw_plugin *self)
{
	struct mqtt *m = self->priv;
	int r;

	if (!m->lib_init) {
		mosquitto_lib_init();
		m->lib_init = true;
	}
	if (!m->mid_ids) {
		int64_t *ids = calloc(65536, sizeof(*ids));
		if (!ids)
			return -ENOMEM;
		m->mid_ids = ids;
	}
	if (m->conf.password_file && !m->password) {
		r = read_password(m);
		if (r < 0)
			return r;
	}
	if (m->mosq) {
		mosquitto_destroy(m->mosq);
		m->mosq = NULL;
	}
	m->stopping = m->connected = m->down = false;
	m->attempt = 0;
	r = mqtt_own_topics(m, (self->host->abi & 0xffff) >= 2 && self->host->gateway_id
	                           ? self->host->gateway_id(self)
	                           : NULL);
	if (r < 0)
		return r;
	m->card_ok = true; /* until a status says otherwise */
	m->card_lost_ms = 0;
	if (m->status)
		mqtt_card_seen(m, m->status); /* the last one, kept across a reload */
	r = setup_client(m);
	if (r < 0)
		return r;
	m->started = true;
	LOG(m, LOG_INFO, "broker %s:%lld, prefix %s, ingest by %s%s", m->conf.host, m->conf.port,
	    m->conf.prefix, ingest_names[m->conf.ingest],
	    m->conf.raw_requests ? ", raw requests on" : "");
	if (m->conf.share_group)
		LOG(m, LOG_INFO, "share group %s: out/ shared, this gateway's own topics under %s/",
		    m->conf.share_group, m->own);
	mqtt_connect(m);
	return 0;
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

static void mqtt_stop(struct ngw_plugin *self)
{
	struct mqtt *m = self->priv;
	struct put_ctx *p;
	struct req_ctx *c;

	if (!m || !m->started)
		return;
	m->stopping = true;
	if (m->n_puts && mosquitto_socket(m->mosq) >= 0) {
		/* Notes still wait for their commit: their PUBACKs must not go out now.
		 * Drop the connection instead of saying goodbye; the will says
		 * "offline" and the broker sends those messages again next time. */
		shutdown(mosquitto_socket(m->mosq), SHUT_RDWR);
	} else {
		/* A clean DISCONNECT suppresses the will: say "offline" ourselves. */
		if (m->connected)
			mqtt_publish_status(m, false);
		mosquitto_disconnect(m->mosq);
		/* Packets are only queued (see setup_client): write the goodbye out. */
		for (int i = 0; i < 50 && mosquitto_want_write(m->mosq); i++)
			if (mosquitto_loop_write(m->mosq, 1) != MOSQ_ERR_SUCCESS)
				break;
	}
	for (p = m->puts; p; p = p->next)
		p->m = NULL; /* commits reported later release nothing */
	m->puts = NULL;
	m->n_puts = 0;
	for (c = m->reqs; c; c = c->next)
		c->m = NULL; /* answers arriving later are dropped by on_reply */
	m->reqs = NULL;
	m->io = sd_event_source_disable_unref(m->io);
	m->timer = sd_event_source_disable_unref(m->timer);
	m->connected = false;
	m->started = false;
}

static void mqtt_destroy(struct ngw_plugin *self)
{
	struct mqtt *m = self->priv;

	if (!m)
		return;
	mqtt_stop(self);
	if (m->mosq)
		mosquitto_destroy(m->mosq);
	if (m->lib_init)
		mosquitto_lib_cleanup();
	mqtt_free(m);
	self->priv = NULL;
}

/* New [mqtt] settings: say goodbye with the old ones, connect with the new; if
 * that cannot start, go back to the old. Inbound notes whose PUBACK was still
 * outstanding, or held while the broker was away, stay pending in the store, and
 * the host offers them to the new instance after the reload. */
static int mqtt_reload(struct ngw_plugin *self, void *new_priv)
{
	struct mqtt *old = self->priv, *nw = new_priv;
	bool was_started = old->started;
	int r;

	nw->self = self;
	if (old->status && !nw->status)
		nw->status = strdup(old->status);
	if (!was_started) {
		mqtt_destroy(self);
		self->priv = nw;
		return 0;
	}
	mqtt_stop(self);
	self->priv = nw;
	r = mqtt_start(self);
	if (r < 0) {
		mqtt_destroy(self);
		self->priv = old;
		if (mqtt_start(self) < 0)
			LOG(old, LOG_ERR, "cannot restart with the old settings either");
		return r;
	}
	self->priv = old;
	mqtt_destroy(self);
	self->priv = nw;
	return 0;
}

/* ---- what the host tells us ------------------------------------------------------ */

/* A name that is one topic level: no '/', no wildcards, not empty. */
static bool level_ok(const char *s)
{
	return s && *s && !strpbrk(s, "/+#") && strlen(s) <= 128;
}

static void mqtt_on_inbound(struct ngw_plugin *self, const struct ngw_note *note)
{
	struct mqtt *m = self->priv;
	char topic[TOPIC_MAX];
	char *js;

	if (!m->started)
		return;
	if (!level_ok(note->file)) {
		LOG(m, LOG_WARNING, "inbound note %lld has an unusable file name",
		    (long long)note->id);
		return;
	}
	if (mqtt_topic_build(topic, sizeof(topic), m->own, "in", note->file) < 0)
		return;
	js = mqtt_inbound_json(note);
	if (!js)
		return;
	mqtt_publish_id(m, note->id, topic, js, strlen(js), false);
	free(js);
}

static void mqtt_on_status(struct ngw_plugin *self, const char *status_json)
{
	struct mqtt *m = self->priv;
	char *s = strdup(status_json ? status_json : "{}");

	if (!s)
		return;
	free(m->status);
	m->status = s;
	if (!m->started)
		return;
	mqtt_card_seen(m, s);
	mqtt_share_check(m, mqtt_now_ms());
	if (m->connected)
		mqtt_publish_status(m, true);
}

static void mqtt_on_env(struct ngw_plugin *self, const char *name, const char *value)
{
	struct mqtt *m = self->priv;
	char topic[TOPIC_MAX];

	if (!m->started)
		return;
	if (!level_ok(name)) {
		LOG(m, LOG_WARNING, "environment variable name unusable as a topic level");
		return;
	}
	if (mqtt_topic_build(topic, sizeof(topic), m->own, "env", name) < 0)
		return;
	/* A deleted variable clears the retained message (empty retained payload). */
	mqtt_publish(m, topic, value ? value : "", value ? strlen(value) : 0, true);
}

static void mqtt_on_error(struct ngw_plugin *self, const char *source, const char *error)
{
	struct mqtt *m = self->priv;

	if (m->started)
		mqtt_publish_error(m, source ? source : "", error);
}

static void mqtt_on_emit(struct ngw_plugin *self, const char *from, const char *topic,
                         const char *json)
{
	struct mqtt *m = self->priv;
	char full[TOPIC_MAX];

	if (!m->started || !topic || !json)
		return;
	/* Never publish where we (or the broker plugin) take input: that would loop. */
	if (!*topic || topic[0] == '/' || strpbrk(topic, "+#") || strncmp(topic, "out/", 4) == 0 ||
	    strcmp(topic, "req") == 0) {
		LOG(m, LOG_WARNING, "%s emitted on unusable topic '%s'", from ? from : "?", topic);
		return;
	}
	if (mqtt_topic_build(full, sizeof(full), m->own, topic, NULL) < 0)
		return;
	mqtt_publish(m, full, json, strlen(json), false);
}

static char *mqtt_stats_json(struct ngw_plugin *self)
{
	struct mqtt *m = self->priv;
	json_t *j =
	    json_pack("{sIsIsIsIsIsIsIsbss}", "received", (json_int_t)m->n.received, "queued",
	              (json_int_t)m->n.queued, "refused", (json_int_t)m->n.refused, "failed",
	              (json_int_t)m->n.failed, "published", (json_int_t)m->n.published, "delivered",
	              (json_int_t)m->n.delivered, "reconnects", (json_int_t)m->n.reconnects,
	              "connected", m->connected, "ingest", ingest_names[m->conf.ingest]);
	char *s;

	if (j && m->conf.share_group) {
		json_object_set_new(j, "share_group", json_string(m->conf.share_group));
		json_object_set_new(j, "topics", json_string(m->own));
		json_object_set_new(j, "sharing", json_boolean(m->share_live && m->connected));
	}
	if (j && m->conf.ingest == INGEST_BROKER)
		json_object_set_new(j, "broker_plugin",
		                    m->broker_plugin < 0 ? json_null()
		                                         : json_boolean(m->broker_plugin));
	s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return s;
}

static const char *const sections[] = {"mqtt", NULL};

static const struct ngw_plugin_desc desc = {
    .abi = NGW_PLUGIN_ABI,
    .name = "mqtt",
    .description = "local MQTT publishers and subscribers (libmosquitto client)",
    .version = PACKAGE_VERSION,
    .sections = sections,
    .configure = mqtt_configure,
    .disabled = mqtt_disabled,
    .start = mqtt_start,
    .reload = mqtt_reload,
    .stop = mqtt_stop,
    .destroy = mqtt_destroy,
    .on_inbound = mqtt_on_inbound,
    .on_status = mqtt_on_status,
    .on_env = mqtt_on_env,
    .on_error = mqtt_on_error,
    .on_emit = mqtt_on_emit,
    .stats_json = mqtt_stats_json,
};

const struct ngw_plugin_desc *notegw_plugin_describe(void)
{
	return &desc;
}
