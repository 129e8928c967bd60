"""The fields a campaign condition can name, in one place.

Each field has a type, which says how a rule writes its values and how the engine hands
over its column (see docs/rules.md, "Columns"), and a source, which says where the
engine finds it:

  event     computed by the scenario event (`new_handset`, `region`, ...)
  record    the signaling record that caused the event (probe.record.RECORD_DTYPE)
  state     the subscriber's state in the engine (`roaming`, `segment`, `lifecycle`)
  profile   the subscriber's counts over the last days (`sms_mo: {last: 30d, gte: 5}`)
  audience  the TAC table (`handset...`) and, not listed here, any column of an imported list
"""
from dataclasses import dataclass, field
from types import MappingProxyType

from touchpoint.probe.record import DIGIT_FIELDS, PLMN_FIELDS, RECORD_DTYPE, Flag, Kind, Loc, Proto

DIGITS, INT, BOOL, ENUM, TEXT, CAPS = "digits", "int", "bool", "enum", "text", "caps"
EVENT, RECORD, STATE, PROFILE, AUDIENCE = "event", "record", "state", "profile", "audience"


def _names(pairs) -> MappingProxyType:
    return MappingProxyType(dict(pairs))


@dataclass(frozen=True)
class Field:
    name: str
    type: str                       # DIGITS, INT, BOOL, ENUM, TEXT or CAPS
    source: str                     # EVENT, RECORD, STATE or AUDIENCE
    doc: str = ""
    names: MappingProxyType = field(default_factory=lambda: _names(()))  # enum: name -> value; caps: name -> bit
    places: str = ""                # "regions" or "areas": an enum whose names come from places.yaml,
                                    # "lifecycle": from policy.yaml's lifecycle
    width: int = 16                 # digits per packed value: 16 (uint64) or 4 (uint16: mcc, mnc)
    fold: bool = False              # text compared without regard to case (APNs are DNS names)
    seconds: bool = False           # an int of seconds: a rule may also write a duration (`1h`)
    series: str = ""                # a profile field: the state's series (control.profiles.SERIES) ...
    scale: int = 1                  # ... and what one unit of the field is in the series' units


KINDS = _names((k.name.lower(), k.value) for k in Kind)
PROTOS = _names((p.name.lower(), p.value) for p in Proto)
LOC_TYPES = _names((lt.name.lower(), lt.value) for lt in Loc)
FLAGS = _names((f.name.lower(), f.value) for f in Flag)
# GTP RAT Type values (TS 29.274 8.17, TS 29.060 7.7.50): one numbering for the engine.
RATS = _names(dict(utran=1, geran=2, wlan=3, gan=4, hspa=5, eutran=6, virtual=7, nbiot=8, ltem=9, nr=10))
# Supplementary service codes of call forwarding (TS 29.002 17.7.5).
SS_CODES = _names(dict(allcf=0x20, cfu=0x21, allcondcf=0x28, cfb=0x29, cfnry=0x2A, cfnrc=0x2B))
SEGMENTS = _names(dict(silent=1, trial=2, active=3, loyal=4))   # 0: not known yet
# Handset capabilities in the TAC table: bit i is the i-th name. The TAC table import writes these bits.
HANDSET_CAPS = _names((name, 1 << i) for i, name in enumerate(
    ("2g", "3g", "4g", "5g", "volte", "vonr", "nfc", "esim", "dual_sim", "wifi_calling", "smartphone")))

# --- record fields ------------------------------------------------------------------------------

# Plumbing, not facts about the subscriber's moment.
NOT_CONDITIONS = frozenset({"ts_ns", "tid", "src", "dst", "frame"})
_RECORD_SPECIAL = {
    "kind": dict(type=ENUM, names=KINDS, doc="event kind of the record (probe.record.Kind)"),
    "proto": dict(type=ENUM, names=PROTOS, doc="protocol"),
    "flags": dict(type=CAPS, names=FLAGS, doc="request, response, error, ... (`{has: error}`)"),
    "loc_type": dict(type=ENUM, names=LOC_TYPES, doc="how the location was given"),
    "rat": dict(type=ENUM, names=RATS, doc="radio access type"),
    "ss_code": dict(type=ENUM, names=SS_CODES, doc="supplementary service code"),
    "apn": dict(type=TEXT, fold=True, doc="APN network identifier"),
    "peer_alpha": dict(type=TEXT, doc="alphanumeric SMS originator or destination"),
}


