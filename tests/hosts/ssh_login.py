#!/usr/bin/python3
"""One SSH login with paramiko, for tests/hosts_sshd.rs.

    ssh_login.py --host 127.0.0.1 --port N --user U [--bind 127.0.0.7]
                 [--answer TEXT]... | [--key FILE] [--command CMD] [--timeout S]

Keyboard-interactive (default): every prompt of every round is answered with the next
--answer, in order; the prompts are recorded. With --key: public-key authentication only.
After a successful authentication, --command runs in a session channel (a real login: PAM
account and session, the user's shell).

Prints one JSON object on stdout and exits 0 whenever the login was attempted:
  {"auth": "ok" | "failed" | "error", "error": "...", "rounds": [{"name", "instructions",
   "prompts": [{"text", "echo", "answered"}]}], "elapsed_ms": N,
   "command": {"status": N, "stdout": "...", "stderr": "..."}}
"""

import argparse
import json
import socket
import sys
import time

import paramiko


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--bind", default=None, help="client source address")
    ap.add_argument("--answer", action="append", default=[])
    ap.add_argument("--key", default=None)
    ap.add_argument("--command", default=None)
    ap.add_argument("--timeout", type=float, default=150.0)
    a = ap.parse_args()

    out = {"auth": "error", "error": "", "rounds": [], "elapsed_ms": 0}
    answers = list(a.answer)
    started = time.monotonic()

    def handler(title, instructions, prompt_list):
        rnd = {"name": title, "instructions": instructions, "prompts": []}
        out["rounds"].append(rnd)
        replies = []
        for text, echo in prompt_list:
            answered = bool(answers)
            rnd["prompts"].append({"text": text, "echo": bool(echo), "answered": answered})
            if not answered:
                raise paramiko.AuthenticationException("no answer left for prompt %r" % text)
            replies.append(answers.pop(0))
        return replies

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(a.timeout)
    t = None
    try:
        if a.bind:
            sock.bind((a.bind, 0))
        sock.connect((a.host, a.port))
        t = paramiko.Transport(sock)
        t.banner_timeout = a.timeout
        t.auth_timeout = a.timeout
        t.start_client(timeout=a.timeout)
        try:
            if a.key:
                key = paramiko.Ed25519Key.from_private_key_file(a.key)
                t.auth_publickey(a.user, key)
            else:
                t.auth_interactive(a.user, handler)
        except paramiko.AuthenticationException as e:
            out["auth"] = "failed"
            out["error"] = str(e)
        else:
            out["auth"] = "ok" if t.is_authenticated() else "failed"
        out["elapsed_ms"] = int((time.monotonic() - started) * 1000)
        if out["auth"] == "ok" and a.command is not None:
            ch = t.open_session(timeout=a.timeout)
            ch.settimeout(a.timeout)
            ch.exec_command(a.command)
            so = ch.makefile("rb").read()
            se = ch.makefile_stderr("rb").read()
            out["command"] = {
                "status": ch.recv_exit_status(),
                "stdout": so.decode("utf-8", "replace"),
                "stderr": se.decode("utf-8", "replace"),
            }
    except Exception as e:  # a transport-level failure: report it, do not hide it
        if out["auth"] == "error":
            out["error"] = "%s: %s" % (type(e).__name__, e)
        else:
            out["command_error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        if not out["elapsed_ms"]:
            out["elapsed_ms"] = int((time.monotonic() - started) * 1000)
        if t is not None:
            t.close()
        sock.close()
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
