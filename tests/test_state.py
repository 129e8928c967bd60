"""Subscriber state and scenario events (control._state) on hand-made records: each event of
docs/rules.md with its edge cases, the index against a dict, and restore."""
import numpy as np
import pytest

from touchpoint.control._state import EVENT_DTYPE, STATE_DTYPE, SUB_SIZE, State
from touchpoint.control.profiles import SERIES
from touchpoint.control.events import Event
from touchpoint.probe.record import NO_DIGITS, Flag, Kind, empty, to_digits

from .records import IMEI_A, IMEI_A2, IMEI_B, IMSI, MIN, MSISDN, T0, rec

class Run:
    """Records through one State, with the region and area of each given by the test."""

    def __init__(self, dwell=(), home=()):
        self.st = State(16)
        self.st.dwell = np.array(dwell, np.uint16)
        self.st.home = [(to_digits(h), len(h)) for h in home]

    def feed(self, *items):
        """items: records, or (record, region, area) triples."""
        recs, reg, area = [], [], []
        for it in items:
            r, g, a = it if isinstance(it, tuple) else (it, -1, -1)
            recs.append(r)
            reg.append(g)
            area.append(a)
        return self.st.process(np.concatenate(recs), np.array(reg, np.int16), np.array(area, np.int32))


def names(ev, skip=(Event.RECORD,)):
    return [Event(int(e)).label for e in ev["event"] if e not in skip]


def test_layouts_agree():
    assert State().today.shape[1] == len(SERIES)             # control.profiles names the state's series
    assert STATE_DTYPE.itemsize == SUB_SIZE == 106          # at most 128 bytes a subscriber with its index
    assert EVENT_DTYPE.itemsize == 48


def test_first_sighting_is_power_on_and_no_change():
    run = Run()
    ev = run.feed(rec(Kind.LOCATION_UPDATE, imei=IMEI_A + "0", node="8613900010001"))
    assert names(ev) == ["power_on"]
    assert ev[0]["seconds"] == 0 and run.st.count == 1


# docs/rules.md, "first sighting": the changes, never at a first sighting (there is nothing to
# compare with), and the events of what a record is, which fire at a first sighting too
CHANGES = {"imei_change", "rat_change", "roaming_in", "roaming_out", "area_enter", "area_dwell", "cf_then_power_on"}
NOT_CHANGES = {"power_on", "inbound_roamer", "power_off", "hotline_call", "sms_mo", "sms_mt", "mms_mt", "ussd",
               "data_session_start"}


def test_a_first_sighting_fires_what_the_record_is_and_never_a_change():
    assert CHANGES | NOT_CHANGES | {"record"} == {e.label for e in Event}
    run = Run(dwell=[30], home=["46000"])
    imsi = lambda n: f"46000100000{n:04d}"
    first = [((rec(Kind.LOCATION_UPDATE, 0, imsi=imsi(1), imei=IMEI_A + "0", rat=1, node="8613900010001"), 2, 7),
              ["power_on"]),                                        # in a region, in an area: neither entered
             ((rec(Kind.LOCATION_UPDATE, 0, imsi="234150000000002"), 1, -1), ["inbound_roamer", "power_on"]),
             ((rec(Kind.SESSION_CREATE, 0, imsi=imsi(3), rat=6), -1, -1), ["power_on", "data_session_start"]),
             ((rec(Kind.PURGE_MS, 0, imsi=imsi(4)), -1, -1), ["power_off"]),
             ((rec(Kind.CALL_ATTEMPT, 0, imsi="", msisdn="8613800000005", peer="10086"), -1, -1), ["hotline_call"]),
             ((rec(Kind.MO_SMS, 0, imsi=imsi(6)), -1, -1), ["sms_mo"]),
             ((rec(Kind.MT_SMS, 0, imsi=imsi(7)), -1, -1), ["sms_mt"]),
             ((rec(Kind.MMS_NOTIFICATION, 0, imsi=imsi(8)), -1, -1), ["mms_mt"]),
             ((rec(Kind.USSD, 0, imsi=imsi(9)), -1, -1), ["ussd"])]
    got = [names(run.feed(item)) for item, _ in first]
    assert got == [want for _, want in first]
    assert {n for g in got for n in g} == NOT_CHANGES
    assert names(run.st.flush(T0 + 90 * MIN)) == []                 # no visit began: no area_dwell
    # the same subscriber a second time, elsewhere, on another handset and radio: the changes
    again = run.feed((rec(Kind.LOCATION_UPDATE, 100, imsi=imsi(1), imei=IMEI_B + "0", rat=6, node="8613900210001"),
                      3, 0),
                     (rec(Kind.SUBSCRIBER_INFO, 101, imsi=imsi(1)), 3, 7))
    assert names(again) == ["imei_change", "rat_change", "roaming_out", "roaming_in", "area_enter"]