def _record_fields() -> dict:
    """Every record field a condition may name, typed from RECORD_DTYPE: a field the record
    gains later is a condition field at once (an int unless it is special above)."""
    out = {}
    for name in RECORD_DTYPE.names:
        if name in NOT_CONDITIONS or name.startswith("pad"):
            continue
        if name in _RECORD_SPECIAL:
            out[name] = Field(name, source=RECORD, **_RECORD_SPECIAL[name])
        elif name in DIGIT_FIELDS:
            out[name] = Field(name, DIGITS, RECORD)
        elif name in PLMN_FIELDS:
            out[name] = Field(name, DIGITS, RECORD, width=4)
        elif RECORD_DTYPE[name].kind == "S":
            out[name] = Field(name, TEXT, RECORD)
        else:
            out[name] = Field(name, INT, RECORD)
    return out


RECORD_FIELDS = MappingProxyType(_record_fields())

# --- scenario events -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    name: str
    fields: MappingProxyType        # the event's own fields (besides the record's)
    params: tuple = ()              # trigger settings besides `event` and `where`
    doc: str = ""


def _event(name, doc, *fields, params=()):
    return Event(name, _names((f.name, f) for f in fields), tuple(params), doc)


def _ev(name, type_, doc, **kw):
    return Field(name, type_, EVENT, doc, **kw)


_REGION = dict(places="regions")
EVENTS = _names((e.name, e) for e in (
    _event("imei_change", "a new IMEI (first 14 digits) for a known subscriber",
           _ev("new_handset", BOOL, "the TAC changed (false: same model, another unit)"),
           _ev("old_tac", DIGITS, "TAC of the previous IMEI"),
           _ev("tac", DIGITS, "TAC of the new IMEI")),
    _event("roaming_in", "the serving region changed: the region entered",
           _ev("region", ENUM, "the region entered", **_REGION),
           _ev("from_region", ENUM, "the region left", **_REGION)),
    _event("roaming_out", "the serving region changed: the region left",
           _ev("region", ENUM, "the region left", **_REGION),
           _ev("to_region", ENUM, "the region entered", **_REGION)),
    _event("inbound_roamer", "first sighting of a foreign IMSI",
           _ev("mccmnc", DIGITS, "MCC+MNC of the IMSI")),
    _event("area_enter", "the location entered an area",
           _ev("area", ENUM, "the area", places="areas")),
    _event("area_dwell", "still in an area `minutes` after entering it, once per visit",
           _ev("area", ENUM, "the area", places="areas"),
           _ev("minutes", INT, "the dwell time that fired"), params=("minutes",)),
    _event("power_off", "purge MS, or the last GTP session / PDP context deleted"),
    _event("power_on", "a location update or new session after a power_off, or a first sighting",
           _ev("after", INT, "seconds off (0 at a first sighting)", seconds=True)),
    _event("cf_then_power_on", "power_on while call forwarding set at most `within` before is on",
           _ev("ss_code", ENUM, "the forwarding's code", names=SS_CODES),
           _ev("forwarded_to", DIGITS, "the forwarded-to number"), params=("within",)),
    _event("hotline_call", "a call attempt to one of the trigger's hotlines or numbers",
           _ev("number", DIGITS, "the number called"), params=("hotlines", "numbers")),
    _event("sms_mo", "an MO short message (fields: the record's peer, peer_alpha, app_port)"),
    _event("sms_mt", "an MT short message (fields: the record's peer, peer_alpha, app_port)"),
    _event("mms_mt", "an MMS notification delivered (fields: the record's peer, octets)"),
    _event("ussd", "a USSD request",
           _ev("code", TEXT, "the USSD string, e.g. *100#")),
    _event("data_session_start", "a GTP session or PDP context created (fields: the record's apn, rat)"),
    _event("rat_change", "a radio access type other than the last known one",
           _ev("from_rat", ENUM, "the last known RAT", names=RATS),
           _ev("first", BOOL, "the first time on this RAT")),
    _event("record", "any record: the trigger's `where` decides"),
))

