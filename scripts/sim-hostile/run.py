#!/usr/bin/env python3
"""Hostile clients against a quarry-sim process: what they cost it in memory
and connections. Figures go to BENCHMARKS.md ("The simulator under hostile
clients"); this is a measurement, not a test (not run by CI).

Usage: scripts/sim-hostile/run.py [SIM_BINARY] [-- extra quarry-sim flags]
       e.g. scripts/sim-hostile/run.py target/debug/quarry-sim -- --idle-timeout-secs 20 --header-timeout-secs 5

SIM_BINARY defaults to target/release/quarry-sim. ONLY=bodies,cap runs some
scenarios; WATCH_SECS (default 30) is how long the idle and slowloris
scenarios watch, so pass timeouts shorter than it (the defaults, 120 s idle
and 10 s head, need WATCH_SECS=130). Scenarios, each against a fresh
simulator on a free loopback port:

  bodies     20 connections each POST a 23 MiB body with no Authorization
  badsig     the same with a SigV4 signature by the known example key id but
             a wrong secret (the signature can only be checked after the body)
  idle       2,000 connections that send nothing
  slowloris  2,000 connections that send a request head one byte a second
  cap        --max-connections 100, 100 idle connections, then one request

For each it prints one JSON line: the simulator's RSS (VmRSS, KiB) before,
at its peak while the clients run (sampled every 20 ms) and 2 s after they
closed; bytes the clients got to send before the simulator answered or
closed; connections the simulator closed by itself; the answer to the
request past the connection cap and how long it took.
"""
import datetime
import hashlib
import hmac
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time

MODEL_PATH = "/model/meta.llama3-3-70b-instruct-v1%3A0/converse"
BODY_BYTES = 23 * 1024 * 1024
CHUNK = 64 * 1024
# How long the idle and slowloris scenarios watch their connections (see
# the usage above); closing times are counted from when the last of the
# 2,000 connections was open.
WATCH_SECS = float(os.environ.get("WATCH_SECS", "30"))


