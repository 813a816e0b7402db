/* What every bench needs beside its own measurement: a monotonic clock, the median of
 * its rounds, a free loopback port for a server it starts, and the machine it ran on. */
#ifndef NOTEGW_BENCHLIB_H
#define NOTEGW_BENCHLIB_H

/* Seconds on CLOCK_MONOTONIC. */
double bench_now_s(void);
/* qsort comparator for doubles, ascending. */
int bench_cmp_double(const void *a, const void *b);
/* The median of v[0..n-1] (n >= 1); v is left as it was. */
double bench_median(const double *v, int n);
/* A TCP port on 127.0.0.1 free just now; exits the bench when there is none. */
int bench_free_port(void);
/* "machine: <kernel> <arch>, N CPU(s), <CPU model>; files in <dir>". */
void bench_print_machine(const char *dir);
/* "load average <when>: <the three averages>". */
void bench_print_load(const char *when);
#endif
