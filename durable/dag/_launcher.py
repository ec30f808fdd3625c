"""The launcher a script step runs under, so that its CPU time and peak memory are its own.

Why a launcher. The figures come from wait4(2) on the script's process: the kernel's rusage of
that one child, already summed with every descendant it waited for. Nothing worker-wide would
do: getrusage(RUSAGE_CHILDREN) before and after a script also counts the other children
reaped meanwhile, and the worker runs many steps at once. But a process forked (or vforked, or
posix_spawned) by the worker starts life in a copy of the worker's memory, and Linux keeps the
high-water RSS of the memory image a process had before exec: every script the worker started
itself would report a peak of at least the worker's own size (measured: 200 MB for `true`
forked from a 200 MB process). So the worker starts this small launcher (`python -S -I`, about
20 ms), which forks the script from its own small image, waits for it with wait4 and writes
the outcome to a pipe the worker reads. The peak of a tiny script is then the launcher's image
it was forked from (about 7 MB: `true` reports that), never the worker's. The report:

    "<wait status> <user+system seconds> <max rss>"

The launcher leads the script's process group (the worker starts it in a new session), so the
group kill of `run_script` reaches both. A timeout's SIGTERM is the script's to obey: the
launcher survives it (a no-op handler, which exec resets to the default for the script) and
still reports. A launcher killed with SIGKILL (the group kill after the grace period, a cancel,
the worker's death) reports nothing: the step then has no figures. The script asks the kernel
for SIGKILL when the launcher dies (PR_SET_PDEATHSIG), as the launcher does for the worker, so
a dead worker leaves no script running. `memory_mb`'s RLIMIT_DATA is set in the script only,
between fork and exec: the launcher is single-threaded, so that is safe there.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

# argv: <report fd> <RLIMIT_DATA bytes or "-"> <the script's argv...>
_CODE = r"""
import os, resource, signal, sys
report, limit, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
os.set_inheritable(report, False)
signal.signal(signal.SIGTERM, lambda *_: None)
libc = None
if sys.platform == "linux":
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
me = os.getpid()
pid = os.fork()
if pid == 0:
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if libc is not None:
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != me:
                os._exit(137)
        if limit != "-":
            resource.setrlimit(resource.RLIMIT_DATA, (int(limit), int(limit)))
        os.execv(argv[0], argv)
    except BaseException as exc:
        os.write(2, ("cannot run %s: %s\n" % (argv[0], exc)).encode())
    os._exit(127)
_, status, usage = os.wait4(pid, 0)
os.write(report, b"%d %r %d" % (status, usage.ru_utime + usage.ru_stime, usage.ru_maxrss))
"""

# ru_maxrss is in KiB on Linux and the BSDs, in bytes on macOS.
_RSS_UNIT = 1024 if sys.platform == "darwin" else 1


def launcher_argv(report_fd: int, memory_bytes: int | None, argv: list[str]) -> list[str]:
    limit = "-" if memory_bytes is None else str(memory_bytes)
    return [sys.executable, "-S", "-I", "-c", _CODE, str(report_fd), limit, *argv]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the script ended: `returncode` as subprocess gives it (-signal if a signal ended
    it); the figures are None when the launcher could not report them."""

    returncode: int
    cpu_seconds: float | None
    max_rss_kb: int | None


def read_outcome(report_fd: int, launcher_returncode: int) -> Outcome:
    """The launcher's report, once the launcher has exited (so whatever it wrote is in the
    pipe); without one, the launcher's own exit (it was killed) stands for the script's."""
    os.set_blocking(report_fd, False)
    try:
        text = os.read(report_fd, 256).decode()
    except (BlockingIOError, UnicodeDecodeError):
        text = ""
    try:
        status, seconds, rss = (f(w) for f, w in zip((int, float, int), text.split(), strict=True))
    except ValueError:  # nothing (or not what the launcher writes) in the pipe
        return Outcome(launcher_returncode, None, None)
    return Outcome(
        returncode=os.waitstatus_to_exitcode(status),
        cpu_seconds=round(seconds, 6),
        max_rss_kb=rss // _RSS_UNIT,
    )
