# C declarations shared by the layers: the record and the hash (core.pxd), the anomaly table,
# byte order.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t, int32_t

from core cimport *

cdef extern from "subject.h" nogil:
    uint64_t tp_subject_hash(const uint8_t *p, size_t n)

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
