"""Shared helpers for the benchmarks: timing, medians, child processes, machine facts."""
from __future__ import annotations

import glob
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def median(xs):
    return statistics.median(xs)


def percentile(sorted_xs, q):
    """Nearest-rank percentile of an already sorted list."""
    idx = min(len(sorted_xs) - 1, max(0, int(round(q * (len(sorted_xs) - 1)))))
    return sorted_xs[idx]


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def ipc_address(name: str) -> str:
    d = tempfile.mkdtemp(prefix="vtpu-bench-")
    return f"ipc://{d}/{name}.sock"


@contextmanager
def child(cmd, ready_prefix: str, timeout: float = 20.0):
    """Start a child process and wait for its ready line; always stop it."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + timeout
        line = proc.stdout.readline()
        if not line.startswith(ready_prefix) or time.time() > deadline:
            raise RuntimeError(f"{cmd[0]} did not start: {line!r} {proc.stderr.read()[-2000:]}")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def _status_bytes(pid: int | str, field: str) -> int | None:
    """A byte figure of /proc/PID/status (``VmRSS``, ``VmHWM``), None where there is none."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def rss_bytes(pid: int) -> int:
    got = _status_bytes(pid, "VmRSS")
    if got is None:
        raise RuntimeError("no VmRSS")
    return got


def thread_cpu_ms(pid: int | str = "self") -> dict[int, float]:
    """CPU time (user + system, ms) of each thread of a process so far, by thread id; {} where /proc
    has none. A thread gone since is missing: diff two calls for what ran in between."""
    tick = 1000 / os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for d in glob.glob(f"/proc/{pid}/task/*/stat"):
        try:
            with open(d) as f:
                s = f.read()
        except OSError:  # the thread ended
            continue
        fields = s[s.rindex(")") + 2:].split()  # after the name, which may hold spaces
        out[int(d.split("/")[4])] = (int(fields[11]) + int(fields[12])) * tick
    return out


def peak_rss_bytes(pid: int | str = "self") -> int | None:
    """A process's peak RSS (VmHWM), bytes; None where /proc has no such figure."""
    return _status_bytes(pid, "VmHWM")


#: Vector extensions that change which kernels ORT, torch and llama.cpp pick (and so their speed).
_VECTOR_FLAGS = (("avx512f", "AVX-512"), ("avx512_bf16", "BF16"), ("avx512_vnni", "VNNI"), ("avx_vnni", "AVX-VNNI"), ("amx_tile", "AMX"))


def machine() -> str:
    """The CPU (model and the vector extensions that decide the kernels: VMs sold under one model
    name differ here), cores, memory, OS, Node and Python."""
    cpu, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu == "unknown CPU":
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    if flags:
        have = [name for flag, name in _VECTOR_FLAGS if flag in flags]
        cpu += f" ({', '.join(have)})" if have else (" (AVX2, no AVX-512)" if "avx2" in flags else " (no AVX2)")
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, "
            f"Node {node}, Python {sys.version.split()[0]}")