def test_imei_change_new_handset_and_same_model():
    run = Run()
    ev = run.feed(rec(Kind.CHECK_IMEI, 0, imei=IMEI_A + "0"),
                  rec(Kind.CHECK_IMEI, 1, imei=IMEI_A + "12"),       # IMEISV of the same unit: no change
                  rec(Kind.CHECK_IMEI, 2, imei=IMEI_A2 + "7"),       # same TAC, another unit
                  rec(Kind.CHECK_IMEI, 3, imei=IMEI_B + "5"))        # a new model
    ch = ev[ev["event"] == Event.IMEI_CHANGE]
    assert len(ch) == 2
    assert ch[0]["flag"] == 0 and ch[0]["tac"] == ch[0]["old_tac"] == 35693803
    assert ch[1]["flag"] == 1 and ch[1]["tac"] == 86012345 and ch[1]["old_tac"] == 35693803
    assert ch[1]["ts_ns"] == T0 + 3 * MIN


def test_failed_records_change_nothing():
    run = Run()
    run.feed(rec(Kind.CHECK_IMEI, 0, imei=IMEI_A + "0"))
    ev = run.feed(rec(Kind.CHECK_IMEI, 1, imei=IMEI_B + "0", flags=Flag.REQUEST | Flag.ERROR),
                  rec(Kind.CHECK_IMEI, 2, imei=IMEI_B + "0", flags=Flag.REQUEST | Flag.TIMEOUT))
    assert names(ev) == []
    assert run.st.rows[0]["imei"] == to_digits(IMEI_A + "0")


def test_a_call_attempt_counts_whatever_became_of_it():
    """A call to the hotline that was busy (REL with a cause), or longer than the dialogue time-out
    (emitted with TIMEOUT, its end unseen), was ignored as failed: the subscriber did call."""
    run = Run()
    ev = run.feed(rec(Kind.CALL_ATTEMPT, 0, peer="10086", flags=Flag.REQUEST | Flag.ERROR),
                  rec(Kind.CALL_ATTEMPT, 1, peer="10086", flags=Flag.REQUEST | Flag.RESPONSE | Flag.TIMEOUT),
                  rec(Kind.CALL_ATTEMPT, 2, peer="114", flags=Flag.REQUEST | Flag.RESPONSE))
    calls = ev[ev["event"] == Event.HOTLINE_CALL]
    assert len(calls) == 3 and calls["ts_ns"].tolist() == [T0, T0 + MIN, T0 + 2 * MIN]


def test_roaming_between_regions():
    run = Run()
    ev = run.feed((rec(Kind.LOCATION_UPDATE, 0), 1, -1),                # first location: no change
                  (rec(Kind.MO_SMS, 1), -1, -1),                        # tells no location
                  (rec(Kind.LOCATION_UPDATE, 2), 1, -1),
                  (rec(Kind.LOCATION_UPDATE, 3, mcc="262", mnc="01"), 0, -1),   # in no region: as it was
                  (rec(Kind.LOCATION_UPDATE, 4), 2, -1))
    evs = ev[np.isin(ev["event"], [Event.ROAMING_IN, Event.ROAMING_OUT])]
    assert [(Event(int(e["event"])).label, e["region"], e["other_region"], e["rec"]) for e in evs] == [
        ("roaming_out", 1, 2, 4), ("roaming_in", 2, 1, 4)]
    assert run.st.rows[0]["mcc"] == to_digits("262", 4)               # the serving network is kept


