/* benches/nolog.c: the decision's log line taken out of a measurement (benches/bench.py
 * `locked`). Preloaded (LD_PRELOAD) into pamtester, it replaces libpam's pam_syslog and
 * pam_vsyslog with functions that write nothing, so glibc's syslog() (and its first call's
 * time-zone read and /dev/log connect) never runs. Both sides of a comparison run with it:
 * pam_faillock writes no line on this path, so it only removes what SPEC §8 adds to ours.
 * Never installed, never loaded by the tests.
 */
#include <stdarg.h>

typedef struct pam_handle pam_handle_t;

void pam_vsyslog(const pam_handle_t *pamh, int priority, const char *fmt, va_list args) {
    (void)pamh;
    (void)priority;
    (void)fmt;
    (void)args;
}

void pam_syslog(const pam_handle_t *pamh, int priority, const char *fmt, ...) {
    (void)pamh;
    (void)priority;
    (void)fmt;
}
