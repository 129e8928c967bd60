"""Signal actions that may take locks.

Python runs a signal handler in the main thread between two bytecodes, possibly while that thread
holds a lock the handler needs: `threading.Event.set()` from a handler deadlocks when the signal
lands inside the same Event's `wait()` (a paced probe, waiting on its stop event, once slept
through SIGINT so). Here the C-level handler writes the signal's number to a pipe
(`signal.set_wakeup_fd`) and a thread of its own runs the action, where a held lock is only a
short wait.
"""
from __future__ import annotations

import os
import signal
import threading
from typing import Callable


def on_signals(actions: dict[int, Callable[[], None]]) -> Callable[[], None]:
    """Run actions[signum]() in a helper thread on each of these signals, until the returned
    function is called, which puts the previous handlers back. Outside the main thread nothing
    is installed (signals are the main thread's)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    r, w = os.pipe()
    os.set_blocking(w, False)

    def run():
        while got := os.read(r, 64):
            for signum in got:
                if signum in actions:
                    actions[signum]()
        os.close(r)

    helper = threading.Thread(target=run, name="signals", daemon=True)
    helper.start()
    old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    old = {s: signal.signal(s, lambda *_: None) for s in actions}

    def restore():
        for s, h in old.items():
            signal.signal(s, h)
        signal.set_wakeup_fd(old_fd)
        os.close(w)                         # the helper runs what is still in the pipe, then ends
        helper.join(5)

    return restore