def test_inbound_roamer_once_for_a_foreign_imsi():
    run = Run(home=["46000", "46002"])
    ev = run.feed(rec(Kind.LOCATION_UPDATE, 0, imsi="310150123456789"),
                  rec(Kind.LOCATION_UPDATE, 1, imsi="310150123456789"),
                  rec(Kind.LOCATION_UPDATE, 2, imsi="460021234567890"))
    assert names(ev).count("inbound_roamer") == 1
    assert ev[ev["event"] == Event.INBOUND_ROAMER][0]["rec"] == 0


def test_area_enter_and_dwell_once_per_visit():
    run = Run(dwell=[30])
    ev = run.feed((rec(Kind.SUBSCRIBER_INFO, 0), -1, 0),                 # first cell: outside
                  (rec(Kind.SUBSCRIBER_INFO, 5), -1, 7),                 # enters area 7
                  (rec(Kind.SUBSCRIBER_INFO, 20), -1, 7),
                  (rec(Kind.LOCATION_UPDATE, 40, imsi="460009999999999"), -1, -1),   # someone else: the clock
                  (rec(Kind.SUBSCRIBER_INFO, 90), -1, 7))                # still there: no second dwell
    assert names(ev, skip=(Event.RECORD, Event.POWER_ON)) == ["area_enter", "area_dwell"]
    dw = ev[ev["event"] == Event.AREA_DWELL][0]
    assert dw["ts_ns"] == T0 + 35 * MIN and dw["area"] == 7 and dw["minutes"] == 30 and dw["rec"] == -1


def test_dwell_interrupted_restarts_the_visit():
    run = Run(dwell=[30])
    ev = run.feed((rec(Kind.SUBSCRIBER_INFO, 0), -1, 7),                 # first sighting inside: a visit
                  (rec(Kind.SUBSCRIBER_INFO, 10), -1, 0),                # leaves
                  (rec(Kind.SUBSCRIBER_INFO, 20), -1, 7),                # back
                  (rec(Kind.SUBSCRIBER_INFO, 45), -1, 7))
    assert names(ev, skip=(Event.RECORD,)) == ["area_enter"]            # dwell due at 50, clock at 45
    ev = run.st.flush(T0 + 60 * MIN)
    assert names(ev) == ["area_dwell"] and ev[0]["ts_ns"] == T0 + 50 * MIN


def test_power_off_and_on():
    run = Run()
    ev = run.feed(rec(Kind.LOCATION_UPDATE, 0), rec(Kind.PURGE_MS, 10), rec(Kind.PURGE_MS, 11),
                  rec(Kind.LOCATION_UPDATE, 130))
    assert names(ev) == ["power_on", "power_off", "power_on"]
    assert ev[ev["event"] == Event.POWER_ON][1]["seconds"] == 119 * 60


def test_last_gtpv2_session_deleted_is_power_off():
    run = Run()
    ev = run.feed(rec(Kind.SESSION_CREATE, 0), rec(Kind.SESSION_CREATE, 1), rec(Kind.SESSION_DELETE, 2),
                  rec(Kind.SESSION_DELETE, 3), rec(Kind.SESSION_CREATE, 4))
    assert names(ev) == ["power_on", "data_session_start", "data_session_start", "power_off", "power_on",
                         "data_session_start"]


def test_session_deleted_while_cs_attached_is_not_power_off():
    run = Run()
    ev = run.feed(rec(Kind.LOCATION_UPDATE, 0), rec(Kind.SESSION_CREATE, 1), rec(Kind.SESSION_DELETE, 2),
                  rec(Kind.PURGE_MS, 3), rec(Kind.SESSION_CREATE, 4), rec(Kind.SESSION_DELETE, 5))
    assert names(ev) == ["power_on", "data_session_start", "power_off", "power_on", "data_session_start",
                         "power_off"]


