"""Synthetic signaling traffic: valid pcap captures with their expected records.

`generate()` writes a classic pcap (microsecond magic, link type Ethernet) of
what a probe sees between the nodes of a few mobile networks, for a population
of random subscribers. The same seed gives a byte-identical file. By default
(`DEFAULT_MIX`) about 60 % of the packets are SS7 and 40 % GTP:

- MAP dialogues (every operation the decoder knows, v1/v2/v3 forms, errors,
  Aborts, unanswered Begins), multi-part MT SMS (concatenation UDH) and MMS
  notifications (SMS-DELIVER, ports 2948/9200, WSP push of an m-notification-ind);
- CAP v2 CAMEL calls: InitialDP (DP2 with calledPartyBCDNumber, DP3, DP12 at the
  GMSC), requestReportBCSMEvent + continue, eventReportBCSM in the End;
- ISUP calls: IAM, ACM, ANM, REL, RLC, and calls released unanswered (16, 17, 19);
  all of the above over Ethernet / IPv4 / SCTP (one DATA chunk, PPID 3) / M3UA DATA
  (SI 3: SCCP UDT; SI 5: ISUP);
- GTPv2-C (UDP 2123): Create Session (and rejections), Modify Bearer with a new
  cell and the eNodeB's S1-U F-TEID (sometimes twice: a handover), Delete Session;
- GTPv1-C: Create PDP Context (and rejections), Delete PDP Context;
- GTP-U (UDP 2152): G-PDUs on the tunnels those announced, both directions, inner
  IPv4/UDP packets of varied sizes.
`MAP_MIX` gives MAP dialogues only (the first version of this generator, byte
for byte); `SS_MIX` weights supplementary services and USSD.

Every message is encoded with pycrate (the reference encoder: TCAP_MAPv2v3,
TCAP_CAP, TS29274_GTPC, TS29060_GTP, TS29281_GTPU, ISUP, TS23040_SMS), but only
once per shape: a *template* is encoded with placeholder identities, the
placeholders are located in the encoded bytes, and each packet patches its
own identities in (IMSI, MSISDN, IMEI, numbers, TCAP transaction ids, TEIDs,
addresses, sequence numbers, CICs, ...). Shapes whose lengths differ (a 14- or
15-digit IMSI, an 11- or 12-digit node number) are separate templates, so every
length is right. Framing (Ethernet to SCCP, UDP) is built with struct; IPv4
header checksums (also of the packets inside G-PDUs) and the SCTP CRC32c are
computed for every packet.

The expected records (`expected_path`, JSONL in the shape of
`probe.format.to_dicts`, dialogue mode) are the ground truth of what was
encoded, never the output of the decoder; ts_ns, src, dst and probe_id are left
out. One record per MAP or CAP dialogue (op = the first invoke's), per ISUP call
(at its REL), per GTP-C request/response (at the response; tid = sequence
number; Modify Bearer and Delete Session name their subscriber only through the
tunnel of their header TEID), and `data_usage` records for the user plane: per
tunnel (TEID at an address) when a G-PDU finds its counters a usage interval
(60 s of capture time) old, at the decoder's sweep of idle counters (every usage
interval of capture time, at the first packet after it), and at the end of the
capture (the last frame), with the identity of the GTP-C message that announced the
tunnel. Records are in frame order; the
end-of-capture ones by TEID.

Packet count: exactly `packets` packets are written. Near the end only
dialogues and flows that still fit are started (a GTP session with fewer
G-PDUs, a Begin that is never answered), so every dialogue in the file is
complete.

Helpers for tests: `frame_tcap`, `pcap_bytes`, `encode_tcap`, `encode_begin`,
`encode_continue`, `encode_end`, `encode_abort`, `map_arg`, `map_res`,
`map_err`, `tbcd`, `addr`, `gsm7_pack`, `sms_deliver`, `sms_submit`, `cgi`,
`lai`, `crc32c`, `encode_gtpv2`, `encode_gtpv1`, `encode_cap`,
`sms_deliver_udh`, `mms_notification_pdu`.

Command line: `python -m touchpoint.probe.synth OUT.pcap [--packets N --seed S
--subscribers N --mix default|map|ss --expected OUT.jsonl]` and `python -m
touchpoint.probe.synth --regen-goldens` (rewrites pcaps/*.pcap and pcaps/*.expected.jsonl).

The package, by protocol family: digits (TBCD, addresses, GSM 7-bit), framing (SCTP CRC32c,
Ethernet to SCCP, pcap), tcap_map (TCAP and MAP with pycrate), templates (encode once, patch per
packet), network (nodes and subscribers), dialogues (MAP scenarios, the mixes), sms (TPDUs, MMS
notifications), cap_isup (CAMEL and ISUP calls), gtp (GTPv2-C, GTPv1-C, GTP-U), flows (sessions,
calls, multi-part SMS as steps), user_plane (G-PDUs and the tunnel counters), framer (numbering
and writing the frames), traffic (`generate`, the goldens); story renders a story file
(docs/synth.md). Nothing on the probe's or the engine's hot path imports it (tests/test_imports.py).
"""
from __future__ import annotations

from .digits import addr, cgi, gsm7_pack, lai, tbcd
from .framing import crc32c, frame_tcap, pcap_bytes
from .tcap_map import (
    AC, ber_style, dialogue_request, dialogue_response, encode_abort, encode_begin, encode_continue,
    encode_end, encode_tcap, error, invoke, map_arg, map_err, map_res, result,
)
from .dialogues import DEFAULT_MIX, MAP_MIX, MIXED_SMALL_MIX, SS_MIX
from .sms import mms_notification_pdu, sms_deliver, sms_deliver_udh, sms_submit
from .cap_isup import SSN_CAP, encode_cap
from .gtp import IEGroup, encode_gtpv1, encode_gtpv2, gtpu_header
from .traffic import GOLDENS, MIXES, generate, regen_goldens

__all__ = [
    "generate", "frame_tcap", "pcap_bytes", "encode_tcap", "encode_begin", "encode_continue",
    "encode_end", "encode_abort", "invoke", "result", "error", "dialogue_request", "dialogue_response",
    "map_arg", "map_res", "map_err", "tbcd", "addr", "gsm7_pack", "sms_deliver", "sms_submit", "cgi",
    "lai", "crc32c", "AC", "GOLDENS", "regen_goldens", "ber_style", "encode_gtpv2", "encode_gtpv1",
    "encode_cap", "sms_deliver_udh", "mms_notification_pdu", "gtpu_header", "IEGroup", "DEFAULT_MIX",
    "MAP_MIX", "SS_MIX", "MIXED_SMALL_MIX", "MIXES", "SSN_CAP",
]
