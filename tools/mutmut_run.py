"""mutmut's command line, with its wall-clock timeouts made safe on a shared machine.

mutmut 3 registers a deadline for every mutant process it forks and, when the deadline passes, sends
SIGXCPU to that pid, even when the process ended long before and was reaped: its pid may by then belong
to any other process (pid_max is 32,768 here and the suite forks a PostgreSQL backend per connection, so
pids wrap within minutes). This replaces mutmut's timeout thread by one that signals a pid only while it
is still an unreaped child of this process. Run as ``python tools/mutmut_run.py run …``.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import signal
import sys
import time

from mutmut.workers import timeout


def _is_own_child(pid: int) -> bool:
    try:
        # WNOWAIT: only look; the runner reaps the child itself
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _own_children_timeout_thread() -> None:
    heap, lock = timeout._timeout_heap, timeout._heap_lock
    with lock:
        while True:
            while not heap:
                lock.wait()
            now = time.time()
            while heap and heap[0][0] <= now:
                _, pid = heapq.heappop(heap)
                if _is_own_child(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGXCPU)
            if heap:
                lock.wait(timeout=max(0.0, heap[0][0] - now))


timeout._timeout_checker_thread = _own_children_timeout_thread

if __name__ == "__main__":
    from mutmut.__main__ import cli

    sys.argv[0] = "mutmut"
    sys.exit(cli())
