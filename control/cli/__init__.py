"""The `touchpoint` command: one click group (cli.group), one module per command.

Every option can also come from the environment as TOUCHPOINT_<COMMAND>_<OPTION>
(for example TOUCHPOINT_DECODE_MTP3=japan).
"""

import os
import sys

from . import ctl, decode, demo, dispatcher, engine, export, keys, lists, probe, report, rules, synth, tap
from .group import main

for _cmd in (decode.decode, synth.synth, probe.probe, keys.keys, tap.tap, engine.engine, dispatcher.dispatcher,
             rules.rules, lists.lists, ctl.ctl, demo.demo, report.report, export.export):
    main.add_command(_cmd)


def run():
    """Console entry point: a closed pipe (| head) ends output quietly, like tshark."""
    try:
        main()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
