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

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static inline const char *bench_tcg(void)
{
	const char *t = getenv("KVMAS_TCG");

	return t && *t ? t : "unknown";
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

static inline double bench_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/*
 * The share of a guest CPU's time the host took away: a spin of @ms
 * milliseconds on @cpu, summing the gaps longer than 100 us between two
 * clock reads (nothing in the guest runs there but this spin). Under TCG
 * such gaps are the host descheduling the vCPU thread: the condition that
 * moves grace periods, and with them every stock/batch ratio, the most.
 */
static inline double bench_host_steal(int cpu, int ms)
{
	double t0 = bench_now_us(), prev = t0, now, lost = 0;
	cpu_set_t set, old;

	sched_getaffinity(0, sizeof(old), &old);
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		return -1;
	do {
		now = bench_now_us();
		if (now - prev > 100)
			lost += now - prev;
		prev = now;
	} while (now - t0 < ms * 1000.0);
	sched_setaffinity(0, sizeof(old), &old);
	return lost / (now - t0);
}

/* Prints and emits the host's share of each guest CPU, @when "before"/"after". */
static inline void bench_host_load(const char *bench, const char *when)
{
	long cpu, n = sysconf(_SC_NPROCESSORS_ONLN);
	double f[8];

	if (n > 8)
		n = 8;
	for (cpu = 0; cpu < n; cpu++)
		f[cpu] = bench_host_steal(cpu, 100);
	printf("  host took (gaps > 100 us in a 100 ms spin, %s):", when);
	for (cpu = 0; cpu < n; cpu++)
		printf(" cpu%ld %.1f%%", cpu, f[cpu] * 100);
	printf("\n");
	bench_json_begin(bench, "host_load");
	bench_json_kv("\"when\":\"%s\",\"unit\":\"fraction\",\"per_cpu\":[",
		      when);
	for (cpu = 0; cpu < n; cpu++)
		printf("%s%.4f", cpu ? "," : "", f[cpu]);
	printf("]");
	bench_json_end();
}

/* The line of text stating the conditions, and their JSON twins. */
static inline void bench_conditions(const char *bench)
{
	struct utsname u;

	uname(&u);
	printf("  conditions: kernel %s %s, %ld guest CPUs, TCG %s\n",
	       u.release, u.machine, sysconf(_SC_NPROCESSORS_ONLN),
	       bench_tcg());
	bench_host_load(bench, "before");
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
