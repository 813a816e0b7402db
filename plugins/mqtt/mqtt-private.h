/* Inside the mqtt plugin: the state its files share. mqtt.c is the plugin
 * (configuration, lifecycle, what the host tells it), session.c the broker connection
 * in the daemon's event loop, ingest.c what arrives from the broker, share.c the
 * share group (several gateways on one site). Not installed. */
#ifndef NOTEGW_MQTT_PRIVATE_H
#define NOTEGW_MQTT_PRIVATE_H
#include <mosquitto.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "notegw/plugin.h"
#include "validate.h"

#define TOPIC_MAX 512
/* A delivery key (ingest.c): client id (cut to fit), message id, hash. */
#define MQTT_KEY_MAX 256   /* STORE_KEY_MAX */
#define TICK_MS      1000  /* loop_misc cadence while connected */
#define HELD_MAX     4096u /* messages kept while the broker is away */
#define PROBE_MS     5000u /* how long the broker plugin has to answer the ping */
#define ADDRS_MAX    8     /* broker addresses tried in turn per round */
#define ADDR_LEN     64    /* INET6_ADDRSTRLEN and a scope (%ifname) */
#define READ_BURST   1024u /* packets read per wake-up, committed together */

enum { PROTO_311, PROTO_5 };
enum { INGEST_CLIENT, INGEST_BROKER };

/* [mqtt] as parsed by the host through keys[] (mqtt.c). */
struct mqtt_conf {
	bool enabled;
	char *host;
	long long port;
	char *prefix;
	char *client_id;
	int protocol;
	uint64_t keepalive; /* ms */
	bool tls;
	char *ca_file;
	char *cert_file;
	char *key_file;
	bool insecure;
	char *username;
	char *password_file;
	long long qos;
	uint64_t max_payload; /* bytes */
	bool raw_requests;
	uint64_t reconnect_min;  /* ms */
	uint64_t reconnect_max;  /* ms */
	uint64_t session_expiry; /* ms; 0 = never (MQTT 5 only) */
	int ingest;
	char *share_group;          /* NULL: this gateway alone takes <prefix>/out/# */
	uint64_t share_leave_after; /* ms the Notecard may be gone before leaving the group */
};

/* An out/ message handed to the host's group commit, its PUBACK held until then. */
struct put_ctx {
	struct mqtt *m;                /* NULL once the plugin stopped: nothing to release */
	struct put_ctx *next, **pprev; /* in m->puts: unlinked in O(1) on its commit */
	char topic[];                  /* for an error report */
};

/* A message waiting for the broker to come back. */
struct held {
	struct held *next;
	int64_t id; /* inbound note id or 0 */
	char *topic;
	size_t len;
	bool retain;
	char payload[]; /* len bytes + NUL */
};

/* A raw request waiting for the Notecard's answer. */
struct req_ctx {
	struct mqtt *m; /* NULL once the plugin stopped: drop the answer */
	struct req_ctx *next;
	char *response_topic; /* MQTT 5 request/response, or NULL: <prefix>/rsp */
	void *corr;           /* MQTT 5 correlation data, copied to the answer */
	uint16_t corr_len;
};

struct mqtt {
	struct ngw_plugin *self;
	struct mqtt_conf conf;
	bool conf_bound;
	char *client_id; /* conf.client_id or notegw-<hostname> */
	/* Where this gateway's own topics live (status, env, in, req, rsp, error, emits):
	 * the prefix alone, or <prefix>/gw/<gateway id> in a share group (docs/fleet.md). */
	char own[TOPIC_MAX];
	char *password; /* from password_file, wiped on free */
	struct mosquitto *mosq;
	sd_event_source *io; /* broker socket, while there is one */
	int io_fd;
	sd_event_source *timer; /* loop_misc while up, reconnect while down */
	bool lib_init, started, stopping, connected, down;
	unsigned attempt; /* failed rounds of connects since the last success */
	/* The broker's addresses, resolved at the start of each round of connects and
	 * tried in turn (session.c); without TLS each connect goes to one address. */
	char addrs[ADDRS_MAX][ADDR_LEN];
	unsigned n_addrs, addr_i; /* addr_i == n_addrs: resolve again */
	const char *target;       /* what the current connect goes to */
	uint64_t connect_at_ms;   /* when down: next attempt (monotonic) */
	uint64_t connect_start_ms;
	char *status;     /* last status JSON from the host */
	int64_t *mid_ids; /* [65536]: mid -> inbound note id awaiting PUBACK */
	struct req_ctx *reqs;
	struct put_ctx *puts; /* notes waiting for their commit */
	unsigned n_puts;      /* while > 0, nothing is written to the broker */
	uint64_t unacked;     /* messages not committed since the last commit */
	struct held *held, **held_tail;
	unsigned n_held;
	/* ingest = broker: is notegw_broker.so answering on this broker? */
	int broker_plugin; /* -1 not known yet, 0 no answer, 1 answered */
	char probe[96];
	/* share group: taking shared out/ messages while the Notecard is there */
	bool shared;           /* the shared subscription is (being) made */
	bool share_live;       /* the broker confirmed it (SUBACK; cleared at UNSUBACK) */
	int share_mid;         /* the message id of the last join or leave asked */
	bool card_ok;          /* the last status said the Notecard is ready */
	uint64_t card_lost_ms; /* when it stopped being ready (monotonic), 0 if ready */
	uint64_t probe_deadline_ms;
	struct {
		uint64_t received, queued, refused, failed, published, delivered, reconnects,
		    connects;
	} n;
};

