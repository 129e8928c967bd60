"""Records as text: the dicts behind `touchpoint decode --format jsonl|csv|table`.

jsonl keys are the record field names; digits are strings; kind, proto,
loc_type and flags by name; absent fields are omitted.
"""
import numpy as np

from .record import DIGIT_FIELDS, Flag, Kind, Loc, MmsClass, Proto, unpack

ALWAYS = ("ts_ns", "frame", "kind", "proto", "flags", "op", "tid", "src", "dst", "probe_id")
IF_NONZERO = ("cause", "rat", "ss_code", "version", "packets", "octets", "service_key", "app_port",
              "sms_pid", "sms_dcs", "parts", "part", "event", "nai", "bearers", "ebi", "qci", "duration_ms")
COLUMNS = ("ts_ns", "frame", "kind", "proto", "flags", "op", "cause", "imsi", "msisdn", "imei",
           "peer", "node", "mcc", "mnc", "lac_tac", "cell", "loc_type", "rat", "ss_code",
           "version", "apn", "tid", "src", "dst", "probe_id", "packets", "octets", "service_key",
           "app_port", "sms_pid", "sms_dcs", "parts", "part", "event", "nai", "peer_alpha", "bearers", "ebi",
           "qci", "duration_ms", "mms_class", "subject_hash")

_KIND = {k.value: k.name.lower() for k in Kind}
_PROTO = {p.value: p.name.lower() for p in Proto}
_LOC = {loc.value: loc.name.lower() for loc in Loc}
_MMS_CLASS = {c.value: c.name.lower() for c in MmsClass}


def flag_names(value: int) -> list:
    return [f.name.lower() for f in Flag if value & f]


def to_dicts(records: np.ndarray) -> list:
    """One dict per record, absent fields omitted."""
    if len(records) == 0:
        return []
    text = {f: unpack(records[f]) for f in DIGIT_FIELDS}
    mcc, mnc = unpack(records["mcc"], 4), unpack(records["mnc"], 4)
    out = []
    for i, r in enumerate(records.tolist()):
        rec = dict(zip(records.dtype.names, r))
        d = {k: rec[k] for k in ALWAYS}
        d["kind"] = _KIND.get(rec["kind"], str(rec["kind"]))
        d["proto"] = _PROTO.get(rec["proto"], str(rec["proto"]))
        d["flags"] = flag_names(rec["flags"])
        for k in IF_NONZERO:
            if rec[k]:
                d[k] = rec[k]
        for k in DIGIT_FIELDS:
            if text[k][i]:
                d[k] = str(text[k][i])
        if mcc[i]:
            d["mcc"], d["mnc"] = str(mcc[i]), str(mnc[i])
        if rec["loc_type"]:
            d["loc_type"] = _LOC.get(rec["loc_type"], str(rec["loc_type"]))
            d["lac_tac"], d["cell"] = rec["lac_tac"], rec["cell"]
        if rec["apn"]:
            d["apn"] = rec["apn"].decode("ascii", "replace")
        if rec["peer_alpha"]:
            d["peer_alpha"] = rec["peer_alpha"].decode("utf-8", "replace")
        if rec["mms_class"]:
            d["mms_class"] = _MMS_CLASS.get(rec["mms_class"], str(rec["mms_class"]))
        if rec["subject_hash"]:             # 16 hex digits: a JSON number would lose its low bits
            d["subject_hash"] = f"{rec['subject_hash']:016x}"
        out.append(d)
    return out
