#!/usr/bin/env python3
"""pam_portal benchmarks, run on demand (never in the tests).

Builds in release mode, starts portal-sim over HTTPS on loopback, and measures, side by side in
one run so that ratios stay meaningful on a shared machine:

  1. a full password + question login through pamtester, a fresh process per login (as sshd
     does), against curl making the same HTTPS calls over one connection in one fresh process;
  2. a locked username refused, against pam_faillock.so refusing a locked user (same driver),
     with each telling the user, with neither (PAM_SILENT), with pam_faillock `silent`, and
     with the decision's log line taken out of both processes (benches/nolog.c), each ratio
     with a 95 % interval (paired bootstrap over the rounds);
  3. failure recording by 32 concurrent processes, against pam_faillock.so under the same load:
     throughput and exactness of the counts;
  4. logins per second at 1, 8 and 32 concurrent clients;
  5. the module's stripped size, crate count, and the resident memory it adds to the host;
  6. with redis-server installed (issue 8): the Redis backend beside the file backend, for a
     locked refusal and for 32 concurrent processes recording failures (throughput, exactness),
     against a redis-server this script starts on loopback.

Usage: benches/bench.py [--runs N] [--write] [--no-redis | --only-redis]
       (--write also rewrites BENCHMARKS.md)
Needs root (it writes PAM service files to /etc/pam.d and removes them at exit).
"""

import argparse
import concurrent.futures as cf
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
MODULE = os.path.join(REL, "libpam_portal.so")
FULL = os.path.join(REL, "libpam_portal_full.so")  # loaded by the front for logins it does not refuse
HALF = os.path.join(REL, "libpam_portal_http.so")  # loaded by the full module for portal calls only
SECURITY = "/lib/x86_64-linux-gnu/security"
PW, ANSWER = "Bench-Pass1!", "Rex"
API_USER, API_KEY = "SL300003", "bench-key-5e1d"
RHOST = "198.51.100.50"
# [lockout] limits high enough that concurrent bursts of failures only count, never lock.
CONC_LIMITS = "user = { max_failures = 10000 }\nip = { max_failures = 10000 }\n"

FIXTURE = f"""
[account]
api_user = "{API_USER}"
api_key = "{API_KEY}"
[lockout]
max_failures = 1000000
[[questions]]
id = 101
question = "What was the name of your first pet?"
display_order = 1
[[users]]
id = 1
username = "alice"
password = "{PW}"
secondary_login_required = true
answers = [{{ question_id = 101, answer = "{ANSWER}" }}]
"""


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def pamtester(svc, user, op="authenticate"):
    return ["pamtester", "-I", f"rhost={RHOST}", svc, user, op]


def pam_portal(cfg, *args):
    return [os.path.join(REL, "pam-portal"), "--config", cfg, *args]


def user_failures(cfg, user):
    """The module's failure count for `user` (pam-portal status; exit 1 = something is locked)."""
    status = subprocess.run(pam_portal(cfg, "status", "--user", user, "--json"), capture_output=True, text=True).stdout
    return next(r["failures"] for r in json.loads(status) if r["kind"] == "user")


def burst(cmd, stdin, procs, total):
    """`total` runs of `cmd` by `procs` at a time: (runs per second, their exit codes)."""
    t = time.perf_counter()
    with cf.ThreadPoolExecutor(procs) as ex:
        rcs = list(ex.map(lambda _: subprocess.run(cmd, input=stdin, capture_output=True, text=True).returncode,
                          range(total)))
    return total / (time.perf_counter() - t), rcs