# --- subscriber state and audience -----------------------------------------------------------------

STATE_FIELDS = _names((f.name, f) for f in (
    Field("roaming", BOOL, STATE, "the serving network is not a home network"),
    Field("visitor", BOOL, STATE, "the IMSI is not of a home network: an inbound roamer (false: no IMSI known)"),
    Field("segment", ENUM, STATE, "behavioural segment from the data-use days", names=SEGMENTS),
    Field("lifecycle", ENUM, STATE, "lifecycle segment by policy.yaml's definitions", places="lifecycle"),
    Field("used_data", BOOL, STATE, "ever used data: data volume, or a session on a data service's APN"),
    Field("handset_age", INT, STATE, "how long the current handset (IMEI) has been seen, since its first sighting",
          seconds=True),
    Field("in_region", ENUM, STATE, "the region the subscriber is in", places="regions"),
    Field("in_region_for", INT, STATE, "how long the subscriber has been in its current region", seconds=True),
))

# A profile field is tested over a window of days: `{last: 30d, gte: 5}` (control.profiles).
PROFILE_FIELDS = _names((f.name, f) for f in (
    Field("sms_mo", INT, PROFILE, "short messages sent", series="sms_mo"),
    Field("sms_mt", INT, PROFILE, "short messages received", series="sms_mt"),
    Field("mms_mt", INT, PROFILE, "MMS notifications received", series="mms_mt"),
    Field("calls_mo", INT, PROFILE, "calls made (attempts, whatever became of them)", series="calls_mo"),
    Field("calls_mt", INT, PROFILE, "calls received (CAP terminating attempts)", series="calls_mt"),
    Field("answered_mo", INT, PROFILE, "calls made and answered", series="answered_mo"),
    Field("answered_mt", INT, PROFILE, "calls received and answered", series="answered_mt"),
    Field("call_minutes", INT, PROFILE, "minutes talked, answer to end, of the calls whose end was seen",
          series="call_ms", scale=60_000),
    Field("data_sessions", INT, PROFILE, "data sessions (GTP sessions, PDP contexts) created", series="sessions"),
    Field("data_mb", INT, PROFILE, "MiB of user data (GTP-U)", series="data_kib", scale=1024),
    Field("data_services", INT, PROFILE, "data services used (policy.yaml's data_services, by APN)",
          series="services"),
    Field("days_active", INT, PROFILE, "days with any record of the subscriber", series="active"),
    Field("area_days", INT, PROFILE, "days a record placed the subscriber in the `area`", series="area_days"),
    Field("area_visits", INT, PROFILE, "entries into the `area`", series="area_visits"),
    Field("area_minutes", INT, PROFILE, "minutes in the `area`, of the visits that ended", series="area_minutes"),
))
AREA_PROFILE = frozenset(("area_days", "area_visits", "area_minutes"))    # they take `area: NAME`

AUDIENCE_FIELDS = _names((f.name, f) for f in (
    Field("handset", CAPS, AUDIENCE, "capabilities of the last IMEI's TAC", names=HANDSET_CAPS),
    Field("handset_brand", TEXT, AUDIENCE, "brand of the last IMEI's TAC", fold=True),
    Field("handset_model", TEXT, AUDIENCE, "model of the last IMEI's TAC", fold=True),
    Field("previous_handset_brand", TEXT, AUDIENCE, "brand of the TAC before the last change of model", fold=True),
))


def trigger_fields(event: str) -> MappingProxyType:
    """What a trigger's (or a goal's) `where` may name for this event: its own fields, the
    record's and the subscriber state's. An event field wins over a record field of that name."""
    return _names({**RECORD_FIELDS, **STATE_FIELDS, **PROFILE_FIELDS, **EVENTS[event].fields})


def audience_fields() -> MappingProxyType:
    """What an audience's `where` may name besides the list columns."""
    return _names({**AUDIENCE_FIELDS, **STATE_FIELDS, **PROFILE_FIELDS})
