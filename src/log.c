/* Logging: to the journal (with the priority as a field) when running under systemd,
 * else to stderr with a level prefix. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <systemd/sd-journal.h>
#include <time.h>

#include "log.h"

static int max_level = LOG_INFO;
static bool use_journal;

void log_setup(int level, bool journal)
{
	max_level = level;
	use_journal = journal;
}

int log_max_level(void)
{
	return max_level;
}

int log_level_from_name(const char *name)
{
	static const struct {
		const char *name;
		int level;
	} names[] = {
		{"debug", LOG_DEBUG}, {"info", LOG_INFO},   {"notice", LOG_NOTICE},
		{"warning", LOG_WARNING}, {"warn", LOG_WARNING}, {"err", LOG_ERR},
		{"error", LOG_ERR},   {"crit", LOG_CRIT},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i].name) == 0)
			return names[i].level;
	return -1;
}

void log_vmsg(int level, const char *fmt, va_list ap)
{
	static const char *const prefix[] = {"emerg", "alert", "crit", "error",
	                                     "warning", "notice", "info", "debug"};
	if (level > max_level)
		return;
	if (use_journal) {
		char buf[2048];
		vsnprintf(buf, sizeof(buf), fmt, ap);
		sd_journal_print(level, "%s", buf);
		return;
	}
	struct timespec ts;
	struct tm tm;
	char when[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	flockfile(stderr);
	fprintf(stderr, "%s.%03ldZ notegwd %s: ", when, ts.tv_nsec / 1000000,
	        prefix[level & 7]);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}