def readable(s):
    """True when `s` has data or an EOF to read (poll: no 1,024-descriptor cap)."""
    p = select.poll()
    p.register(s, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(p.poll(0))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Sim:
    def __init__(self, binary, flags):
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--threads", "2", *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        assert line.startswith("listening on http://"), line
        host, port = line.removeprefix("listening on http://").rsplit(":", 1)
        self.addr = (host, int(port))
        self.peak = 0
        self._sampling = False

    def rss(self):
        return rss_kib(self.proc.pid)

    def start_sampling(self):
        self.peak = self.rss()
        self._sampling = True

        def sample():
            while self._sampling:
                self.peak = max(self.peak, self.rss())
                time.sleep(0.02)

        self._sampler = threading.Thread(target=sample, daemon=True)
        self._sampler.start()

    def stop_sampling(self):
        self._sampling = False
        self._sampler.join()
        return self.peak

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def sign_bad(host, body_len):
    """Headers signed by AKIDEXAMPLE with a wrong secret, payload hash of
    zeros: the simulator can only find the mismatch after the body."""
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    scope = f"{day}/us-east-1/bedrock/aws4_request"
    signature = hmac.new(b"not-the-secret", amz_date.encode(), hashlib.sha256).hexdigest()
    return {
        "x-amz-date": amz_date,
        "authorization": f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{scope}, "
        f"SignedHeaders=content-type;host;x-amz-date, Signature={signature}",
    }


def head(addr, body_len, extra):
    lines = [
        f"POST {MODEL_PATH} HTTP/1.1",
        f"host: {addr[0]}:{addr[1]}",
        "content-type: application/json",
        f"content-length: {body_len}",
    ]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def send_body(addr, extra, result, i):
    """Sends the head and up to BODY_BYTES of body; stops at the first byte
    of an answer or when the server closes. Records bytes sent and status."""
    s = socket.create_connection(addr)
    sent, status = 0, None
    try:
        s.sendall(head(addr, BODY_BYTES, extra))
        chunk = b"x" * CHUNK
        while sent < BODY_BYTES:
            if readable(s):
                break
            try:
                s.sendall(chunk[: min(CHUNK, BODY_BYTES - sent)])
            except OSError:
                break
            sent += min(CHUNK, BODY_BYTES - sent)
        s.settimeout(30)
        try:
            first = s.recv(64)
            status = first.split(b"\r\n", 1)[0].decode(errors="replace") or "closed"
        except OSError as e:
            status = f"error: {e.__class__.__name__}"
    finally:
        s.close()
    result[i] = (sent, status)


def bodies(binary, flags, signed):
    sim = Sim(binary, flags)
    try:
        time.sleep(0.5)
        before = sim.rss()
        sim.start_sampling()
        result = [None] * 20
        extra = sign_bad(sim.addr[0], BODY_BYTES) if signed else {}
        threads = [
            threading.Thread(target=send_body, args=(sim.addr, extra, result, i))
            for i in range(20)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        peak = sim.stop_sampling()
        time.sleep(2)
        after = sim.rss()
        sent = [r[0] for r in result]
        statuses = sorted({r[1] for r in result})
        return {
            "scenario": "badsig" if signed else "bodies",
            "connections": 20,
            "body_bytes_each": BODY_BYTES,
            "rss_kib": {"before": before, "peak": peak, "after_close": after},
            "client_bytes_sent": {"min": min(sent), "max": max(sent), "total": sum(sent)},
            "answers": statuses,
        }
    finally:
        sim.stop()


def closed_by_server(s):
    """True when the server closed (EOF or reset); never blocks."""
    try:
        if not readable(s):
            return False
        data = s.recv(4096, socket.MSG_PEEK)
        if data == b"":
            return True
        # An answer (a 408 or 503) then a close counts as closed once EOF.
        s.recv(65536)
        return closed_by_server(s)
    except OSError:
        return True


def many(binary, flags, slow):
    sim = Sim(binary, flags)
    try:
        time.sleep(0.5)
        before = sim.rss()
        conns = [socket.create_connection(sim.addr) for _ in range(2000)]
        head_bytes = head(sim.addr, 2, {}) if slow else b""
        opened = time.monotonic()
        time.sleep(0.5)
        during = sim.rss()
        closed_at = {}
        sent = 0
        while time.monotonic() - opened < WATCH_SECS:
            tick = time.monotonic()
            for i, s in enumerate(conns):
                if i in closed_at:
                    continue
                if closed_by_server(s):
                    closed_at[i] = time.monotonic() - opened
                elif slow and sent < len(head_bytes):
                    try:
                        s.send(head_bytes[sent : sent + 1])
                    except OSError:
                        closed_at[i] = time.monotonic() - opened
            sent += 1
            if len(closed_at) == len(conns):
                break
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        for s in conns:
            s.close()
        times = sorted(closed_at.values())
        return {
            "scenario": "slowloris" if slow else "idle",
            "connections": len(conns),
            "watched_secs": WATCH_SECS,
            "closed_by_server": len(times),
            "closed_after_secs": {"first": round(times[0], 1), "last": round(times[-1], 1)}
            if times
            else None,
            "rss_kib": {"before": before, "with_connections": during},
        }
    finally:
        sim.stop()


def cap(binary, flags):
    sim = Sim(binary, [*flags, "--max-connections", "100"])
    try:
        time.sleep(0.5)
        held = [socket.create_connection(sim.addr) for _ in range(100)]
        time.sleep(0.5)
        start = time.monotonic()
        s = socket.create_connection(sim.addr)
        s.settimeout(30)
        s.sendall(b"GET /_quarry/health HTTP/1.1\r\nhost: x\r\n\r\n")
        try:
            answer = s.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace") or "closed"
        except socket.timeout:
            answer = "no answer in 30 s"
        except OSError as e:
            answer = f"error: {e.__class__.__name__}"
        took = time.monotonic() - start
        s.close()
        for h in held:
            h.close()
        return {"scenario": "cap", "max_connections": 100, "answer": answer, "secs": round(took, 3)}
    finally:
        sim.stop()


def main():
    args = sys.argv[1:]
    flags = []
    if "--" in args:
        flags = args[args.index("--") + 1 :]
        args = args[: args.index("--")]
    binary = args[0] if args else "target/release/quarry-sim"
    only = os.environ.get("ONLY", "bodies,badsig,idle,slowloris,cap").split(",")
    runs = {
        "bodies": lambda: bodies(binary, flags, signed=False),
        "badsig": lambda: bodies(binary, flags, signed=True),
        "idle": lambda: many(binary, flags, slow=False),
        "slowloris": lambda: many(binary, flags, slow=True),
        "cap": lambda: cap(binary, flags),
    }
    for name in only:
        print(json.dumps(runs[name]()), flush=True)


if __name__ == "__main__":
    main()
