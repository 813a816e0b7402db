/* Host updates through the Notecard; see ota.h. The download offset is the spool
 * file's length after fdatasync, so a crash, reboot or lost signal resumes where
 * the last durable chunk ended. Nothing is installed here: the daemon stays
 * unprivileged and the installer re-verifies everything as root. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "link.h"
#include "log.h"
#include "ota.h"
#include "store.h"
#include "update.h"
#include "util.h"

#define SYNC_EVERY 8 /* chunks between fdatasync (and so the resume granularity) */

enum ota_state { OTA_IDLE, OTA_CHECKING, OTA_DOWNLOADING, OTA_VERIFIED, OTA_HANDED_OVER,
                 OTA_FAILED };
static const char *const state_names[] = {"idle", "checking", "downloading", "verified",
                                          "installing", "failed"};

struct ota {
	struct store *store;
	struct link *link;
	struct ota_opts opt;
	char *spool, *trusted;
	char part[4096], ready[4096], verified[4096], result[4096];
	sd_event_source *timer;
	enum ota_state state;
	bool busy;               /* a request is out */
	int fd;                  /* the .part file while downloading */
	uint64_t offset, length;
	unsigned since_sync;
	char md5[33];            /* what the card says the image's MD5 is */
	char version[64];
	char last_error[256];
	char last_result[256];
	uint64_t downloads, refusals;
};

static void set_error(struct ota *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct ota *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(o->last_error, sizeof(o->last_error), fmt, ap);
	va_end(ap);
	log_err("update: %s", o->last_error);
}

static void request(struct ota *o, json_t *req, ngw_reply_cb cb)
{
	char *text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!text || !o->link || link_request(o->link, text, cb, o) < 0) {
		free(text);
		o->busy = false;
		return;
	}
	free(text);
	o->busy = true;
}

static void ignore_reply(void *ud, int err, const char *rsp)
{
	struct ota *o = ud;
	o->busy = false;
}

/* Tell Notehub the host's outcome (dfu.status stop with status or err). */
static void report(struct ota *o, bool ok, const char *msg)
{
	json_t *req = json_pack("{s:s,s:s,s:b,s:s}", "req", "dfu.status", "name", "user", "stop",
	                        1, ok ? "status" : "err", msg);
	request(o, req, ignore_reply);
}

static void refuse(struct ota *o, const char *why)
{
	set_error(o, "image %s refused: %s", o->md5, why);
	o->refusals++;
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
	unlink(o->part);
	unlink(o->verified);
	store_kv_set(o->store, "ota.failed_md5", o->md5);
	store_audit(o->store, "daemon", "update-refused", o->last_error);
	o->state = OTA_FAILED;
	report(o, false, o->last_error);
}

