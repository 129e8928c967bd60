/* The engine's rows (control._state): a subscriber, a scenario event, a dwell timer.
 * STATE_DTYPE, EVENT_DTYPE and TIMER_DTYPE in ext/state.pyx mirror them (asserted on import). */
#ifndef TP_STATE_H
#define TP_STATE_H
#include <stdint.h>

#pragma pack(push, 1)
typedef struct {
    uint64_t imsi, msisdn, imei, node;
    uint32_t lac_tac, cell, last_seen, area_since, off_at, data_days;
    uint32_t imei_since, prev_tac, region_since;
    uint32_t call_at, call_peer, end_at, end_peer;
    uint16_t mcc, mnc, area, data_day, area_day;
    uint16_t svc[4];         /* the day (State.day_no) each data service was last used */
    uint8_t  rat, region, flags, cf;
} tp_sub;
typedef struct {
    int64_t  ts_ns;
    int32_t  rec, sub;
    uint8_t  event, flag, region, other_region;
    uint16_t area, minutes;
    uint32_t tac, old_tac, seconds;
    uint8_t  rat, from_rat, ss_code, segment;
    uint64_t number;
} tp_event;
typedef struct {
    int64_t  ts_ns;
    uint32_t sub, since;
    uint16_t area, minutes;
} tp_timer;
typedef struct {             /* a fact of the day about a subscriber in a named area */
    uint32_t sub, value;
    uint16_t area;
    uint8_t  series, pad;
} tp_fact;
#pragma pack(pop)

#endif
