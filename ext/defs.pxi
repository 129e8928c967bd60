# C declarations shared by the layers: the record, the anomaly table, byte order.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t, int32_t

cdef extern from "record.h":
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
        char apn[24]
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
        uint32_t pad1
        char peer_alpha[12]
        uint8_t bearers
        uint8_t ebi
        uint8_t qci
        uint8_t pad2
    enum: TP_SCHEMA_VERSION
    enum: TP_APN_LEN
    enum: TP_ALPHA_LEN
    enum:
        TP_PROTO_NONE, TP_PROTO_MAP, TP_PROTO_CAP, TP_PROTO_ISUP, TP_PROTO_GTPV1C, TP_PROTO_GTPV2C,
        TP_PROTO_GTPU
    enum:
        TP_F_REQUEST, TP_F_RESPONSE, TP_F_ERROR, TP_F_ABORT, TP_F_TIMEOUT, TP_F_PARTIAL, TP_F_CORRELATED
    enum:
        TP_LOC_NONE, TP_LOC_CGI, TP_LOC_SAI, TP_LOC_RAI, TP_LOC_TAI, TP_LOC_ECGI, TP_LOC_LAI
    enum:
        TP_K_OTHER, TP_K_LOCATION_UPDATE, TP_K_GPRS_LOCATION_UPDATE, TP_K_CANCEL_LOCATION,
        TP_K_PURGE_MS, TP_K_AUTH_INFO, TP_K_INSERT_SUB_DATA, TP_K_SRI, TP_K_SRI_SM, TP_K_MO_SMS,
        TP_K_MT_SMS, TP_K_MMS_NOTIFICATION, TP_K_SS_REGISTER, TP_K_SS_ACTIVATE, TP_K_SS_DEACTIVATE, TP_K_SS_ERASE,
        TP_K_CHECK_IMEI, TP_K_SUBSCRIBER_INFO, TP_K_USSD, TP_K_CALL_ATTEMPT, TP_K_PDP_CREATE,
        TP_K_PDP_UPDATE, TP_K_PDP_DELETE, TP_K_SESSION_CREATE, TP_K_SESSION_MODIFY, TP_K_SESSION_DELETE,
        TP_K_BEARER_CREATE, TP_K_BEARER_UPDATE, TP_K_BEARER_DELETE, TP_K_DATA_USAGE

cdef extern from "anomaly.h":
    enum: L_COUNT
    enum: AN_COUNT
    enum:
        L_CAPTURE, L_LINK, L_IP, L_SCTP, L_M3UA, L_M2UA, L_M2PA, L_MTP3, L_SCCP, L_TCAP, L_MAP, L_CAP, L_ISUP, L_GTP, L_GTPU
    enum:
        AN_NONE, AN_CAP_TRUNCATED, AN_CAP_NOT_CAPTURE, AN_CAP_BAD_RECORD, AN_CAP_BAD_BLOCK, AN_CAP_NO_INTERFACE,
        AN_CAP_SNAPPED, AN_LINK_TRUNCATED, AN_LINK_UNSUPPORTED, AN_LINK_NOT_IP, AN_MTP2_NOT_MSU,
        AN_IP_TRUNCATED, AN_IP_MALFORMED, AN_IP_NOT_SIGNALING, AN_IP_UDP_TRUNCATED, AN_IP_TCP_TRUNCATED,
        AN_IP_TCP_MALFORMED, AN_IP_FRAG_HELD,
        AN_IP_FRAG_EVICTED, AN_IP_FRAG_BAD, AN_IP6_FRAGMENT, AN_SCTP_TRUNCATED, AN_SCTP_BAD_CHUNK,
        AN_SCTP_PPID_OTHER, AN_SCTP_SUA, AN_SCTP_RETRANSMISSION, AN_SCTP_IDATA, AN_SCTP_FRAG_HELD, AN_SCTP_FRAG_LOST,
        AN_SCTP_FRAG_EVICTED, AN_SCTP_FRAG_TOO_BIG, AN_M3UA_TRUNCATED, AN_M3UA_MALFORMED,
        AN_M3UA_NOT_DATA, AN_M3UA_NO_DATA, AN_M2UA_TRUNCATED, AN_M2UA_MALFORMED, AN_M2UA_NOT_DATA,
        AN_M2PA_TRUNCATED, AN_M2PA_MALFORMED, AN_M2PA_NOT_DATA, AN_MTP3_TRUNCATED,
        AN_MTP3_MANAGEMENT, AN_MTP3_OTHER_SI, AN_SCCP_TRUNCATED, AN_SCCP_BAD_POINTER,
        AN_SCCP_BAD_ADDRESS, AN_SCCP_UNKNOWN_TYPE, AN_SCCP_SERVICE, AN_SCCP_CONNECTION, AN_SCCP_MANAGEMENT,
        AN_SCCP_SEG_HELD, AN_SCCP_SEG_LOST, AN_SCCP_SEG_EVICTED, AN_TCAP_TRUNCATED,
        AN_TCAP_MALFORMED, AN_TCAP_TOO_DEEP, AN_TCAP_UNKNOWN_TYPE, AN_TCAP_OTHER_USER,
        AN_TCAP_BAD_COMPONENT, AN_TCAP_TOO_MANY, AN_TCAP_EVICTED, AN_TCAP_TIMEOUT,
        AN_TCAP_UNMATCHED, AN_MAP_MALFORMED, AN_MAP_TRUNCATED, AN_MAP_UNKNOWN_OP, AN_MAP_GLOBAL_OP, AN_CAMEL_MALFORMED, AN_CAMEL_TRUNCATED, AN_ISUP_TRUNCATED, AN_ISUP_MALFORMED,
        AN_ISUP_OTHER_MESSAGE, AN_ISUP_BICC, AN_ISUP_UNMATCHED, AN_ISUP_TIMEOUT, AN_ISUP_EVICTED,
        AN_GTP_TRUNCATED, AN_GTP_MALFORMED, AN_GTP_IE_MALFORMED, AN_GTP_IE_UNKNOWN_TV, AN_GTP_ECHO,
        AN_GTP_OTHER_MESSAGE, AN_GTP_PRIME, AN_GTP_V0, AN_GTP_UNMATCHED, AN_GTP_TIMEOUT, AN_GTP_EVICTED,
        AN_GTP_TCP_RETRANSMISSION, AN_GTP_TCP_SPLIT, AN_GTP_TCP_REST, AN_GTP_TCP_UNFRAMED, AN_GTP_TCP_EVICTED,
        AN_GTPU_TRUNCATED,
        AN_GTPU_MALFORMED, AN_GTPU_SIGNALLING, AN_GTPU_UNKNOWN_TEID, AN_GTPU_EVICTED
    ctypedef struct tp_anomaly_info:
        const char *name
        int layer
        int cls
        const char *text
    const tp_anomaly_info tp_anomaly_table[]
    const char *const tp_layer_names[]
    const char *const tp_class_names[]

cdef extern from "bswap.h":
    uint16_t be16(const uint8_t *p) nogil
    uint32_t be24(const uint8_t *p) nogil
    uint32_t be32(const uint8_t *p) nogil
    uint16_t le16(const uint8_t *p) nogil
    uint32_t le24(const uint8_t *p) nogil
    uint32_t le32(const uint8_t *p) nogil
    uint16_t rd16(const uint8_t *p, int swap) nogil
    uint32_t rd32(const uint8_t *p, int swap) nogil
    uint64_t mix64(uint64_t x) nogil
