/* Every anomaly the decoder counts: one enum, one table (layer, class, text).
 * probe/decode.py builds the Python IntEnum from this table at import. */
#ifndef TP_ANOMALY_H
#define TP_ANOMALY_H

enum tp_layer {
    L_CAPTURE, L_LINK, L_IP, L_SCTP, L_M3UA, L_M2UA, L_M2PA, L_MTP3, L_SCCP, L_TCAP, L_MAP,
    L_CAP, L_ISUP, L_GTP, L_GTPU, L_COUNT
};
static const char *const tp_layer_names[L_COUNT] = {
    "capture", "link", "ip", "sctp", "m3ua", "m2ua", "m2pa", "mtp3", "sccp", "tcap", "map",
    "cap", "isup", "gtp", "gtpu"
};

/* classes: what went wrong, as --stats reports it */
enum tp_class { C_OK, C_TRUNCATED, C_MALFORMED, C_UNSUPPORTED, C_OTHER, C_EVICTED };
static const char *const tp_class_names[] = {
    "ok", "truncated", "malformed", "unsupported", "other", "evicted"
};

#define TP_ANOMALIES(X) \
    X(NONE,                 L_CAPTURE, C_OK,          "no anomaly") \
    X(CAP_TRUNCATED,        L_CAPTURE, C_TRUNCATED,   "capture file ends inside a record") \
    X(CAP_NOT_CAPTURE,      L_CAPTURE, C_MALFORMED,   "not a pcap or pcapng file (unknown magic number)") \
    X(CAP_BAD_RECORD,       L_CAPTURE, C_MALFORMED,   "record header with impossible length") \
    X(CAP_BAD_BLOCK,        L_CAPTURE, C_MALFORMED,   "pcapng block with impossible length") \
    X(CAP_NO_INTERFACE,     L_CAPTURE, C_MALFORMED,   "pcapng packet for an undeclared interface") \
    X(CAP_SNAPPED,          L_CAPTURE, C_TRUNCATED,   "packet cut by the snap length") \
    X(LINK_TRUNCATED,       L_LINK,    C_TRUNCATED,   "link header truncated") \
    X(LINK_UNSUPPORTED,     L_LINK,    C_UNSUPPORTED, "link type not supported") \
    X(LINK_NOT_IP,          L_LINK,    C_OTHER,       "frame does not carry IP") \
    X(MTP2_NOT_MSU,         L_LINK,    C_OTHER,       "MTP2 fill-in or status unit") \
    X(IP_TRUNCATED,         L_IP,      C_TRUNCATED,   "IP header or payload truncated") \
    X(IP_MALFORMED,         L_IP,      C_MALFORMED,   "IP header inconsistent") \
    X(IP_NOT_SIGNALING,     L_IP,      C_OTHER,       "not signaling: another IP protocol or port, or TCP without data") \
    X(IP_UDP_TRUNCATED,     L_IP,      C_TRUNCATED,   "UDP header truncated") \
    X(IP_TCP_TRUNCATED,     L_IP,      C_TRUNCATED,   "TCP header truncated") \
    X(IP_TCP_MALFORMED,     L_IP,      C_MALFORMED,   "TCP header length invalid") \
    X(IP_FRAG_HELD,         L_IP,      C_OTHER,       "IPv4 fragment held for reassembly") \
    X(IP_FRAG_EVICTED,      L_IP,      C_EVICTED,     "IPv4 fragments evicted (table full or timed out)") \
    X(IP_FRAG_BAD,          L_IP,      C_MALFORMED,   "IPv4 fragment overlaps or overruns") \
    X(IP6_FRAGMENT,         L_IP,      C_UNSUPPORTED, "IPv6 fragment not reassembled") \
    X(SCTP_TRUNCATED,       L_SCTP,    C_TRUNCATED,   "SCTP header or chunk truncated") \
    X(SCTP_BAD_CHUNK,       L_SCTP,    C_MALFORMED,   "SCTP chunk length invalid") \
    X(SCTP_PPID_OTHER,      L_SCTP,    C_OTHER,       "SCTP payload not SS7 (PPID)") \
    X(SCTP_SUA,             L_SCTP,    C_UNSUPPORTED, "SUA not decoded") \
    X(SCTP_RETRANSMISSION,  L_SCTP,    C_OTHER,       "SCTP DATA chunk retransmitted (TSN already seen): decoded once") \
    X(SCTP_IDATA,           L_SCTP,    C_UNSUPPORTED, "SCTP I-DATA not decoded") \
    X(SCTP_FRAG_HELD,       L_SCTP,    C_OTHER,       "SCTP fragment held for reassembly") \
    X(SCTP_FRAG_LOST,       L_SCTP,    C_UNSUPPORTED, "SCTP fragments out of order or missing: not reassembled") \
    X(SCTP_FRAG_EVICTED,    L_SCTP,    C_EVICTED,     "SCTP reassembly evicted (table full or timed out)") \
    X(SCTP_FRAG_TOO_BIG,    L_SCTP,    C_UNSUPPORTED, "SCTP reassembled message over the size cap") \
    X(M3UA_TRUNCATED,       L_M3UA,    C_TRUNCATED,   "M3UA message truncated") \
    X(M3UA_MALFORMED,       L_M3UA,    C_MALFORMED,   "M3UA header or parameter length invalid") \
    X(M3UA_NOT_DATA,        L_M3UA,    C_OTHER,       "M3UA management message") \
    X(M3UA_NO_DATA,         L_M3UA,    C_MALFORMED,   "M3UA DATA without Protocol Data") \
    X(M2UA_TRUNCATED,       L_M2UA,    C_TRUNCATED,   "M2UA message truncated") \
    X(M2UA_MALFORMED,       L_M2UA,    C_MALFORMED,   "M2UA header or parameter length invalid") \
    X(M2UA_NOT_DATA,        L_M2UA,    C_OTHER,       "M2UA management message") \
    X(M2PA_TRUNCATED,       L_M2PA,    C_TRUNCATED,   "M2PA message truncated") \
    X(M2PA_MALFORMED,       L_M2PA,    C_MALFORMED,   "M2PA header invalid") \
    X(M2PA_NOT_DATA,        L_M2PA,    C_OTHER,       "M2PA link status or empty user data") \
    X(MTP3_TRUNCATED,       L_MTP3,    C_TRUNCATED,   "MTP3 routing label truncated") \
    X(MTP3_MANAGEMENT,      L_MTP3,    C_OTHER,       "MTP3 network management or test") \
    X(MTP3_OTHER_SI,        L_MTP3,    C_UNSUPPORTED, "MTP3 user part not decoded") \
    X(SCCP_TRUNCATED,       L_SCCP,    C_TRUNCATED,   "SCCP message truncated") \
    X(SCCP_BAD_POINTER,     L_SCCP,    C_MALFORMED,   "SCCP pointer or parameter length out of bounds") \
    X(SCCP_BAD_ADDRESS,     L_SCCP,    C_MALFORMED,   "SCCP party address invalid") \
    X(SCCP_UNKNOWN_TYPE,    L_SCCP,    C_UNSUPPORTED, "SCCP message type not assigned by Q.713 (another MTP3 variant?)") \
    X(SCCP_SERVICE,         L_SCCP,    C_OTHER,       "SCCP service message (UDTS/XUDTS/LUDTS)") \
    X(SCCP_CONNECTION,      L_SCCP,    C_UNSUPPORTED, "connection-oriented SCCP not decoded") \
    X(SCCP_MANAGEMENT,      L_SCCP,    C_OTHER,       "SCCP management (SSN 1)") \
    X(SCCP_SEG_HELD,        L_SCCP,    C_OTHER,       "XUDT segment held for reassembly") \
    X(SCCP_SEG_LOST,        L_SCCP,    C_MALFORMED,   "XUDT segment out of sequence, message dropped") \
    X(SCCP_SEG_EVICTED,     L_SCCP,    C_EVICTED,     "XUDT reassembly evicted (table full or timed out)") \
    X(TCAP_TRUNCATED,       L_TCAP,    C_TRUNCATED,   "TCAP element runs past its container") \
    X(TCAP_MALFORMED,       L_TCAP,    C_MALFORMED,   "TCAP structure invalid") \
    X(TCAP_TOO_DEEP,        L_TCAP,    C_MALFORMED,   "BER nesting deeper than the cap") \
    X(TCAP_UNKNOWN_TYPE,    L_TCAP,    C_UNSUPPORTED, "not an ITU TCAP message (ANSI TCAP?)") \
    X(TCAP_OTHER_USER,      L_TCAP,    C_UNSUPPORTED, "TCAP user neither MAP nor CAP (by context, SSN or dialogue)") \
    X(TCAP_BAD_COMPONENT,   L_TCAP,    C_MALFORMED,   "TCAP component invalid") \
    X(TCAP_TOO_MANY,        L_TCAP,    C_EVICTED,     "records for one packet over the cap") \
    X(TCAP_EVICTED,         L_TCAP,    C_EVICTED,     "dialogue evicted: transaction table full") \
    X(TCAP_TIMEOUT,         L_TCAP,    C_OTHER,       "dialogue timed out without an end") \
    X(TCAP_UNMATCHED,       L_TCAP,    C_OTHER,       "continue/end for a dialogue not seen begin") \
    X(MAP_MALFORMED,        L_MAP,     C_MALFORMED,   "MAP parameter invalid") \
    X(MAP_TRUNCATED,        L_MAP,     C_TRUNCATED,   "MAP parameter truncated") \
    X(MAP_UNKNOWN_OP,       L_MAP,     C_OTHER,       "MAP operation not mapped to an event") \
    X(MAP_GLOBAL_OP,        L_MAP,     C_UNSUPPORTED, "MAP global operation code") \
    X(CAMEL_MALFORMED,      L_CAP,     C_MALFORMED,   "CAP argument invalid") \
    X(CAMEL_TRUNCATED,      L_CAP,     C_TRUNCATED,   "CAP argument truncated") \
    X(ISUP_TRUNCATED,       L_ISUP,    C_TRUNCATED,   "ISUP message truncated") \
    X(ISUP_MALFORMED,       L_ISUP,    C_MALFORMED,   "ISUP pointer or parameter length out of bounds") \
    X(ISUP_OTHER_MESSAGE,   L_ISUP,    C_OTHER,       "ISUP message not folded into calls (e.g. CFN, GRS)") \
    X(ISUP_BICC,            L_ISUP,    C_UNSUPPORTED, "BICC recognised, not decoded") \
    X(ISUP_UNMATCHED,       L_ISUP,    C_OTHER,       "ISUP message for a call whose IAM was not seen") \
    X(ISUP_TIMEOUT,         L_ISUP,    C_OTHER,       "ISUP call without release before the time-out") \
    X(ISUP_EVICTED,         L_ISUP,    C_EVICTED,     "ISUP call evicted: call table full") \
    X(GTP_TRUNCATED,        L_GTP,     C_TRUNCATED,   "GTP-C header or message truncated") \
    X(GTP_MALFORMED,        L_GTP,     C_MALFORMED,   "GTP-C header invalid") \
    X(GTP_IE_MALFORMED,     L_GTP,     C_MALFORMED,   "GTP-C information element runs past the message") \
    X(GTP_IE_UNKNOWN_TV,    L_GTP,     C_UNSUPPORTED, "GTPv1 TV information element of unknown length") \
    X(GTP_ECHO,             L_GTP,     C_OTHER,       "GTP echo or version not supported") \
    X(GTP_OTHER_MESSAGE,    L_GTP,     C_OTHER,       "GTP-C message type not mapped to an event") \
    X(GTP_PRIME,            L_GTP,     C_UNSUPPORTED, "GTP' (charging) not decoded") \
    X(GTP_V0,               L_GTP,     C_UNSUPPORTED, "GTP version 0 not decoded") \
    X(GTP_UNMATCHED,        L_GTP,     C_OTHER,       "GTP-C response without its request") \
    X(GTP_TIMEOUT,          L_GTP,     C_OTHER,       "GTP-C request without a response before the time-out") \
    X(GTP_EVICTED,          L_GTP,     C_EVICTED,     "GTP-C transaction evicted: transaction table full") \
    X(GTP_TCP_RETRANSMISSION, L_GTP,   C_OTHER,       "TCP segment of GTP-C already seen (retransmission)") \
    X(GTP_TCP_SPLIT,        L_GTP,     C_UNSUPPORTED, "GTP-C message continues in the next TCP segment") \
    X(GTP_TCP_REST,         L_GTP,     C_OTHER,       "rest of a GTP-C message split across TCP segments") \
    X(GTP_TCP_UNFRAMED,     L_GTP,     C_OTHER,       "TCP octets on a GTP-C port that start no GTP-C message") \
    X(GTP_TCP_EVICTED,      L_GTP,     C_EVICTED,     "TCP flow of GTP-C evicted: flow table full") \
    X(GTPU_TRUNCATED,       L_GTPU,    C_TRUNCATED,   "GTP-U header truncated") \
    X(GTPU_MALFORMED,       L_GTPU,    C_MALFORMED,   "GTP-U header invalid") \
    X(GTPU_SIGNALLING,      L_GTPU,    C_OTHER,       "GTP-U echo, error indication or end marker") \
    X(GTPU_UNKNOWN_TEID,    L_GTPU,    C_OTHER,       "GTP-U tunnel whose subscriber is not known") \
    X(GTPU_EVICTED,         L_GTPU,    C_EVICTED,     "GTP tunnel evicted: tunnel table full")

#define TP_AN_ENUM(name, layer, cls, text) AN_##name,
enum tp_anomaly { TP_ANOMALIES(TP_AN_ENUM) AN_COUNT };
#undef TP_AN_ENUM

typedef struct { const char *name; int layer; int cls; const char *text; } tp_anomaly_info;
#define TP_AN_INFO(name, layer, cls, text) {#name, layer, cls, text},
static const tp_anomaly_info tp_anomaly_table[AN_COUNT] = { TP_ANOMALIES(TP_AN_INFO) };
#undef TP_AN_INFO

#endif
