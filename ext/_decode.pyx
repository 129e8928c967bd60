# cython: language_level=3
"""probe._decode: capture bytes in, fixed-size records out.

One compiled unit; each layer lives in its own .pxi, included below so calls
inline across layers. No Python object is touched per packet: the hot loop
runs over a whole buffer of capture records per call and writes straight
into a numpy record array. Failures are status codes, counted per anomaly
with the frame and byte offset where they happened.
"""
from libc.stdint cimport int8_t, uint8_t, uint16_t, uint32_t, uint64_t, int64_t, int32_t
from libc.string cimport memset, memcpy
from libc.stdlib cimport malloc, calloc, free

import numpy as np
cimport numpy as cnp
cnp.import_array()

include "defs.pxi"

cdef enum:
    MAX_IFACES = 64
    RECENT = 64              # ring of recent anomalies kept for --stats
    MAX_PER_PACKET = 256     # room kept free in the output before each packet
    MTP3_ITU = 0
    MTP3_ANSI = 1
    MTP3_JAPAN = 2


cdef struct Iface:
    uint16_t linktype
    uint32_t snaplen
    int64_t ts_mul           # raw timestamp units to ns: multiply ...
    int64_t ts_div           # ... or divide
    int ts_shift             # ... or binary fraction 2^-n
    int64_t ts_off_ns


cdef struct Recent:
    uint64_t frame
    uint32_t code
    uint32_t offset          # byte offset in the packet


cdef struct Addr:           # SCCP party address
    uint64_t gt              # packed digits, NO_DIGITS when absent
    uint32_t pc
    uint8_t has_pc
    uint8_t ssn
    uint8_t gti
    uint8_t tt


cdef struct Pkt:            # what the layers learned about the current packet
    const uint8_t *base
    int64_t ts_ns
    uint32_t ip_src
    uint32_t ip_dst
    uint16_t sport
    uint16_t dport
    uint32_t opc
    uint32_t dpc
    uint8_t si
    Addr called
    Addr calling


# Bounded state: every table has a size cap, a time-out on capture time, and
# counters for what it evicts.
cdef enum:
    FRAG_SLOTS = 32
    FRAG_MAX = 65536
    SCTP_SLOTS = 64
    SCTP_MAX = 65536
    SEG_SLOTS = 32
    SEG_MAX = 8192
    DLG_INVOKES = 8

cdef struct Frag:            # one IPv4 datagram being reassembled
    uint32_t src
    uint32_t dst
    uint16_t id
    uint8_t proto
    uint8_t used
    int64_t first_ns
    int32_t total            # -1 until the last fragment arrives
    int32_t got
    uint8_t *buf

cdef struct SctpPart:        # one SCTP user message being reassembled
    uint32_t src
    uint32_t dst
    uint16_t sport
    uint16_t dport
    uint16_t sid
    uint8_t used
    uint32_t ppid
    uint32_t next_tsn
    int64_t first_ns
    int32_t len
    uint8_t *buf

cdef struct SccpSeg:         # one segmented XUDT message being reassembled
    uint64_t key
    uint32_t ref
    uint8_t used
    uint8_t remaining
    int64_t first_ns
    int32_t len
    uint8_t *buf

cdef struct Slot:            # one index slot: the key and entry + 1 (0 = empty)
    uint64_t k1
    uint64_t k2
    int32_t v

cdef struct Index:
    Slot *s
    uint32_t mask

cdef struct Pool:            # entries in age order, oldest first, and the free ones
    int32_t cap
    int32_t nfree
    int32_t head
    int32_t tail
    int32_t live
    int32_t *prev
    int32_t *next
    int32_t *free

cdef struct Dlg:             # one TCAP dialogue
    uint64_t ka_tid          # initiator's transaction id and address
    uint64_t ka_addr
    uint64_t kb_tid          # responder's, once its first continue is seen
    uint64_t kb_addr
    uint8_t has_b
    uint8_t has_op
    uint8_t ninv
    uint8_t fb_set
    int64_t start_ns
    int64_t answer_ns        # a call: when it was answered (0: not yet)
    uint8_t inv_id[DLG_INVOKES]
    uint16_t inv_op[DLG_INVOKES]
    uint64_t fb_sender       # GTs of the first invoke's sender and receiver
    uint64_t fb_receiver
    tp_record rec

cdef struct Dialogues:
    Index idx
    Pool pool
    Dlg *e

