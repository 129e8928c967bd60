# The C core the extensions share (asyncpg's pgproto .pxd files are the model): the record
# (ext/record.h: the struct, its enums, digit packing) and the hash (ext/hash.h). _decode, state
# and shard cimport it, so each of these exists once in C.
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

cdef extern from "record.h" nogil:
    enum: TP_SCHEMA_VERSION
    enum: TP_APN_LEN
    enum: TP_ALPHA_LEN
    const uint64_t NO_DIGITS "TP_NO_DIGITS"     # packed digits of the empty string (probe.record.NO_DIGITS)
    uint32_t tp_tac_of(uint64_t imei)
    ctypedef struct tp_record:
        int64_t ts_ns
        uint16_t kind
        uint8_t proto
        uint8_t flags
        uint16_t op
        uint16_t cause
        uint64_t imsi
        uint64_t msisdn
        uint64_t imei
        uint64_t peer
        uint64_t node
        uint16_t mcc
        uint16_t mnc
        uint32_t lac_tac
        uint32_t cell
        uint8_t rat
        uint8_t ss_code
        uint8_t version
        uint8_t loc_type
        char apn[TP_APN_LEN]
        uint32_t tid
        uint32_t src
        uint32_t dst
        uint32_t frame
        uint16_t probe_id
        uint16_t pad0
        uint32_t packets
        uint64_t octets
        uint32_t service_key
        uint16_t app_port
        uint8_t sms_pid
        uint8_t sms_dcs
        uint8_t parts
        uint8_t part
        uint8_t event
        uint8_t nai
        uint32_t duration_ms
        char peer_alpha[TP_ALPHA_LEN]
        uint8_t bearers
        uint8_t ebi
        uint8_t qci
        uint8_t mms_class
        uint64_t subject_hash
    enum:
        TP_PROTO_NONE, TP_PROTO_MAP, TP_PROTO_CAP, TP_PROTO_ISUP, TP_PROTO_GTPV1C, TP_PROTO_GTPV2C,
        TP_PROTO_GTPU
    enum:
        TP_MMS_CLASS_NONE, TP_MMS_CLASS_PERSONAL, TP_MMS_CLASS_ADVERTISEMENT, TP_MMS_CLASS_INFORMATIONAL,
        TP_MMS_CLASS_AUTO, TP_MMS_CLASS_OTHER
    enum:
        TP_F_REQUEST, TP_F_RESPONSE, TP_F_ERROR, TP_F_ABORT, TP_F_TIMEOUT, TP_F_PARTIAL, TP_F_CORRELATED,
        TP_F_ANSWERED
    enum:
        TP_LOC_NONE, TP_LOC_CGI, TP_LOC_SAI, TP_LOC_RAI, TP_LOC_TAI, TP_LOC_ECGI, TP_LOC_LAI
    enum:
        TP_K_OTHER, TP_K_LOCATION_UPDATE, TP_K_GPRS_LOCATION_UPDATE, TP_K_CANCEL_LOCATION,
        TP_K_PURGE_MS, TP_K_AUTH_INFO, TP_K_INSERT_SUB_DATA, TP_K_SRI, TP_K_SRI_SM, TP_K_MO_SMS,
        TP_K_MT_SMS, TP_K_MMS_NOTIFICATION, TP_K_SS_REGISTER, TP_K_SS_ACTIVATE, TP_K_SS_DEACTIVATE, TP_K_SS_ERASE,
        TP_K_CHECK_IMEI, TP_K_SUBSCRIBER_INFO, TP_K_USSD, TP_K_CALL_ATTEMPT, TP_K_PDP_CREATE,
        TP_K_PDP_UPDATE, TP_K_PDP_DELETE, TP_K_SESSION_CREATE, TP_K_SESSION_MODIFY, TP_K_SESSION_DELETE,
        TP_K_BEARER_CREATE, TP_K_BEARER_UPDATE, TP_K_BEARER_DELETE, TP_K_DATA_USAGE, TP_K_CALL_END

cdef extern from "hash.h" nogil:
    const uint64_t TP_GOLDEN
    uint64_t tp_mix64(uint64_t x)
    uint64_t tp_splitmix64(uint64_t x)
