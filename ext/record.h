/* The record: the one contract between probe and control.
 * One fixed-size record per signaling event. Fields are only ever appended;
 * bump TP_SCHEMA_VERSION when they are. probe/record.py mirrors this layout
 * as a numpy dtype and tests/test_record.py checks them byte for byte. */
#ifndef TP_RECORD_H
#define TP_RECORD_H
#include <stdint.h>
#include <stddef.h>

#define TP_SCHEMA_VERSION 4
#define TP_APN_LEN 24
#define TP_ALPHA_LEN 12
#define TP_NO_DIGITS UINT64_MAX   /* packed digits of the empty string */

/* Digit strings (IMSI, MSISDN, IMEI, GT, ...) are packed 4 bits a digit, first
 * digit in the top nibble, 0xF filler: "460001" -> 0x460001FFFFFFFFFF, so
 * numeric order is string order and a prefix is a mask. Nibbles A-E carry
 * TBCD '*', '#', 'a', 'b', 'c'. mcc and mnc use the same packing in 16 bits. */

#pragma pack(push, 1)
typedef struct {
    int64_t  ts_ns;      /* capture time, ns since the epoch */
    uint16_t kind;       /* tp_kind */
    uint8_t  proto;      /* tp_proto */
    uint8_t  flags;      /* tp_flag bits */
    uint16_t op;         /* operation code or message type */
    uint16_t cause;      /* MAP error, GTP cause, ISUP cause; 0 = none */
    uint64_t imsi;
    uint64_t msisdn;
    uint64_t imei;
    uint64_t peer;       /* the other number */
    uint64_t node;       /* serving node: VLR, MSC, SGSN GT digits */
    uint16_t mcc;
    uint16_t mnc;
    uint32_t lac_tac;
    uint32_t cell;
    uint8_t  rat;
    uint8_t  ss_code;
    uint8_t  version;    /* application context version (MAP v1..v3) */
    uint8_t  loc_type;   /* tp_loc */
    char     apn[TP_APN_LEN];
    uint32_t tid;        /* TCAP originating transaction id / GTP sequence or TEID */
    uint32_t src;        /* OPC or IPv4 source */
    uint32_t dst;        /* DPC or IPv4 destination */
    uint32_t frame;      /* capture frame number (1-based) of the last message folded in */
    uint16_t probe_id;
    uint16_t pad0;
    uint32_t packets;    /* data usage: user packets counted */
    uint64_t octets;     /* data usage: user bytes counted (inner IP); MMS: message size */
    uint32_t service_key;/* CAP InitialDP service key */
    uint16_t app_port;   /* SMS user data header: destination application port */
    uint8_t  sms_pid;    /* SMS TP-PID */
    uint8_t  sms_dcs;    /* SMS TP-DCS */
    uint8_t  parts;      /* SMS concatenation: number of parts (0 = not concatenated) */
    uint8_t  part;       /* SMS concatenation: this part's number */
    uint8_t  event;      /* CAP eventTypeBCSM */
    uint8_t  nai;        /* ISUP/CAP called party nature of address */
    uint32_t duration_ms;/* call_end: answer to release, ms (0: not answered, or its end not seen) */
    char     peer_alpha[TP_ALPHA_LEN]; /* alphanumeric other party (SMS TP-OA/TP-DA), NUL padded */
    uint8_t  bearers;    /* GTPv2 bearer contexts (GTPv1: 1 with an NSAPI), the most of request and response */
    uint8_t  ebi;        /* first EPS bearer id (linked/default bearer first) or GTPv1 NSAPI */
    uint8_t  qci;        /* QCI of the first bearer QoS */
    uint8_t  mms_class;  /* MMS notification: tp_mms_class (schema 4; a pad before) */
    uint64_t subject_hash; /* MMS notification: hash of the normalised subject (ext/subject.h); 0 none */
} tp_record;
#pragma pack(pop)

enum tp_proto {
    TP_PROTO_NONE = 0, TP_PROTO_MAP = 1, TP_PROTO_CAP = 2, TP_PROTO_ISUP = 3,
    TP_PROTO_GTPV1C = 4, TP_PROTO_GTPV2C = 5, TP_PROTO_GTPU = 6,
};

enum tp_flag {
    TP_F_REQUEST = 0x01,     /* request (invoke) seen */
    TP_F_RESPONSE = 0x02,    /* response (result) seen */
    TP_F_ERROR = 0x04,       /* returnError, reject or error cause */
    TP_F_ABORT = 0x08,       /* dialogue aborted */
    TP_F_TIMEOUT = 0x10,     /* no end seen before the time-out or end of capture */
    TP_F_PARTIAL = 0x20,     /* part of the message could not be decoded */
    TP_F_CORRELATED = 0x40,  /* request and response merged into this record */
    TP_F_ANSWERED = 0x80,    /* a call: answered (ISUP ANM/CON, a CAP o/tAnswer event report) */
};

enum tp_mms_class {     /* X-Mms-Message-Class */
    TP_MMS_CLASS_NONE = 0, TP_MMS_CLASS_PERSONAL = 1, TP_MMS_CLASS_ADVERTISEMENT = 2,
    TP_MMS_CLASS_INFORMATIONAL = 3, TP_MMS_CLASS_AUTO = 4, TP_MMS_CLASS_OTHER = 5,   /* a token text */
};
enum tp_loc {
    TP_LOC_NONE = 0, TP_LOC_CGI = 1, TP_LOC_SAI = 2, TP_LOC_RAI = 3, TP_LOC_TAI = 4,
    TP_LOC_ECGI = 5, TP_LOC_LAI = 6,
};

enum tp_kind {
    TP_K_OTHER = 0,
    TP_K_LOCATION_UPDATE = 1,
    TP_K_GPRS_LOCATION_UPDATE = 2,
    TP_K_CANCEL_LOCATION = 3,
    TP_K_PURGE_MS = 4,
    TP_K_AUTH_INFO = 5,
    TP_K_INSERT_SUB_DATA = 6,
    TP_K_SRI = 7,
    TP_K_SRI_SM = 8,
    TP_K_MO_SMS = 9,
    TP_K_MT_SMS = 10,
    TP_K_MMS_NOTIFICATION = 11,
    TP_K_SS_REGISTER = 12,
    TP_K_SS_ACTIVATE = 13,
    TP_K_SS_DEACTIVATE = 14,
    TP_K_SS_ERASE = 15,
    TP_K_CHECK_IMEI = 16,
    TP_K_SUBSCRIBER_INFO = 17,
    TP_K_USSD = 18,
    TP_K_CALL_ATTEMPT = 19,
    TP_K_PDP_CREATE = 20,
    TP_K_PDP_UPDATE = 21,
    TP_K_PDP_DELETE = 22,
    TP_K_SESSION_CREATE = 23,
    TP_K_SESSION_MODIFY = 24,
    TP_K_SESSION_DELETE = 25,
    TP_K_BEARER_CREATE = 26,
    TP_K_BEARER_UPDATE = 27,
    TP_K_BEARER_DELETE = 28,
    TP_K_DATA_USAGE = 29,
    TP_K_CALL_END = 30,
};

/* The type allocation code of a packed IMEI: its first 8 digits as a number. */
static inline uint32_t tp_tac_of(uint64_t imei) {
    uint32_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v * 10 + (uint32_t)((imei >> (60 - 4 * i)) & 0xF);
    return v;
}

#endif
