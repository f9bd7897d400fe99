"""A killed parent leaves no pool worker or resource tracker behind (kill -9 and SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PARENT = textwrap.dedent(
    """
    import os, sys, time
    from cunan.lifetime import bound_process_pool

    def pid(_):
        return os.getpid()

    if __name__ == "__main__":
        with bound_process_pool(2) as pool:
            pids = set(pool.map(pid, range(40)))
            print(" ".join(map(str, sorted(pids))), flush=True)
            time.sleep(120)
    """
)


def _children(parent: int) -> set[int]:
    """Processes whose parent is ``parent`` (pool workers and the resource tracker)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_pool_workers_and_resource_tracker_die_with_a_killed_parent(
    tmp_path: Path, sig: signal.Signals
) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    children: set[int] = set()
    try:
        assert parent.stdout is not None
        workers = {int(p) for p in parent.stdout.readline().split()}
        assert workers
        children = _children(parent.pid)
        assert workers <= children  # the resource tracker is among the others
        os.kill(parent.pid, sig)
        parent.wait(timeout=30)
        # Bounded wait for an event (the kernel delivering SIGKILL), not a timing assertion.
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in children if _alive(p)]
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in children:  # a failed run must not leave them behind either
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
