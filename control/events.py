"""Scenario events: the codes control._state writes, by the names docs/rules.md defines."""
from enum import IntEnum


class Event(IntEnum):
    IMEI_CHANGE = 1
    ROAMING_IN = 2
    ROAMING_OUT = 3
    INBOUND_ROAMER = 4
    AREA_ENTER = 5
    AREA_DWELL = 6
    POWER_OFF = 7
    POWER_ON = 8
    CF_THEN_POWER_ON = 9
    HOTLINE_CALL = 10
    SMS_MO = 11
    SMS_MT = 12
    MMS_MT = 13
    USSD = 14
    DATA_SESSION_START = 15
    RAT_CHANGE = 16
    RECORD = 17

    @classmethod
    def named(cls, name: str) -> "Event":
        return cls[name.upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


# Event columns (control._state.EVENT_DTYPE) under the names rules give them, per event; the
# generic columns (region, area, ...) mean different things for different events.
EVENT_FIELDS = {
    Event.IMEI_CHANGE: {"new_handset": "flag", "tac": "tac", "old_tac": "old_tac"},
    Event.ROAMING_IN: {"region": "region", "from_region": "other_region"},
    Event.ROAMING_OUT: {"region": "region", "to_region": "other_region"},
    Event.AREA_ENTER: {"area": "area"},
    Event.AREA_DWELL: {"area": "area", "minutes": "minutes"},
    Event.POWER_ON: {"after": "seconds"},
    Event.CF_THEN_POWER_ON: {"ss_code": "ss_code", "forwarded_to": "number", "since_cf": "seconds"},
    Event.HOTLINE_CALL: {"number": "number"},
    Event.USSD: {"code": "number"},
    Event.DATA_SESSION_START: {"rat": "rat"},
    Event.RAT_CHANGE: {"rat": "rat", "from_rat": "from_rat", "first": "flag"},
}