/* The host prefixes every line with the plugin's name ("mqtt: "). */
#define LOG(m, lvl, ...) (m)->self->host->log((m)->self, lvl, __VA_ARGS__)

/* ---- session.c: the broker connection ------------------------------------------- */
uint64_t mqtt_now_ms(void); /* CLOCK_MONOTONIC */
/* Connect (or reconnect) now; on failure a retry is scheduled with backoff. */
void mqtt_connect(struct mqtt *m);
/* The connection is gone: drop the socket source, schedule a reconnect. */
void mqtt_conn_lost(struct mqtt *m, int rc, const char *what);
/* Watch libmosquitto's socket, for writing only while writes are allowed. */
void mqtt_update_io(struct mqtt *m);
void mqtt_arm_timer(struct mqtt *m, uint64_t at_ms);
/* No note pending any more: write what libmosquitto queued (PUBACKs included). */
void mqtt_release_writes(struct mqtt *m);
/* Publish with the configured QoS; id > 0 is an inbound note, marked done on its
 * PUBACK. Held in memory while disconnected. Returns a MOSQ_ERR_* code. */
int mqtt_publish_id(struct mqtt *m, int64_t id, const char *topic, const char *payload, size_t len,
                    bool retain);
int mqtt_publish(struct mqtt *m, const char *topic, const char *payload, size_t len, bool retain);
/* After a connect: send what waited. */
void mqtt_flush_held(struct mqtt *m);
void mqtt_free_held(struct mqtt *m);
/* Hand libmosquitto the session's event callbacks (messages go to ingest.c). */
void mqtt_session_callbacks(struct mosquitto *mosq);
/* {"topic","error"} on <prefix>/error. */
void mqtt_publish_error(struct mqtt *m, const char *about, const char *why);
/* Retained <prefix>/status: the host's status plus "online". */
void mqtt_publish_status(struct mqtt *m, bool online);
/* Set m->own from the prefix and, in a share group, the gateway id. 0 or -errno. */
int mqtt_own_topics(struct mqtt *m, const char *gateway_id);
/* What topic means to us: out/ under the prefix; req, broker ping/pong under own. */
enum mqtt_topic_kind mqtt_classify(const struct mqtt *m, const char *topic, const char **rest);
/* After a connect: subscribe to out/ (shared in a group, unless the card is gone). */
void mqtt_subscribe_out(struct mqtt *m);
/* The broker's SUBACK/UNSUBACK for mid: the shared subscription is live or gone. */
void mqtt_share_acked(struct mqtt *m, int mid, bool joined, bool granted);
/* The host's status changed: note whether the Notecard is there (share group). */
void mqtt_card_seen(struct mqtt *m, const char *status_json);
/* Share group: leave it when the card has been gone share_leave_after, join again
 * when it is back. Called from the timer and on status changes. */
void mqtt_share_check(struct mqtt *m, uint64_t now);
/* ingest = broker: report when the broker plugin did not answer in time. */
void mqtt_check_probe(struct mqtt *m, uint64_t now);

/* ---- ingest.c: what arrives from the broker ------------------------------------- */
void mqtt_on_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *msg,
                     const mosquitto_property *props);
void mqtt_req_free(struct req_ctx *c);

#endif