cdef struct Assoc:           # TSNs recently seen on one SCTP association direction
    uint32_t vtag
    uint64_t ports
    uint32_t top             # highest TSN seen
    uint64_t seen[4]         # bit k: TSN top - k seen

cdef struct Assocs:
    Index idx
    Pool pool
    Assoc *e

cdef struct Tunnel:          # one GTP tunnel endpoint (TEID at an address) and its subscriber
    uint32_t teid
    uint32_t ip
    uint64_t imsi
    uint64_t msisdn
    uint64_t imei
    int64_t flushed_ns
    uint32_t packets         # user plane counted since the last data-usage record
    uint64_t octets
    uint8_t rat
    uint8_t live
    char apn[TP_APN_LEN]

cdef struct TcpFlow:         # one direction of a TCP connection on a GTP-C port
    uint64_t addrs
    uint32_t ports
    uint32_t next_seq        # the sequence number after the last octet seen
    uint32_t skip            # octets of a message split across segments still to come
    uint8_t nhead            # octets of that message's first four kept (its length is in them)
    uint8_t head[4]
    uint8_t seen             # 0 until the first segment
    int64_t last_ns

cdef struct TcpFlows:
    Index idx
    Pool pool
    TcpFlow *e

cdef struct Tunnels:
    Index idx
    Pool pool
    Tunnel *e
    int64_t next_sweep_ns    # capture time of the next sweep of idle counters
    int32_t sweep_pos        # where a sweep interrupted by a full output resumes


cdef struct Dec:
    # options
    int messages             # one record per component instead of per dialogue
    int mtp3                 # MTP3_ITU / MTP3_ANSI / MTP3_JAPAN
    int64_t dlg_timeout_ns
    int64_t call_timeout_ns  # an answered call lives this long after its answer
    uint8_t map_ssn[256]     # SSNs whose TCAP users are MAP when no application context says
    uint8_t cap_ssn[256]     # ... and CAP
    uint8_t gtp_port[65536]  # PORT_GTPC / PORT_GTPU / PORT_GTP0 by UDP port; over TCP only GTP-C
    int64_t usage_interval_ns
    uint16_t probe_id
    uint64_t cc              # --country-code: its digits in the top nibbles, zeros below
    int cc_len               # its digit count; 0: numbers kept as signalled
    # capture file state
    int fmt                  # 0 unknown, 1 pcap, 2 pcapng
    int swap
    int nsec
    uint16_t linktype
    uint32_t snaplen
    Iface ifaces[MAX_IFACES]
    int nifaces
    uint64_t file_off
    uint64_t frame
    uint64_t bytes
    int fatal                # anomaly code that stopped the file, 0 if none
    uint64_t fatal_off
    int64_t last_ts
    # output
    tp_record *out
    Py_ssize_t nout
    Py_ssize_t cap
    tp_record tmpl
    Pkt pkt
    # counters
    uint64_t layer_in[L_COUNT]
    uint64_t layer_ok[L_COUNT]
    uint64_t anomalies[AN_COUNT]
    Recent recent[RECENT]
    uint64_t nrecent
    uint64_t records
    # bounded state
    Frag frags[FRAG_SLOTS]
    SctpPart sctp[SCTP_SLOTS]
    SccpSeg segs[SEG_SLOTS]
    Dialogues dlg
    Tunnels tun
    Assocs assoc
    TcpFlows tcp


cdef inline int anomaly(Dec *d, int code, const uint8_t *at) noexcept nogil:
    cdef Recent *r
    d.anomalies[code] += 1
    r = &d.recent[d.nrecent % RECENT]
    d.nrecent += 1
    r.frame = d.frame
    r.code = code
    r.offset = <uint32_t>(at - d.pkt.base) if at != NULL and d.pkt.base != NULL and at >= d.pkt.base else 0
    return code


cdef inline tp_record *emit(Dec *d) noexcept nogil:
    """Next free output record, initialised from the template; NULL when full."""
    cdef tp_record *r
    if d.nout >= d.cap:
        anomaly(d, AN_TCAP_TOO_MANY, NULL)
        return NULL
    r = &d.out[d.nout]
    d.nout += 1
    d.records += 1
    memcpy(r, &d.tmpl, sizeof(tp_record))
    return r


include "cursor.pxi"
include "table.pxi"
include "capture.pxi"
include "link.pxi"
include "ip.pxi"
include "sctp.pxi"
include "sigtran.pxi"
include "sccp.pxi"
include "map.pxi"
include "gtp.pxi"
include "cap.pxi"
include "isup.pxi"
include "tcap.pxi"
include "decoder.pxi"
