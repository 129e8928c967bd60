"""probe.signals: SIGINT/SIGTERM/SIGHUP actions that take locks, without deadlocking the main thread."""
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_script(body: str) -> subprocess.CompletedProcess:
    script = "import sys; sys.path.insert(0, sys.argv[1])\n" + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script, str(ROOT)], capture_output=True, text=True, timeout=30)


def test_a_signal_that_lands_while_the_main_thread_holds_the_events_lock_still_sets_it():
    # What Event.wait() does for a moment each round (a paced probe waits on its stop event so):
    # a handler calling Event.set() in the main thread would wait for that lock forever.
    done = run_script("""
        import os, signal, threading, time
        from touchpoint.probe.signals import on_signals
        stop = threading.Event()
        restore = on_signals({signal.SIGINT: stop.set})
        with stop._cond:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)                 # the signal is taken while the lock is held
            assert not stop.is_set()        # the action waits for the lock ...
        assert stop.wait(5)                 # ... and runs once it is free
        restore()
        print("stopped")
    """)
    assert done.returncode == 0 and done.stdout.strip() == "stopped", done.stderr


def test_each_signal_runs_its_own_action_outside_the_main_thread_and_restore_puts_the_old_handlers_back():
    done = run_script("""
        import os, signal, threading
        from touchpoint.probe.signals import on_signals
        ran = {}
        events = {s: threading.Event() for s in (signal.SIGTERM, signal.SIGHUP)}
        def action(s):
            def act():
                ran[s] = threading.current_thread() is threading.main_thread()
                events[s].set()
            return act
        before = signal.getsignal(signal.SIGTERM)
        restore = on_signals({s: action(s) for s in events})
        os.kill(os.getpid(), signal.SIGHUP)
        assert events[signal.SIGHUP].wait(5) and not events[signal.SIGTERM].is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        assert events[signal.SIGTERM].wait(5)
        restore()
        assert signal.getsignal(signal.SIGTERM) is before and signal.set_wakeup_fd(-1) == -1
        print(sorted(ran.values()))
    """)
    assert done.returncode == 0 and done.stdout.strip() == "[False, False]", done.stderr


def test_outside_the_main_thread_nothing_is_installed():
    from touchpoint.probe.signals import on_signals
    before = signal.getsignal(signal.SIGINT)
    out = []
    t = threading.Thread(target=lambda: out.append(on_signals({signal.SIGINT: lambda: None})))
    t.start()
    t.join()
    out[0]()
    assert signal.getsignal(signal.SIGINT) is before
