"""GTP messages cut at every length and corrupted at random through the decoder: no crash, no
record from a partial message, every cut counted as an anomaly of layer gtp."""
import random

import pytest

pytest.importorskip("touchpoint.probe._decode")

from touchpoint.probe.decode import ANOMALY_INFO, Anomaly
from tests.gtp_messages import (
    ENB_TEID, IMSI, MME, PDU_SESSION, SGW, SGWU_TEID, V1_EXT, V1_FULL, V2_FULL, corrupt, csr, csresp, decode,
    frame, gtpu, inner_ip, usage,
)

# ---- robustness ----------------------------------------------------------------

ANOMALY_LAYER = {Anomaly(code).name: layer for code, (layer, _cls, _text) in ANOMALY_INFO.items()}


@pytest.mark.parametrize("msg", [V2_FULL, V1_FULL, V1_EXT], ids=["v2", "v1", "v1-ext"])
def test_truncated_at_every_length(msg):
    """Cut anywhere: no record, no crash, the anomaly counted in layer gtp; the whole
    message still decodes in the same capture afterwards."""
    frames = [frame(msg[:n], MME, SGW) for n in range(len(msg))] + [frame(msg, MME, SGW)]
    recs, st = decode(frames, messages=True)
    assert len(recs) == 1 and recs[0]["imsi"] == IMSI and "partial" not in recs[0]["flags"]
    gtp = st.by_layer()["gtp"]
    assert gtp["packets"] == len(frames) and gtp["decoded"] == 1
    assert gtp["truncated"] + gtp["malformed"] == len(msg)


@pytest.mark.parametrize("msg", [V2_FULL, V1_FULL, V1_EXT], ids=["v2", "v1", "v1-ext"])
def test_truncated_message_is_truncated_whatever_follows(msg):
    """A message cut short is GTP_TRUNCATED, and what follows it in the capture (the
    next record, here all zeros or all ones) cannot change that: the decoder reads only
    the bytes of the packet."""
    for n in range(len(msg)):
        for filler in (b"\x00", b"\x01", b"\xff"):
            recs, st = decode([frame(msg[:n], MME, SGW), filler * 64], messages=True)
            got = {a.name: c for a, c in st.anomalies.items() if ANOMALY_LAYER.get(a.name) == "gtp"}
            assert got == {"GTP_TRUNCATED": 1}, f"cut at {n} of {len(msg)}, then {filler * 4!r}...: {got}"


def test_random_corruption_does_not_crash():
    rng = random.Random(20240601)
    seeds = [V2_FULL, V1_FULL, V1_EXT, csresp(), csresp(piggy=True) + csr(seq=9),
             gtpu(SGWU_TEID, inner_ip(60), seq=1, ext=[(PDU_SESSION, b"\x00\x09")]), gtpu(ENB_TEID, inner_ip(40))]
    frames = []
    for i in range(4000):
        msg = corrupt(rng, rng.choice(seeds))
        port = 2152 if i % 3 == 0 else 2123
        frames.append(frame(msg, MME if i % 2 else SGW, SGW if i % 2 else MME, port, port))
    for messages in (False, True):
        recs, st = decode(frames, messages=messages, max_tunnels=64, max_dialogues=64)
        assert st.frames == len(frames)
        assert st.layer_in["gtp"] + st.layer_in["gtpu"] == len(frames)
        assert set(r["proto"] for r in recs) <= {"gtpv1c", "gtpv2c", "gtpu"}
        assert sum(r.get("packets", 0) for r in usage(recs)) == st.layer_ok["gtpu"]

