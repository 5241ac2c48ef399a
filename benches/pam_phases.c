/* benches/pam_phases.c: one PAM transaction, timed by phase (benches/bench.py --only phases).
 *
 * Usage: pam_phases SERVICE USER [RHOST]
 * Prints the microseconds of pam_start (which loads the stack's modules), pam_authenticate and
 * pam_end, one line: "START AUTH END". Messages go to stderr, as pamtester's conversation
 * prints them; prompts are answered with an empty line. Exit status 0 on success, 1 otherwise.
 */
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int conv(int n, const struct pam_message **m, struct pam_response **r, void *data) {
    (void)data;
    struct pam_response *rs = calloc((size_t)n, sizeof *rs);
    if (!rs)
        return PAM_BUF_ERR;
    for (int i = 0; i < n; i++) {
        if (m[i]->msg_style == PAM_ERROR_MSG || m[i]->msg_style == PAM_TEXT_INFO)
            fprintf(stderr, "%s\n", m[i]->msg);
        else
            rs[i].resp = strdup("");
    }
    *r = rs;
    return PAM_SUCCESS;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s SERVICE USER [RHOST]\n", argv[0]);
        return 2;
    }
    struct pam_conv c = {conv, NULL};
    pam_handle_t *h;
    double t0 = now_us();
    if (pam_start(argv[1], argv[2], &c, &h) != PAM_SUCCESS)
        return 2;
    if (argc > 3)
        pam_set_item(h, PAM_RHOST, argv[3]);
    double t1 = now_us();
    int rc = pam_authenticate(h, 0);
    double t2 = now_us();
    pam_end(h, rc);
    double t3 = now_us();
    printf("%.1f %.1f %.1f\n", t1 - t0, t2 - t1, t3 - t2);
    return rc == PAM_SUCCESS ? 0 : 1;
}
