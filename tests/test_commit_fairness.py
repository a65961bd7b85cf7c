"""Group commit fairness: batches go in arrival order, and so does room in a full queue.

No timing: the test takes the writer's place (it marks the committer busy, so the writer
thread takes nothing, and makes room itself), and waits only for states.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import evstore
from evstore._bench import workload
from evstore._storage.commit import Committer
from evstore._storage.snapshots import Write


def _until(condition: Callable[[], bool], committer: Committer) -> None:
    """Wait (on the committer's lock, up to a minute) until ``condition`` holds."""
    deadline = time.monotonic() + 60
    with committer._cond:
        while not condition():
            assert time.monotonic() < deadline, "the state never came"
            committer._cond.wait(0.01)


def _queued(committer: Committer) -> list[Write]:
    return [item for batch in committer._queue for item in batch.items]


def test_a_caller_waiting_for_room_is_not_overtaken_by_a_newcomer(tmp_path: Path) -> None:
    """With the queue full, caller A waits for room. The writer makes room for one event
    and wakes A; newcomer B takes the lock first. B must queue behind A: before, B took
    the room A was woken for, and a flood of newcomers could keep A waiting for ever."""
    with evstore.open(tmp_path / "store", max_pending=2, max_batch=1) as store:
        a_entry, b_entry, *fill = workload.add_running(store, 4)
        committer = store._writer
        with committer._cond:
            committer._busy = True  # the writer thread takes nothing: this test is the writer
        a = threading.Thread(target=a_entry.status.update, args=(workload.bump_pid,))
        helper: threading.Thread | None = None
        try:  # from here on, whatever fails, the finally gives the writer back
            for entry in fill:  # the queue is full: two events
                entry.status.update(workload.bump_pid)
            a.start()
            waiting = committer._space._waiters  # type: ignore[attr-defined]
            _until(lambda: len(waiting) == 1, committer)
            b_status = b_entry.status
            b_write = b_status._prepare_change(workload.bump_pid, sync=False).write  # B's event
            assert b_write is not None

            def writer_makes_room_after_a() -> None:  # once A is in, room for B too
                a_eno = a_entry.status._eno
                _until(lambda: any(w.eno == a_eno for w in _queued(committer)), committer)
                with committer._cond:
                    committer._take()

            helper = threading.Thread(target=writer_makes_room_after_a, daemon=True)
            with committer._cond:
                committer._take()  # room for one event; A is woken but needs this lock
                helper.start()
                committer._join(b_write)  # B holds the lock first
                order = [w.eno for w in _queued(committer)]
            assert a_entry.status._eno in order, "B took the room A was woken for; A still waits"
            assert order.index(a_entry.status._eno) < order.index(b_entry.status._eno)
        finally:
            with committer._cond:  # let the writer thread drain whatever is left
                committer._space.notify_all()
                committer._busy = False
                committer._cond.notify_all()
            if a.ident is not None:
                a.join(timeout=60)
            if helper is not None and helper.ident is not None:
                helper.join(timeout=60)
