#!/usr/bin/env python3
"""atheris (libFuzzer) harness over the decoder.

    python3 tests/fuzz_decode.py -max_total_time=60 [-timeout=10] [CORPUS_DIR ...]

The first input byte picks the mode:
  even: the input is a whole capture file (pcap / pcapng / anything), decoded by decode_bytes;
  odd:  the rest of the input is one packet, wrapped in a classic pcap header with the link
        type picked by the second byte (Ethernet, raw IP, SLL, SLL2, MTP2, MTP3, SCCP, SCTP,
        NULL), so the mutations reach the protocol layers instead of the file header.
Both per-message and dialogue mode, ITU/ANSI/Japanese MTP3. The only exception allowed out of
the decoder is probe.decode.CaptureError, and its message must name the byte offset; anything
else (or a crash, or a hang past -timeout) is a finding.

The Cython extension is not built with coverage instrumentation, so libFuzzer's feedback comes
from the Python side only: this is a fast structure-aware random fuzzer more than a coverage-
guided one. tests/test_fuzz.py::test_atheris_harness runs it for ~12 s with a seed corpus
(TOUCHPOINT_FUZZ_SECONDS for longer).
"""
import os
import re
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import atheris
import numpy  # noqa: F401 - imported first so that only probe's own Python code is instrumented

with atheris.instrument_imports(include=["probe"]):
    from touchpoint.probe.decode import CaptureError, decode_bytes

LINKTYPES = (1, 101, 113, 276, 140, 139, 141, 142, 248, 0)
MTP3 = ("itu", "ansi", "japan")
OFFSET = re.compile(r"at byte \d+")
# small tables: a decoder with the default ones takes ~2 ms to set up
SMALL = dict(max_dialogues=256, max_tunnels=256, capacity=1024)


def wrap_packet(packet: bytes, linktype: int) -> bytes:
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)
    return head + struct.pack("<IIII", 1_700_000_000, 0, len(packet), len(packet)) + packet


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    mode, sel, body = data[0], data[1], data[2:]
    if mode & 1:
        capture = wrap_packet(body, LINKTYPES[sel % len(LINKTYPES)])
    else:
        capture = data
    try:
        decode_bytes(capture, messages=bool(mode & 2), mtp3=MTP3[(mode >> 2) % 3], **SMALL)
    except CaptureError as e:
        if not OFFSET.search(str(e)):
            raise AssertionError(f"CaptureError without a byte offset: {e}") from e


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
