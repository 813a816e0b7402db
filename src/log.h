/* One logging function for the whole daemon: stderr with levels, or the journal
 * under systemd. Messages start lowercase and name their object ("card: ..."). */
#ifndef NOTEGW_LOG_H
#define NOTEGW_LOG_H
#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h>

void log_setup(int max_level, bool journal);
int log_level_from_name(const char *name); /* "debug".."err"; -1 if unknown */
int log_max_level(void);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#endif
