"""Hand-made signaling records for the engine's tests."""
from touchpoint.probe.record import Flag, Loc, empty, to_digits

T0 = 1_767_225_600 * 10**9          # 2026-01-01 00:00 UTC
MIN = 60 * 10**9
IMSI = "460001234567890"
MSISDN = "8613800138000"
IMEI_A = "35693803564380"           # 14 digits (TAC 35693803), as IMEI + check digit below
IMEI_A2 = "35693803999999"          # same TAC, another unit
IMEI_B = "86012345000011"           # another TAC


def rec(kind, t_min=0.0, *, imsi=IMSI, msisdn="", imei="", peer="", node="", lac=0, cell=0, loc=Loc.NONE,
        rat=0, ss=0, flags=Flag.REQUEST | Flag.RESPONSE, octets=0, mcc="", mnc="", apn=""):
    r = empty(1)
    r["kind"], r["ts_ns"], r["flags"] = kind, T0 + int(t_min * MIN), flags
    for name, v in (("imsi", imsi), ("msisdn", msisdn), ("imei", imei), ("peer", peer), ("node", node)):
        if v:
            r[name] = to_digits(v)
    if mcc:
        r["mcc"], r["mnc"] = to_digits(mcc, 4), to_digits(mnc, 4)
    r["lac_tac"], r["cell"], r["loc_type"], r["rat"], r["ss_code"], r["octets"] = lac, cell, loc, rat, ss, octets
    r["apn"] = apn
    return r