static int file_md5(const char *path, char out[33])
{
	unsigned char buf[65536], md[16];
	unsigned int mdlen = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int r = c && EVP_DigestInit_ex(c, EVP_md5(), NULL) ? 0 : -EIO;
	ssize_t n;
	while (r == 0 && (n = read(fd, buf, sizeof(buf))) > 0)
		if (!EVP_DigestUpdate(c, buf, (size_t)n))
			r = -EIO;
	if (r == 0 && !EVP_DigestFinal_ex(c, md, &mdlen))
		r = -EIO;
	EVP_MD_CTX_free(c);
	close(fd);
	for (unsigned i = 0; r == 0 && i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return r;
}

static void finish_download(struct ota *o)
{
	char md5[33];
	fdatasync(o->fd);
	close(o->fd);
	o->fd = -1;
	if (file_md5(o->part, md5) < 0 || strcasecmp(md5, o->md5) != 0) {
		refuse(o, "MD5 of the downloaded image does not match the Notecard's");
		return;
	}
	struct update_info info;
	const char *why = NULL;
	int r = update_verify(o->trusted, o->part, &info, &why);
	if (r < 0) {
		refuse(o, why);
		return;
	}
	snprintf(o->version, sizeof(o->version), "%s", info.version);
	if (rename(o->part, o->verified) < 0) {
		set_error(o, "cannot keep the verified image: %s", strerror(errno));
		o->state = OTA_FAILED;
		return;
	}
	o->downloads++;
	o->state = OTA_VERIFIED;
	log_notice("update: image %s %s verified (signed %s)", info.name, info.version, info.alg);
	store_audit(o->store, "daemon", "update-verified", info.version);
	if (o->opt.auto_apply) {
		const char *w;
		ota_apply(o, &w);
	}
}

static void get_next(struct ota *o);

static void on_chunk(void *ud, int err, const char *rsp)
{
	struct ota *o = ud;
	o->busy = false;
	if (o->state != OTA_DOWNLOADING)
		return;
	json_t *r = err < 0 ? NULL : json_loads(rsp, 0, NULL);
	const char *payload = json_string_value(json_object_get(r, "payload"));
	void *bin = NULL;
	size_t len = 0;
	if (!payload || b64_decode(payload, &bin, &len) < 0 || len == 0 ||
	    o->offset + len > o->length) {
		/* Lost signal, card busy: keep what we have, resume at the next check. */
		set_error(o, "dfu.get at offset %llu: %s", (unsigned long long)o->offset,
		          err < 0 ? strerror(-err)
		                  : (json_string_value(json_object_get(r, "err")) ?: "bad chunk"));
		json_decref(r);
		free(bin);
		fdatasync(o->fd);
		close(o->fd);
		o->fd = -1;
		o->state = OTA_IDLE;
		return;
	}
	json_decref(r);
	if (pwrite(o->fd, bin, len, (off_t)o->offset) != (ssize_t)len) {
		set_error(o, "cannot write the spool: %s", strerror(errno));
		free(bin);
		close(o->fd);
		o->fd = -1;
		o->state = OTA_FAILED;
		return;
	}
	free(bin);
	o->offset += len;
	if (++o->since_sync >= SYNC_EVERY) {
		fdatasync(o->fd);
		o->since_sync = 0;
	}
	if (o->offset == o->length)
		finish_download(o);
	else
		get_next(o);
}

static void get_next(struct ota *o)
{
	uint64_t left = o->length - o->offset;
	unsigned n = left < o->opt.chunk ? (unsigned)left : o->opt.chunk;
	request(o, json_pack("{s:s,s:I,s:I}", "req", "dfu.get", "length", (json_int_t)n, "offset",
	                     (json_int_t)o->offset),
	        on_chunk);
}

static void start_download(struct ota *o, const char *md5, uint64_t length)
{
	char *had = NULL;
	struct stat st;
	o->offset = 0;
	/* Resume only the same image, from what reached the disk. */
	if (store_kv_get(o->store, "ota.md5", &had) == 0 && strcmp(had, md5) == 0 &&
	    stat(o->part, &st) == 0 && (uint64_t)st.st_size <= length)
		o->offset = (uint64_t)st.st_size;
	else
		unlink(o->part);
	free(had);
	snprintf(o->md5, sizeof(o->md5), "%s", md5);
	store_kv_set(o->store, "ota.md5", md5);
	o->length = length;
	o->fd = open(o->part, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (o->fd < 0) {
		set_error(o, "cannot open %s: %s", o->part, strerror(errno));
		o->state = OTA_FAILED;
		return;
	}
	if (ftruncate(o->fd, (off_t)o->offset) < 0) {
		set_error(o, "cannot truncate the spool: %s", strerror(errno));
		close(o->fd);
		o->fd = -1;
		o->state = OTA_FAILED;
		return;
	}
	log_notice("update: downloading image %s (%llu bytes) from offset %llu", md5,
	           (unsigned long long)length, (unsigned long long)o->offset);
	o->state = OTA_DOWNLOADING;
	o->since_sync = 0;
	if (o->offset == o->length)
		finish_download(o);
	else
		get_next(o);
}

/* The installer's verdict, once it has run. */
static void poll_result(struct ota *o)
{
	char *text = NULL;
	if (read_file(o->result, 4096, &text, NULL) < 0)
		return;
	unlink(o->result);
	json_t *r = json_loads(text, 0, NULL);
	free(text);
	bool ok = json_is_true(json_object_get(r, "ok"));
	const char *msg = json_string_value(json_object_get(r, "message"));
	snprintf(o->last_result, sizeof(o->last_result), "%s", msg ? msg : "installer said nothing");
	if (ok) {
		store_kv_set(o->store, "ota.installed_md5", o->md5);
		o->state = OTA_IDLE;
		log_notice("update: %s", o->last_result);
	} else {
		store_kv_set(o->store, "ota.failed_md5", o->md5);
		o->refusals++;
		set_error(o, "installer: %s", o->last_result);
		o->state = OTA_FAILED;
	}
	store_audit(o->store, "installer", ok ? "update-installed" : "update-failed",
	            o->last_result);
	json_decref(r);
	report(o, ok, o->last_result);
}

static void on_status(void *ud, int err, const char *rsp)
{
	struct ota *o = ud;
	o->busy = false;
	o->state = o->state == OTA_CHECKING ? OTA_IDLE : o->state;
	json_t *r = err < 0 ? NULL : json_loads(rsp, 0, NULL);
	const char *mode = json_string_value(json_object_get(r, "mode"));
	json_t *body = json_object_get(r, "body");
	const char *md5 = json_string_value(json_object_get(body, "md5"));
	json_int_t length = json_integer_value(json_object_get(body, "length"));
	if (mode && strcmp(mode, "ready") == 0 && md5 && strlen(md5) == 32 && length > 0 &&
	    length <= 256 * 1024 * 1024) {
		char *done = NULL, *failed = NULL;
		store_kv_get(o->store, "ota.installed_md5", &done);
		store_kv_get(o->store, "ota.failed_md5", &failed);
		bool seen = (done && strcmp(done, md5) == 0) || (failed && strcmp(failed, md5) == 0);
		free(done);
		free(failed);
		if (!seen)
			start_download(o, md5, (uint64_t)length);
	}
	json_decref(r);
}

void ota_check(struct ota *o)
{
	if (o->busy)
		return;
	if (o->state == OTA_HANDED_OVER) {
		poll_result(o);
		return;
	}
	if (o->state == OTA_DOWNLOADING || o->state == OTA_VERIFIED)
		return;
	o->state = OTA_CHECKING;
	request(o, json_pack("{s:s,s:s}", "req", "dfu.status", "name", "user"), on_status);
	if (!o->busy)
		o->state = OTA_IDLE;
}

int ota_apply(struct ota *o, const char **why)
{
	if (o->state != OTA_VERIFIED) {
		*why = "no verified image waiting";
		return -ENOENT;
	}
	if (rename(o->verified, o->ready) < 0) {
		*why = "cannot hand the image to the installer";
		return -errno;
	}
	o->state = OTA_HANDED_OVER;
	log_notice("update: image %s handed to the installer", o->version);
	return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	struct ota *o = ud;
	ota_check(o);
	sd_event_source_set_time(s, usec + o->opt.interval_ms * 1000);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT); /* timers are one-shot */
	return 0;
}

int ota_new(sd_event *loop, struct store *store, struct link *link, const struct ota_opts *opt,
            struct ota **out)
{
	struct ota *o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->store = store;
	o->link = link;
	o->opt = *opt;
	o->fd = -1;
	if (o->opt.chunk == 0 || o->opt.chunk > 8192)
		o->opt.chunk = 8192;
	o->spool = strdup(opt->spool_dir);
	o->trusted = strdup(opt->trusted_dir);
	if (!o->spool || !o->trusted) {
		ota_free(o);
		return -ENOMEM;
	}
	if (mkdir(o->spool, 0700) < 0 && errno != EEXIST) {
		int e = -errno;
		ota_free(o);
		return e;
	}
	snprintf(o->part, sizeof(o->part), "%s/download.part", o->spool);
	snprintf(o->verified, sizeof(o->verified), "%s/verified.img", o->spool);
	snprintf(o->ready, sizeof(o->ready), "%s/ready.img", o->spool);
	snprintf(o->result, sizeof(o->result), "%s/result.json", o->spool);
	/* A verified image from before a restart is verified again before use. */
	if (access(o->verified, F_OK) == 0) {
		struct update_info info;
		const char *why;
		if (update_verify(o->trusted, o->verified, &info, &why) == 0) {
			o->state = OTA_VERIFIED;
			snprintf(o->version, sizeof(o->version), "%s", info.version);
		} else {
			unlink(o->verified);
		}
	}
	if (access(o->ready, F_OK) == 0 || access(o->result, F_OK) == 0)
		o->state = OTA_HANDED_OVER;
	char *md5 = NULL;
	if (store_kv_get(store, "ota.md5", &md5) == 0)
		snprintf(o->md5, sizeof(o->md5), "%s", md5);
	free(md5);
	int r = sd_event_add_time_relative(loop, &o->timer, CLOCK_MONOTONIC, 2 * 1000 * 1000, 0,
	                                   on_timer, o);
	if (r < 0) {
		ota_free(o);
		return r;
	}
	*out = o;
	return 0;
}

void ota_free(struct ota *o)
{
	if (!o)
		return;
	sd_event_source_disable_unref(o->timer);
	if (o->fd >= 0) {
		fdatasync(o->fd);
		close(o->fd);
	}
	free(o->spool);
	free(o->trusted);
	free(o);
}

json_t *ota_status(struct ota *o)
{
	json_t *s = json_pack("{s:s,s:I,s:I,s:I,s:I}", "state", state_names[o->state], "offset",
	                      (json_int_t)o->offset, "length", (json_int_t)o->length, "downloads",
	                      (json_int_t)o->downloads, "refusals", (json_int_t)o->refusals);
	if (o->md5[0])
		json_object_set_new(s, "md5", json_string(o->md5));
	if (o->version[0])
		json_object_set_new(s, "version", json_string(o->version));
	if (o->last_error[0])
		json_object_set_new(s, "last_error", json_string(o->last_error));
	if (o->last_result[0])
		json_object_set_new(s, "last_result", json_string(o->last_result));
	if (o->length)
		json_object_set_new(s, "percent", json_integer((json_int_t)(o->offset * 100 / o->length)));
	return s;
}