def test_cf_then_power_on():
    run = Run()
    ev = run.feed(rec(Kind.LOCATION_UPDATE, 0), rec(Kind.SS_REGISTER, 5, ss=0x21, peer="13912345678"),
                  rec(Kind.PURGE_MS, 10), rec(Kind.LOCATION_UPDATE, 70))
    cf = ev[ev["event"] == Event.CF_THEN_POWER_ON]
    assert len(cf) == 1 and cf[0]["ss_code"] == 0x21 and cf[0]["seconds"] == 65 * 60
    assert cf[0]["number"] == to_digits("13912345678")


def test_cf_erased_before_power_on_or_set_while_off():
    run = Run()
    ev = run.feed(rec(Kind.LOCATION_UPDATE, 0), rec(Kind.SS_REGISTER, 5, ss=0x29, peer="13912345678"),
                  rec(Kind.SS_ERASE, 6, ss=0x29), rec(Kind.PURGE_MS, 10), rec(Kind.LOCATION_UPDATE, 70))
    assert Event.CF_THEN_POWER_ON not in ev["event"]
    run = Run()
    ev = run.feed(rec(Kind.LOCATION_UPDATE, 0), rec(Kind.PURGE_MS, 10),
                  rec(Kind.SS_ACTIVATE, 20, ss=0x21), rec(Kind.LOCATION_UPDATE, 70))
    assert Event.CF_THEN_POWER_ON not in ev["event"]          # set after the power-off: not the signal
    run = Run()                                               # all-conditional erased: cfu stays
    ev = run.feed(rec(Kind.LOCATION_UPDATE, 0), rec(Kind.SS_REGISTER, 1, ss=0x21),
                  rec(Kind.SS_ERASE, 2, ss=0x28), rec(Kind.PURGE_MS, 3), rec(Kind.LOCATION_UPDATE, 4))
    assert list(ev[ev["event"] == Event.CF_THEN_POWER_ON]["ss_code"]) == [0x21]


def test_subscriber_known_only_by_msisdn_then_by_imsi():
    run = Run()
    ev = run.feed(rec(Kind.MO_SMS, 0, imsi="", msisdn=MSISDN),
                  rec(Kind.MO_SMS, 1, imsi="", msisdn=MSISDN),
                  rec(Kind.SRI_SM, 2, msisdn=MSISDN),                   # the IMSI is learned
                  rec(Kind.MT_SMS, 3))                                  # IMSI only: the same subscriber
    assert run.st.count == 1
    assert set(ev["sub"]) == {0}
    row = run.st.rows[0]
    assert row["imsi"] == to_digits(IMSI) and row["msisdn"] == to_digits(MSISDN)


def test_msisdn_moves_to_a_new_sim():
    run = Run()
    run.feed(rec(Kind.SRI_SM, 0, msisdn=MSISDN), rec(Kind.SRI_SM, 1, imsi="460009999999999", msisdn=MSISDN))
    assert run.st.count == 2
    assert run.st.find(msisdn=to_digits(MSISDN)) == 1 and run.st.find(imsi=to_digits(IMSI)) == 0


def test_a_number_seen_alone_then_with_a_known_imsi_is_that_imsis_after_a_restart():
    """An ISUP call gives a row by MSISDN alone; the IMSI already has its own row; a record with
    both makes the number the IMSI's row's. The first row gives the number up, so an index built
    again from the rows (a restart from a snapshot) finds the same row for it as before: the
    kill test of an exporting engine (tests/test_engine_kill.py) found a restart that did not."""
    run = Run()
    run.feed(rec(Kind.MT_SMS, 0), rec(Kind.CALL_ATTEMPT, 1, imsi="", msisdn=MSISDN, peer="10086"),
             rec(Kind.SS_ACTIVATE, 2, msisdn=MSISDN, ss=0x2B))
    assert run.st.count == 2 and run.st.find(msisdn=to_digits(MSISDN)) == 0
    assert run.st.rows[1]["msisdn"] == NO_DIGITS                # the number-only row gave it up
    again = State(16)
    again.restore(run.st.rows[:run.st.count].copy(), run.st.pending_timers(), run.st.clock_ns)
    assert again.find(msisdn=to_digits(MSISDN)) == 0


