"""The worker_id fallback used without xdist (make mutate): one slot per live process, kept for its life."""

from __future__ import annotations

import os
from pathlib import Path

from support.worker_id import claim_slot


def _claim_in_child(directory: Path) -> str:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: claim, report, exit without running pytest's cleanup
        os.close(read)
        os.write(write, claim_slot(directory).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    return answer


def test_a_process_keeps_its_slot_and_a_fork_takes_another(tmp_path: Path) -> None:
    mine = claim_slot(tmp_path)
    assert mine.startswith("slot")
    assert claim_slot(tmp_path) == mine
    child = _claim_in_child(tmp_path)
    assert child != mine
    # the child has exited, so its slot is free again for the next fork
    assert _claim_in_child(tmp_path) == child
