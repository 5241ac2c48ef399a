/* benches/syslog_cost.c: what the first log line costs a fresh process (benches/bench.py --only
 * phases). pam_syslog ends in glibc's syslog(), whose first call reads the time zone
 * (/etc/localtime, unless TZ is set) and connects to /dev/log; later calls do neither.
 *
 * Usage: syslog_cost [tz]   ("tz": call tzset() first and time it on its own)
 * Prints microseconds: "TZSET FIRST_SYSLOG SECOND_SYSLOG".
 */
#include <stdio.h>
#include <syslog.h>
#include <time.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
    (void)argv;
    const char *line = "syslog_cost(bench:auth): result=fail reason=user_locked user=mallory";
    double a = now_us();
    if (argc > 1)
        tzset();
    double b = now_us();
    syslog(LOG_AUTHPRIV | LOG_NOTICE, "%s", line);
    double c = now_us();
    syslog(LOG_AUTHPRIV | LOG_NOTICE, "%s", line);
    double d = now_us();
    printf("%.1f %.1f %.1f\n", b - a, c - b, d - c);
    return 0;
}
