/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the benchmarks: the conditions a figure was measured under,
 * order statistics over repeated rounds, and machine-readable results.
 *
 * Every result is also printed as one JSON object on its own stdout line,
 * beginning with {"bench": so a host script can pick the lines out of a
 * console log (tests/bench-plot.sh does). The fields every line carries:
 *   bench    "batch" | "ring"
 *   case     what was measured, e.g. "resize64", "stall", "harvest_reset"
 *   kernel   uname -r, arch uname -m, cpus online CPUs in the guest
 *   tcg      "multi" | "single" (KVMAS_TCG in the environment, set by the
 *            harness from how it booted QEMU; "unknown" otherwise)
 * then case-specific fields: "method", "rounds", "unit", order statistics
 * (p50, p10, p90, p99, min, max) and, where a distribution is plotted,
 * "samples": [...] in "unit".
 */
#ifndef KVMAS_BENCH_COMMON_H
#define KVMAS_BENCH_COMMON_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

static inline const char *bench_tcg(void)
{
	const char *t = getenv("KVMAS_TCG");

	return t && *t ? t : "unknown";
}

/* The one line of text stating the conditions, and its JSON twin. */
static inline void bench_conditions(const char *bench)
{
	struct utsname u;

	uname(&u);
	printf("  conditions: kernel %s %s, %ld guest CPUs, TCG %s, host load "
	       "not controlled\n",
	       u.release, u.machine, sysconf(_SC_NPROCESSORS_ONLN),
	       bench_tcg());
	(void)bench;
}

/* Starts a JSON line: {"bench":..,"case":..,<common fields> */
static inline void bench_json_begin(const char *bench, const char *cas)
{
	struct utsname u;

	uname(&u);
	printf("{\"bench\":\"%s\",\"case\":\"%s\",\"kernel\":\"%s\","
	       "\"arch\":\"%s\",\"cpus\":%ld,\"tcg\":\"%s\"",
	       bench, cas, u.release, u.machine, sysconf(_SC_NPROCESSORS_ONLN),
	       bench_tcg());
}

/* Appends ,"key":value pairs, printf-style: bench_json_kv("\"n\":%u", n). */
static inline void bench_json_kv(const char *fmt, ...)
{
	va_list ap;

	putchar(',');
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

static inline void bench_json_end(void)
{
	printf("}\n");
	fflush(stdout);
}

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Order statistics of @n samples (sorted in place). */
struct bench_stats {
	double min, p10, p50, p90, p99, max;
	unsigned int n;
};

static inline double bench_pct(const double *sorted, unsigned int n, double p)
{
	unsigned int i = (unsigned int)(p / 100.0 * (n - 1) + 0.5);

	return n ? sorted[i < n ? i : n - 1] : 0;
}

static inline struct bench_stats bench_stats(double *s, unsigned int n)
{
	struct bench_stats st = { .n = n };

	if (!n)
		return st;
	qsort(s, n, sizeof(*s), bench_cmp_double);
	st.min = s[0];
	st.max = s[n - 1];
	st.p10 = bench_pct(s, n, 10);
	st.p50 = bench_pct(s, n, 50);
	st.p90 = bench_pct(s, n, 90);
	st.p99 = bench_pct(s, n, 99);
	return st;
}

/* ,"rounds":n,"p50":..,... for a bench_json line. */
static inline void bench_json_stats(const char *unit, struct bench_stats st)
{
	bench_json_kv("\"unit\":\"%s\",\"rounds\":%u,\"min\":%.3f,\"p10\":%.3f,"
		      "\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f",
		      unit, st.n, st.min, st.p10, st.p50, st.p90, st.p99,
		      st.max);
}

/* ,"samples":[...] (the samples as given; call before bench_stats sorts). */
static inline void bench_json_samples(const double *s, unsigned int n)
{
	unsigned int i;

	printf(",\"samples\":[");
	for (i = 0; i < n; i++)
		printf("%s%.3f", i ? "," : "", s[i]);
	printf("]");
}

#endif