class Bench:
    def __init__(self, runs):
        self.runs = runs
        self.rng = random.Random(7)  # the order of each round (fixed seed: runs are repeatable)
        self.tmp = tempfile.mkdtemp(prefix="pam_portal-bench.")
        self.tag = f"pam_portal-bench-{os.getpid()}"
        self.services = []
        self.sim = None
        self.redis = None

    # -- setup ---------------------------------------------------------------------------
    def build(self):
        print("building (release)...", file=sys.stderr)
        sh(["cargo", "build", "--release", "--workspace", "--quiet"], cwd=ROOT)

    def start_sim(self):
        fx = os.path.join(self.tmp, "fixture.toml")
        with open(fx, "w") as f:
            f.write(FIXTURE)
        self.sim = subprocess.Popen(
            [os.path.join(REL, "portal-sim"), "--fixture", fx, "--tls-dir", self.tmp],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        info = {}
        for line in self.sim.stdout:
            if line.strip() == "READY":
                break
            k, _, v = line.strip().partition("=")
            info[k] = v
        self.url, self.ca = info["PORTAL_URL"], info["CA_FILE"]

    def service(self, name, text):
        svc = f"{self.tag}-{name}"
        with open(f"/etc/pam.d/{svc}", "w") as f:
            f.write(text)
        self.services.append(svc)
        return svc

    def module_service(self, name, extra=""):
        """A module configuration (`extra`: more [lockout] keys) and a service running the
        module alone with it: (config path, service name)."""
        cfg, lock = os.path.join(self.tmp, f"{name}.toml"), os.path.join(self.tmp, f"lock-{name}")
        with open(cfg, "w") as f:
            f.write(f"""[portal]
url = "{self.url}"
api_user = "{API_USER}"
api_key = "{API_KEY}"
ca_file = "{self.ca}"
[auth]
fail_delay_ms = 0
[lockout]
dir = "{lock}"
{extra}""")
        os.chmod(cfg, 0o600)
        return cfg, self.service(name, f"auth required {MODULE} config={cfg}\n")

    def faillock_service(self, name, opts, authsucc=False, silent=True):
        """pam_faillock.so around pam_deny.so: every attempt fails and is recorded."""
        text = f"""auth required {SECURITY}/pam_faillock.so preauth {'silent ' if silent else ''}{opts}
auth [success=1 default=bad] {SECURITY}/pam_deny.so
auth [default=die] {SECURITY}/pam_faillock.so authfail {opts}
"""
        if authsucc:
            text += f"auth sufficient {SECURITY}/pam_faillock.so authsucc {opts}\n"
        return self.service(name, text)

    def counting_faillock(self, name):
        """pam_faillock around pam_deny.so with a tally directory of its own and limits that
        never lock (every failure only counted): (tally directory, service)."""
        fdir = os.path.join(self.tmp, name)
        os.makedirs(fdir, exist_ok=True)
        return fdir, self.faillock_service(name, f"deny=100000 fail_interval=3600 nodelay dir={fdir}")

    def lock_out(self, svc, user):
        """Three empty passwords: counted without a portal call (max_failures = 3 locks)."""
        for _ in range(3):
            self.once(pamtester(svc, user), "\n")

    def cleanup(self):
        for svc in self.services:
            try:
                os.unlink(f"/etc/pam.d/{svc}")
            except FileNotFoundError:
                pass
        if self.sim:
            self.sim.send_signal(signal.SIGTERM)
            self.sim.wait(timeout=5)
        if self.redis:
            self.redis.kill()
            self.redis.wait(timeout=5)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def build_c(self, name, libs=(), shared=False):
        """benches/NAME.c compiled into the scratch directory (a program, or with `shared` a
        library): its path."""
        out = os.path.join(self.tmp, name + (".so" if shared else ""))
        pic = ["-shared", "-fPIC"] if shared else []
        sh(["gcc", "-O2", *pic, "-o", out, os.path.join(ROOT, "benches", f"{name}.c"), *libs])
        return out

    # -- measuring -----------------------------------------------------------------------
    @staticmethod
    def once(cmd, stdin="", env=None):
        t = time.perf_counter()
        p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env)
        return time.perf_counter() - t, p.returncode

    def samples(self, *cmds, runs=None):
        """Milliseconds of commands (`(argv, stdin, expected status[, environment])`) measured
        alternately (same machine state for each), in a new random order each round: in a fixed
        order, the command that comes first in a round (right after the script's own work
        between rounds) runs measurably slower. One list per command, index k from round k."""
        samples = [[] for _ in cmds]
        order = list(range(len(cmds)))
        for _ in range(runs or self.runs):
            self.rng.shuffle(order)
            for i in order:
                cmd, stdin, exp, *env = cmds[i]
                dt, rc = self.once(cmd, stdin, *env)
                if rc != exp:
                    raise SystemExit(f"{cmd} exited {rc}, expected {exp}")
                samples[i].append(dt * 1000)
        return samples

    def interleaved(self, *cmds, runs=None):
        """Medians of `samples`."""
        return tuple(statistics.median(x) for x in self.samples(*cmds, runs=runs))

    # -- 1. full login vs curl -------------------------------------------------------------
    def full_login(self):
        _, svc = self.module_service("login")
        login = (pamtester(svc, "alice"), f"{PW}\n{ANSWER}\n", 0)
        self.once(*login[:2])  # warms the question cache, as on any concentrator in use
        filt = json.dumps({"users": {"username": {"operation": "alice"}}})
        body = json.dumps({"parameters": ["alice", PW, 101, ANSWER]})
        curl = (["curl", "-sS", "-o", "/dev/null", "--cacert", self.ca, "-u", f"{API_USER}:{API_KEY}",
                 "-G", f"{self.url}/SoftLayer_Account/getUsers.json", "--data-urlencode", f"objectFilter={filt}",
                 "--next", "-sS", "-o", "/dev/null", "--cacert", self.ca, "-H", "Content-Type: application/json",
                 "-d", body, f"{self.url}/SoftLayer_User_Customer/getPortalLoginToken.json"], "", 0)
        m, c = self.interleaved(login, curl)
        return {"module_ms": m, "curl_ms": c, "ratio": m / c}

    # -- 2. locked refusal vs pam_faillock -------------------------------------------------
    def locked_pair(self, name):
        """mallory locked out of the module and nobody out of pam_faillock (3 failures each):
        (module config, module service, pam_faillock's options, pam_faillock service)."""
        cfg, svc = self.module_service(name, "user = { max_failures = 3, lock_s = 3600 }\n")
        self.lock_out(svc, "mallory")  # the full module counts the first and writes the digest, the front the rest
        fdir = os.path.join(self.tmp, f"faillock-{name}")
        os.makedirs(fdir, exist_ok=True)
        opts = f"deny=3 unlock_time=3600 nodelay dir={fdir}"
        fsvc = self.faillock_service(f"faillock-{name}", opts, authsucc=True)
        for _ in range(3):
            self.once(pamtester(fsvc, "nobody"), "x\n")
        return cfg, svc, opts, fsvc

    def locked(self):
        cfg, svc, opts, fsvc = self.locked_pair("locked")
        # Three ways to compare, and a fourth below without the log line. `preauth silent`
        # (pam_faillock's manual page) tells the user nothing, while pam_portal tells the user
        # why (SPEC §5); without `silent` pam_faillock tells the user too (two lines); with the
        # PAM_SILENT flag neither says anything.
        told = self.faillock_service("faillock-told", opts, authsucc=True, silent=False)
        ours = (pamtester(svc, "mallory"), "", 1)
        theirs = (pamtester(fsvc, "nobody"), "", 1)
        theirs_told = (pamtester(told, "nobody"), "", 1)
        ours_quiet = (pamtester(svc, "mallory", "authenticate(PAM_SILENT)"), "", 1)
        theirs_quiet = (pamtester(fsvc, "nobody", "authenticate(PAM_SILENT)"), "", 1)
        # The same process with pam_permit.so alone: what neither module costs.
        psvc = self.service("locked-permit", f"auth required {SECURITY}/pam_permit.so\n")
        bare = (pamtester(psvc, "nobody"), "", 0)
        # Each module loaded but not run: pam_permit.so, then the module, and `setcred` (which
        # only returns): what loading the module into the process costs.
        lsvc = self.service("load", f"auth required {SECURITY}/pam_permit.so\nauth required {MODULE} config={cfg}\n")
        flsvc = self.service("faillock-load", f"auth required {SECURITY}/pam_permit.so\n"
                                              f"auth required {SECURITY}/pam_faillock.so preauth silent {opts}\n")
        load = (pamtester(lsvc, "nobody", "setcred"), "", 0)
        fload = (pamtester(flsvc, "nobody", "setcred"), "", 0)
        # Both telling the user, with the decision's log line (SPEC §8; pam_faillock writes none
        # here) taken out of both processes: libpam's pam_syslog preloaded away (benches/nolog.c).
        env = dict(os.environ, LD_PRELOAD=self.build_c("nolog", shared=True))
        ours_nolog = (*ours, env)
        theirs_nolog = (*theirs_told, env)
        # A few milliseconds each, with a difference of a few percent: many more runs than the rest.
        runs = max(self.runs, 300)
        cmds = {"ours": ours, "theirs": theirs, "theirs_told": theirs_told, "ours_quiet": ours_quiet,
                "theirs_quiet": theirs_quiet, "bare": bare, "load": load, "fload": fload,
                "ours_nolog": ours_nolog, "theirs_nolog": theirs_nolog}
        smp = dict(zip(cmds, self.samples(*cmds.values(), runs=runs)))
        m, f, ft, mq, fq, p, ml, fl, mn, fn = (statistics.median(smp[k]) for k in cmds)
        return {"runs": runs, "module_ms": m, "faillock_ms": f, "permit_ms": p, "ratio": m / f,
                "ratio_ci": ratio_interval(smp["ours"], smp["theirs"]),
                "faillock_told_ms": ft, "told_ratio": m / ft, "told_ci": ratio_interval(smp["ours"], smp["theirs_told"]),
                "module_quiet_ms": mq, "faillock_quiet_ms": fq, "quiet_ratio": mq / fq,
                "quiet_ci": ratio_interval(smp["ours_quiet"], smp["theirs_quiet"]),
                "module_nolog_ms": mn, "faillock_nolog_ms": fn, "nolog_ratio": mn / fn,
                "nolog_ci": ratio_interval(smp["ours_nolog"], smp["theirs_nolog"]),
                "module_added_ms": m - p, "faillock_added_ms": f - p,
                "module_load_ms": ml - p, "faillock_load_ms": fl - p,
                "module_work_ms": m - ml, "faillock_work_ms": f - fl}

    def by_phase(self, cmds, rounds):
        """Each of `cmds` (name: a pam_phases command line) run `rounds` times, shuffled in each
        round: {name: medians of the whole process and of each phase, µs}."""
        samples = {k: [] for k in cmds}
        names = list(cmds)
        for _ in range(rounds):
            self.rng.shuffle(names)
            for n in names:
                t = time.perf_counter()
                p = subprocess.run(cmds[n], capture_output=True, text=True)
                wall = (time.perf_counter() - t) * 1e6
                start, auth, end = (float(x) for x in p.stdout.split())
                samples[n].append((wall, start, auth, end, wall - start - auth - end))
        out = {}
        for n, rows in samples.items():
            med = [statistics.median(c) for c in zip(*rows)]
            out[n] = dict(zip(["wall_us", "pam_start_us", "authenticate_us", "pam_end_us", "rest_us"], med))
        return out

    def phases(self, rounds=400):
        """The locked refusal and the counted failure by phase, in a C driver
        (benches/pam_phases.c) run as a fresh process per login like pamtester: pam_start
        (loading the modules), pam_authenticate, pam_end, and the rest of the process (exec,
        libraries, exit), as medians over shuffled rounds, for the module, pam_faillock and
        pam_permit.so alone."""
        drv = self.build_c("pam_phases", libs=["-lpam"])
        _, svc, _, fsvc = self.locked_pair("phases")
        psvc = self.service("permit-phases", f"auth required {SECURITY}/pam_permit.so\n")
        out = self.by_phase({"pam_portal": [drv, svc, "mallory", RHOST], "pam_faillock": [drv, fsvc, "nobody", RHOST],
                             "pam_permit": [drv, psvc, "nobody", RHOST]}, rounds)
        # A counted failure, as in the concurrent bursts but one process at a time: the driver
        # answers the password prompt with an empty line (counted without a portal call), and
        # pam_faillock's stack fails at pam_deny.so; limits that never lock, records that grow.
        _, csvc = self.module_service("fail-phases", CONC_LIMITS)
        _, cfsvc = self.counting_faillock("faillock-fail-phases")
        out["failure"] = self.by_phase({"pam_portal": [drv, csvc, "carol", RHOST],
                                        "pam_faillock": [drv, cfsvc, "nobody", RHOST],
                                        "pam_permit": [drv, psvc, "nobody", RHOST]}, rounds)
        # The decision's log line (SPEC §8), which pam_faillock does not write on this path: its
        # first call in a process, with and without the time zone already read.
        cost = self.build_c("syslog_cost")
        cold = [[float(x) for x in sh([cost]).stdout.split()] for _ in range(rounds // 2)]
        warm = [[float(x) for x in sh([cost, "tz"]).stdout.split()] for _ in range(rounds // 2)]
        out["syslog"] = {"first_line_us": statistics.median(r[1] for r in cold),
                         "tzset_us": statistics.median(r[0] for r in warm),
                         "first_line_after_tzset_us": statistics.median(r[1] for r in warm),
                         "second_line_us": statistics.median(r[2] for r in cold)}
        return out

    # -- 3. concurrent failure recording vs pam_faillock ----------------------------------
    def concurrent_failures(self, procs=32, total=320, rounds=16):
        cfg, svc = self.module_service("conc", CONC_LIMITS)
        fdir, fsvc = self.counting_faillock("faillock-conc")

        def ours_counted():
            n = user_failures(cfg, "carol")
            sh(pam_portal(cfg, "reset", "--user", "carol"))
            sh(pam_portal(cfg, "reset", "--ip", RHOST))
            return n

        def faillock_counted():  # its tally file keeps at most 1024 records: reset after each burst
            out = sh(["faillock", "--dir", fdir, "--user", "nobody"]).stdout
            n = len([l for l in out.splitlines() if re.match(r"^\d{4}-\d\d-\d\d", l.strip())])
            sh(["faillock", "--dir", fdir, "--user", "nobody", "--reset"])
            return n

        # Bursts alternate (ours, theirs, ours, ...): medians of `rounds` each; every burst's
        # count is checked, and the records are reset between bursts.
        ours_r, theirs_r, counted, fcounted = [], [], 0, 0
        for _ in range(rounds):
            ours_r.append(burst(pamtester(svc, "carol"), "\n", procs, total)[0])
            counted += ours_counted()
            theirs_r.append(burst(pamtester(fsvc, "nobody"), "x\n", procs, total)[0])
            fcounted += faillock_counted()
        ours, theirs = statistics.median(ours_r), statistics.median(theirs_r)
        pairs = [t / o for o, t in zip(ours_r, theirs_r)]  # each burst beside the next
        pair = statistics.median(pairs)
        total *= rounds
        return {"procs": procs, "total": total, "rounds": rounds, "module_per_s": ours, "faillock_per_s": theirs,
                "ratio": ours / theirs, "pair_ratio": pair,
                "pair_ci": median_interval(pairs), "module_runs": ours_r, "faillock_runs": theirs_r,
                "module_counted": counted, "faillock_counted": fcounted}

    # -- 4. logins per second --------------------------------------------------------------
    def throughput(self, total=240):
        _, svc = self.module_service("rate")
        cmd = pamtester(svc, "alice")
        self.once(cmd, f"{PW}\n{ANSWER}\n")
        out = {}
        for n in (1, 8, 32):
            rate, rcs = burst(cmd, f"{PW}\n{ANSWER}\n", n, total)
            out[n] = {"per_s": rate, "ok": rcs.count(0), "total": total}
        return out

    # -- 6. Redis backend beside the file backend ----------------------------------------
    def start_redis(self):
        if not shutil.which("redis-server"):
            return False
        with socket.socket() as so:
            so.bind(("127.0.0.1", 0))
            port = so.getsockname()[1]
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.02)
        self.redis_url = f"redis://127.0.0.1:{port}"
        return True

    def redis_vs_files(self, procs=32, total=640):
        backend = {"files": "", "redis": f'backend = "redis"\nredis_url = "{self.redis_url}"\n'}
        out = {}
        # A locked username refused: one read of the record (files: a file; redis: one GET).
        cmds = {}
        for name, extra in backend.items():
            _, svc = self.module_service(f"lock-{name}", extra + "user = { max_failures = 3, lock_s = 3600 }\n")
            self.lock_out(svc, "mallory")
            cmds[name] = (pamtester(svc, "mallory"), "", 1)
        f_ms, r_ms = self.interleaved(cmds["files"], cmds["redis"])
        out["locked"] = {"files_ms": f_ms, "redis_ms": r_ms, "ratio": r_ms / f_ms}
        # Failures recorded by concurrent processes (user + address records each).
        for name, extra in backend.items():
            cfg, svc = self.module_service(f"conc-{name}", extra + CONC_LIMITS)
            rate, _ = burst(pamtester(svc, "carol"), "\n", procs, total)
            out[f"conc_{name}"] = {"per_s": rate, "counted": user_failures(cfg, "carol"), "total": total,
                                   "procs": procs}
        return out

    # -- 5. size, crates, memory -----------------------------------------------------------
    def footprint(self):
        def stripped_size(path):
            copy = os.path.join(self.tmp, "stripped.so")
            shutil.copy(path, copy)
            sh(["strip", copy])
            return os.path.getsize(copy)

        def crates_of(pkg):
            tree = sh(["cargo", "tree", "-p", pkg, "-e", "normal", "--prefix", "none"], cwd=ROOT).stdout
            return {l.split()[0] for l in tree.splitlines() if l.strip()} - {pkg, "pam_portal"}

        module_crates, half_crates = crates_of("pam_portal_module"), crates_of("pam_portal_http")
        _, svc = self.module_service("rss")
        psvc = self.service("permit", f"auth required {SECURITY}/pam_permit.so\n")

        def maxrss(service, stdin):
            out = os.path.join(self.tmp, "time.out")
            subprocess.run(["/usr/bin/time", "-o", out, "-f", "%M", *pamtester(service, "alice")], input=stdin,
                           capture_output=True, text=True)
            with open(out) as f:
                return int(f.read().split()[-1])

        ours = statistics.median(maxrss(svc, f"{PW}\n{ANSWER}\n") for _ in range(5))
        base = statistics.median(maxrss(psvc, "") for _ in range(5))
        return {"stripped_bytes": stripped_size(MODULE), "full_stripped_bytes": stripped_size(FULL),
                "half_stripped_bytes": stripped_size(HALF),
                "crates": len(module_crates), "half_crates": len(half_crates),
                "all_crates": len(module_crates | half_crates),
                "rss_kib": ours, "rss_permit_kib": base, "rss_added_kib": ours - base}


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores, {cpu}, {platform.platform()}"


def redis_report(rd):
    lk, cfl, crd = rd["locked"], rd["conc_files"], rd["conc_redis"]
    return [
        "Lockout backends (issue 8): `backend = \"redis\"` against a redis-server on loopback, beside the file backend.",
        "",
        "| measurement | files | redis | redis / files |",
        "|---|---|---|---|",
        f"| locked username refused (pamtester) | {lk['files_ms']:.1f} ms | {lk['redis_ms']:.1f} ms | {lk['ratio']:.2f} |",
        f"| failures recorded by {crd['procs']} concurrent processes ({crd['total']} in all) | {cfl['per_s']:.0f}/s, counted {cfl['counted']}/{cfl['total']} | {crd['per_s']:.0f}/s, counted {crd['counted']}/{crd['total']} | {crd['per_s'] / cfl['per_s']:.2f} (throughput) |",
    ]


def ratio_interval(ours, theirs, resamples=2000):
    """A 95 % interval for median(ours) / median(theirs), samples taken round by round: the
    rounds resampled with replacement, both sides of a round kept together (paired bootstrap)."""
    return bootstrap(lambda idx: statistics.median(ours[i] for i in idx) / statistics.median(theirs[i] for i in idx),
                     len(ours), resamples)


def median_interval(values, resamples=2000):
    """A 95 % interval for the median of `values` (resampled with replacement)."""
    return bootstrap(lambda idx: statistics.median(values[i] for i in idx), len(values), resamples)


def bootstrap(statistic, n, resamples):
    """The 2.5th and 97.5th percentiles of `statistic` over `resamples` draws of n indices."""
    rng = random.Random(11)
    values = sorted(statistic([rng.randrange(n) for _ in range(n)]) for _ in range(resamples))
    return values[int(0.025 * resamples)], values[int(0.975 * resamples) - 1]


def ci(interval):
    """A ratio's 95 % interval as the table shows it."""
    return f"[{interval[0]:.3f}–{interval[1]:.3f}]"


def phase_rows(phases):
    """Table rows of `Bench.by_phase` medians, µs."""
    return [f"| {n} | {ph['wall_us']:.0f} | {ph['pam_start_us']:.0f} | {ph['authenticate_us']:.0f} | "
            f"{ph['pam_end_us']:.0f} | {ph['rest_us']:.0f} |"
            for n, ph in ((n, phases[n]) for n in ("pam_portal", "pam_faillock", "pam_permit"))]


def report(r, runs):
    f, l, c, t, s = r["full"], r["locked"], r["conc"], r["rate"], r["size"]
    lines = [
        f"Machine: {machine()}. Medians of {runs} runs per measurement; the two sides of each ratio",
        "measured alternately in the same run. [a–b]: the ratio's 95 % interval (the rounds",
        "resampled, both sides of a round together).",
        "",
        "| measurement | pam_portal | reference | ratio (≤ 1.0 is the goal) |",
        "|---|---|---|---|",
        f"| full password + question login, fresh process (pamtester) vs curl making the same 2 HTTPS calls on one connection | {f['module_ms']:.1f} ms | curl {f['curl_ms']:.1f} ms | {f['ratio']:.2f} |",
        f"| locked username refused (pamtester, {l['runs']} runs), each module telling the user (pam_faillock's `preauth` without `silent`) | {l['module_ms']:.3f} ms | pam_faillock {l['faillock_told_ms']:.3f} ms | {l['told_ratio']:.3f} {ci(l['told_ci'])} |",
        f"| the same, neither telling the user (the PAM_SILENT flag) | {l['module_quiet_ms']:.3f} ms | pam_faillock {l['faillock_quiet_ms']:.3f} ms | {l['quiet_ratio']:.3f} {ci(l['quiet_ci'])} |",
        f"| the same, pam_portal telling the user, pam_faillock `preauth silent` (its manual's example) | {l['module_ms']:.3f} ms | pam_faillock {l['faillock_ms']:.3f} ms | {l['ratio']:.3f} {ci(l['ratio_ci'])} |",
        f"| the first, with the decision's log line (SPEC §8; pam_faillock writes none here) taken out of both processes (benches/nolog.c preloaded) | {l['module_nolog_ms']:.3f} ms | pam_faillock {l['faillock_nolog_ms']:.3f} ms | {l['nolog_ratio']:.3f} {ci(l['nolog_ci'])} |",
        f"| the third row, above pamtester with pam_permit.so alone ({l['permit_ms']:.2f} ms) | +{l['module_added_ms']:.2f} ms | pam_faillock +{l['faillock_added_ms']:.2f} ms | {l['module_added_ms'] / l['faillock_added_ms']:.2f} |",
        f"| of which loading the module (`setcred` of a stack that loads it) | +{l['module_load_ms']:.2f} ms | pam_faillock +{l['faillock_load_ms']:.2f} ms | |",
        f"| of which the refusal itself | {l['module_work_ms']:.2f} ms | pam_faillock {l['faillock_work_ms']:.2f} ms | {l['module_work_ms'] / l['faillock_work_ms']:.2f} |",
        f"| failures recorded by {c['procs']} concurrent processes ({c['total'] // c['rounds']} per burst, {c['rounds']} alternating bursts each) | {c['module_per_s']:.0f}/s, counted {c['module_counted']}/{c['total']} | pam_faillock {c['faillock_per_s']:.0f}/s, counted {c['faillock_counted']}/{c['total']} | {c['pair_ratio']:.3f} {ci(c['pair_ci'])} (median over the bursts of faillock's rate / ours, each pair side by side: ≤ 1.0 means ours is at least as fast) |",
        "",
        "The locked refusal by PAM call (benches/pam_phases.c, a fresh process per login as above, "
        "medians of 400 shuffled rounds, µs):",
        "",
        "| | whole process | pam_start (loads the stack) | pam_authenticate | pam_end | the rest (exec, libraries, exit) |",
        "|---|---|---|---|---|---|",
    ]
    lines += phase_rows(r["phases"])
    lines += [
        "",
        "A counted failure by PAM call (the same driver; an empty password counted without a portal call, "
        "pam_faillock's stack failing at pam_deny.so; limits that never lock, so the records grow to "
        "one line per round as in the bursts):",
        "",
        "| | whole process | pam_start (loads the stack) | pam_authenticate | pam_end | the rest (exec, libraries, exit) |",
        "|---|---|---|---|---|---|",
    ]
    lines += phase_rows(r["phases"]["failure"])
    sl = r["phases"]["syslog"]
    lines += [
        "",
        f"The first log line of a fresh process (benches/syslog_cost.c; pam_portal writes one per decision, SPEC §8; "
        f"pam_faillock writes none on this path): {sl['first_line_us']:.0f} µs, of which reading the time zone "
        f"{sl['tzset_us']:.0f} µs; a later line {sl['second_line_us']:.1f} µs.",
        "",
        "| concurrent clients | full logins per second | succeeded |",
        "|---|---|---|",
    ]
    for n, v in t.items():
        lines.append(f"| {n} | {v['per_s']:.0f} | {v['ok']}/{v['total']} |")
    if r.get("redis"):
        lines += [""] + redis_report(r["redis"])
    lines += [
        "",
        f"Module: pam_portal.so (the front) {s['stripped_bytes'] / 1e6:.2f} MB stripped, "
        f"the full module libpam_portal_full.so {s['full_stripped_bytes'] / 1e6:.2f} MB, loaded for logins that go on to the portal (and the first after a change of the configuration) "
        f"(both built from the pam_portal library: {s['crates']} crates in its dependency tree), "
        f"and the HTTP half libpam_portal_http.so {s['half_stripped_bytes'] / 1e6:.2f} MB ({s['half_crates']} crates), "
        f"loaded only for portal calls; {s['all_crates']} crates in all; "
        f"resident memory of a pamtester login {s['rss_kib']} KiB against {s['rss_permit_kib']} KiB with pam_permit.so "
        f"(+{s['rss_added_kib']} KiB).",
    ]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--only-redis", action="store_true", help="only the Redis backend beside the file backend")
    ap.add_argument("--no-redis", action="store_true", help="skip the Redis backend's measurements")
    ap.add_argument("--write", action="store_true", help="rewrite the results section of BENCHMARKS.md")
    ap.add_argument("--only", choices=["locked", "conc", "phases"],
                    help="one measurement, printed as JSON (quick checks; phases: the locked refusal and a counted failure by PAM call)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark writes PAM service files to /etc/pam.d")
    b = Bench(args.runs)
    try:
        b.build()
        b.start_sim()
        if args.only:
            out = {"locked": b.locked, "conc": b.concurrent_failures, "phases": b.phases}[args.only]()
        elif args.only_redis:
            if not b.start_redis():
                raise SystemExit("redis-server is not installed (scripts/deps/redis.txt)")
            rd = b.redis_vs_files()
        else:
            results = {"full": b.full_login(), "locked": b.locked(), "phases": b.phases(),
                       "conc": b.concurrent_failures(), "rate": b.throughput(), "size": b.footprint()}
            if not args.no_redis and b.start_redis():
                results["redis"] = b.redis_vs_files()
    finally:
        b.cleanup()
    if args.only:
        print(json.dumps(out, indent=1))
        return
    if args.only_redis:
        print("\n".join(redis_report(rd)))
        print(json.dumps(rd, indent=1), file=sys.stderr)
        return
    text = report(results, args.runs)
    print(text)
    print(json.dumps(results, indent=1), file=sys.stderr)
    if args.write:
        path = os.path.join(ROOT, "BENCHMARKS.md")
        with open(path) as f:
            doc = f.read()
        start, end = "<!-- results -->", "<!-- /results -->"
        doc = doc[: doc.index(start) + len(start)] + "\n" + text + "\n" + doc[doc.index(end):]
        with open(path, "w") as f:
            f.write(doc)


if __name__ == "__main__":
    main()
