"""Run a Python script or module in this process and report its peak memory on stderr at exit.

``ru_maxrss`` (from ``wait4`` or ``getrusage``) keeps the high-water mark of the forking parent across
``exec``, so it reports the benchmark's own size; ``VmHWM`` in ``/proc/self/status`` belongs to this
process's address space alone, which starts afresh at ``exec``.

    python bench/peak_memory.py -m s2t_live.cli transcribe ...   |   python bench/peak_memory.py script.py ...

The report is written at interpreter exit, or just before ``os._exit`` for commands that skip the
interpreter's teardown.
"""

from __future__ import annotations

import atexit
import os
import runpy
import sys


def report() -> None:
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    sys.stderr.write(f"PEAK_RSS_KIB {peak}\n")


def report_then_exit(code: int) -> None:
    report()
    _exit(code)


_exit = os._exit

if __name__ == "__main__":
    atexit.register(report)
    os._exit = report_then_exit  # a command that ends with os._exit (s2t-live does) skips atexit
    if sys.argv[1] == "-m":
        sys.argv = [sys.argv[2], *sys.argv[3:]]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = sys.argv[1:]
        runpy.run_path(sys.argv[0], run_name="__main__")