def test_rat_change_and_first_time_on_a_generation():
    run = Run()
    ev = run.feed(rec(Kind.SESSION_CREATE, 0, rat=6), rec(Kind.SESSION_MODIFY, 1, rat=10),
                  rec(Kind.SESSION_MODIFY, 2, rat=6), rec(Kind.SESSION_MODIFY, 3, rat=10))
    rc = ev[ev["event"] == Event.RAT_CHANGE]
    assert [(e["from_rat"], e["rat"], e["flag"]) for e in rc] == [(6, 10, 1), (10, 6, 0), (6, 10, 0)]


def test_data_days():
    run = Run()
    day = 24 * 60
    run.feed(rec(Kind.MO_SMS, 0), rec(Kind.DATA_USAGE, 2, octets=4096), rec(Kind.DATA_USAGE, day + 2, octets=1 << 20))
    row = run.st.rows[0]
    assert row["data_days"] == 0b11 and row["data_day"] == (T0 // 10**9) // 86400 + 1
    run.feed(rec(Kind.DATA_USAGE, 4 * day, octets=1))
    assert run.st.rows[0]["data_days"] == 0b11001           # three days on: shifted by three


def test_index_agrees_with_a_dict():
    rng = np.random.default_rng(7)
    n = 20_000
    imsis = [f"46000{x:010d}" for x in rng.choice(10**10, n, replace=False)]
    msisdns = [f"86138{x:08d}" for x in rng.choice(10**8, n, replace=False)]
    recs = empty(n)
    recs["kind"], recs["ts_ns"] = Kind.MO_SMS, T0
    recs["imsi"] = [to_digits(s) for s in imsis]
    recs["msisdn"] = [to_digits(s) for s in msisdns]
    st = State(16)                                              # grows many times
    st.process(recs, np.full(n, -1, np.int16), np.full(n, -1, np.int32))
    # every other subscriber gets a new number: stale slots must not answer
    moved = recs[::2].copy()
    moved["msisdn"] = [to_digits(f"86139{i:08d}") for i in range(len(moved))]
    st.process(moved, np.full(len(moved), -1, np.int16), np.full(len(moved), -1, np.int32))
    assert st.count == n
    rows = st.lookup(recs["imsi"], np.full(n, 0xFFFFFFFFFFFFFFFF, np.uint64))
    assert (st.rows["imsi"][rows] == recs["imsi"]).all()
    by_old = st.lookup(np.full(n, 0xFFFFFFFFFFFFFFFF, np.uint64), recs["msisdn"])
    assert (by_old[::2] == -1).all() and (by_old[1::2] >= 0).all()
    by_new = st.lookup(np.full(len(moved), 0xFFFFFFFFFFFFFFFF, np.uint64), moved["msisdn"])
    assert (st.rows["imsi"][by_new] == moved["imsi"]).all()


@pytest.mark.parametrize("cut", [1, 3, 5])
def test_restore_continues_as_if_never_stopped(cut):
    items = [(rec(Kind.LOCATION_UPDATE, 0, imei=IMEI_A + "0"), 1, 7),
             (rec(Kind.SS_REGISTER, 1, ss=0x21, peer="13912345678"), -1, -1),
             (rec(Kind.PURGE_MS, 2), -1, -1),
             (rec(Kind.LOCATION_UPDATE, 3, imei=IMEI_B + "0"), 2, 7),
             (rec(Kind.LOCATION_UPDATE, 9, imsi="460009999999999"), -1, -1),
             (rec(Kind.SUBSCRIBER_INFO, 40), -1, 7),
             (rec(Kind.SUBSCRIBER_INFO, 41), -1, 0)]
    whole = Run(dwell=[30])
    want = whole.feed(*items)
    a = Run(dwell=[30])
    first = a.feed(*items[:cut])
    b = Run(dwell=[30])
    b.st.restore(a.st.rows[:a.st.count].copy(), a.st.pending_timers(), a.st.clock_ns, a.st.forwards())
    second = b.feed(*items[cut:])
    got = np.concatenate([first, second])
    assert names(got) == names(want)
    assert (got["ts_ns"] == want["ts_ns"]).all()
