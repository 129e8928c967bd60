# GTP: GTPv2-C (TS 29.274), GTPv1-C (TS 29.060), GTP-U (TS 29.281).
# Control messages become records, one per request/response transaction (or
# one per message); the user plane only adds to per-tunnel counters, flushed
# as data-usage records. Tunnels (TEID at an address) learned from F-TEIDs
# carry the subscriber to messages and user packets that do not name it.

cdef enum:
    PORT_GTPC = 1
    PORT_GTPU = 2
    PORT_GTP0 = 3
    GTP_FTEIDS = 16
    TCP_FLOWS = 4096         # directions of TCP connections carrying GTP-C, least recently used out
    TCP_WINDOW = 1 << 24     # less than this behind the flow: octets seen before; further, or ahead: a new start

cdef int64_t TCP_IDLE_NS = 600000000000    # a flow silent this long starts afresh (a new connection)



cdef struct GtpMsg:
    uint8_t version
    uint8_t type
    uint32_t seq
    uint32_t teid
    uint8_t has_teid
    int nfteid
    uint32_t fteid[GTP_FTEIDS]   # tunnel endpoints this message announces
    uint32_t fteid_ip[GTP_FTEIDS]
    uint32_t v1_teid_c           # GTPv1 gives TEIDs and GSN addresses in separate IEs
    uint32_t v1_teid_u
    uint8_t v1_has_c
    uint8_t v1_has_u
    int ngsn
    uint32_t gsn[2]


cdef uint16_t gtp_kind(int version, uint8_t t) noexcept nogil:
    if version == 2:
        if t == 32 or t == 33: return TP_K_SESSION_CREATE
        if t == 34 or t == 35: return TP_K_SESSION_MODIFY
        if t == 36 or t == 37: return TP_K_SESSION_DELETE
        if t == 95 or t == 96: return TP_K_BEARER_CREATE
        if t == 97 or t == 98: return TP_K_BEARER_UPDATE
        if t == 99 or t == 100: return TP_K_BEARER_DELETE
    else:
        if t == 16 or t == 17: return TP_K_PDP_CREATE
        if t == 18 or t == 19: return TP_K_PDP_UPDATE
        if t == 20 or t == 21: return TP_K_PDP_DELETE
    return TP_K_OTHER


cdef int gtp_role(int version, uint8_t t) noexcept nogil:
    """1 request, 2 response, 0 a message this decoder does not fold."""
    if version == 2:
        if t == 32 or t == 34 or t == 36 or t == 95 or t == 97 or t == 99 or t == 170 or t == 176:
            return 1
        if t == 33 or t == 35 or t == 37 or t == 96 or t == 98 or t == 100 or t == 171 or t == 177:
            return 2
    else:
        if t == 16 or t == 18 or t == 20 or t == 50:
            return 1
        if t == 17 or t == 19 or t == 21 or t == 51:
            return 2
    return 0


cdef void apn_labels(tp_record *r, const uint8_t *v, Py_ssize_t n) noexcept nogil:
    """APN network identifier: labels joined by dots, up to the operator identifier (mncXXX)."""
    cdef Py_ssize_t pos = 0, i
    cdef int k = 0
    cdef uint8_t ln
    if r.apn[0]:
        return
    while pos < n:
        ln = v[pos]
        pos += 1
        if ln == 0 or pos + ln > n:
            break
        if k and ln == 6 and v[pos] == 109 and v[pos + 1] == 110 and v[pos + 2] == 99 and \
                48 <= v[pos + 3] <= 57 and 48 <= v[pos + 4] <= 57 and 48 <= v[pos + 5] <= 57:
            break                                      # operator identifier "mncNNN.mccNNN.gprs" (TS 23.003 9.1.2)
        if k and k < TP_APN_LEN:
            r.apn[k] = 46
            k += 1
        for i in range(ln):
            if k < TP_APN_LEN:
                r.apn[k] = v[pos + i]
                k += 1
        pos += ln


cdef void uli_v2(tp_record *r, const uint8_t *v, Py_ssize_t n) noexcept nogil:
    """User Location Info: the first area code and the first cell identity, typed by the cell item."""
    cdef uint8_t flags, bit
    cdef Py_ssize_t pos = 1, size
    cdef int have_area = 0, have_cell = 0, have_plmn = 0
    cdef uint8_t area_type = 0
    if n < 1 or r.loc_type:
        return
    flags = v[0]
    for bit in range(8):
        if not (flags >> bit) & 1:
            continue
        size = 5 if bit == 3 or bit == 5 else (6 if bit >= 6 else 7)
        if pos + size > n:
            return
        if not have_plmn:
            plmn(r, v + pos)
            have_plmn = 1
        if bit <= 2 or bit == 5:                       # CGI, SAI, RAI, LAI: LAC
            if not have_area:
                r.lac_tac = be16(v + pos + 3)
                area_type = TP_LOC_RAI if bit == 2 else (TP_LOC_LAI if bit == 5 else (TP_LOC_CGI if bit == 0 else TP_LOC_SAI))
                have_area = 1
            if (bit == 0 or bit == 1) and not have_cell:
                r.cell = be16(v + pos + 5)
                r.loc_type = TP_LOC_CGI if bit == 0 else TP_LOC_SAI
                have_cell = 1
        elif bit == 3:                                 # TAI
            if not have_area:
                r.lac_tac = be16(v + pos + 3)
                area_type = TP_LOC_TAI
                have_area = 1
        elif bit == 4 and not have_cell:               # ECGI: 28-bit E-UTRAN cell identity
            r.cell = be32(v + pos + 3) & 0x0FFFFFFF
            r.loc_type = TP_LOC_ECGI
            have_cell = 1
        pos += size
    if not have_cell and have_area:
        r.loc_type = area_type


cdef inline void fteid_add(GtpMsg *g, uint32_t teid, uint32_t ip) noexcept nogil:
    if g.nfteid < GTP_FTEIDS and teid:
        g.fteid[g.nfteid] = teid
        g.fteid_ip[g.nfteid] = ip
        g.nfteid += 1


cdef int gtp2_ies(const uint8_t *p, Py_ssize_t n, tp_record *r, GtpMsg *g, int depth) noexcept nogil:
    cdef Py_ssize_t pos = 0, ln
    cdef const uint8_t *v
    cdef uint8_t t
    cdef uint32_t ip
    cdef int rc
    while n - pos >= 4:
        t = p[pos]
        ln = be16(p + pos + 1)
        v = p + pos + 4
        if ln > n - pos - 4:
            return AN_GTP_IE_MALFORMED
        if t == 87 and ln >= 5:                        # F-TEID
            ip = 0
            if (v[0] & 0x80) and ln >= 9:
                ip = be32(v + 5)
            elif (v[0] & 0x40) and ln >= 21:
                ip = fold6(v + 5)
            fteid_add(g, be32(v + 1), ip)
        elif t == 93 and depth == 0:                   # Bearer Context (grouped): counted, then its IEs
            if r.bearers < 255:
                r.bearers += 1
            rc = gtp2_ies(v, ln, r, g, 1)
            if rc:
                return rc
        elif t == 73 and ln >= 1:                      # EBI (8.8): the linked bearer's comes before the contexts
            if r.ebi == 0:
                r.ebi = v[0] & 0x0F
        elif t == 80 and ln >= 2:                      # Bearer QoS (8.15): ARP octet, then QCI
            if r.qci == 0:
                r.qci = v[1]
        elif depth == 0:
            if t == 1 and r.imsi == NO_DIGITS:
                r.imsi = tbcd(v, ln, -1)
            elif t == 2 and ln >= 1:
                r.cause = v[0]
            elif t == 76 and r.msisdn == NO_DIGITS:
                r.msisdn = tbcd(v, ln, -1)
            elif t == 75 and r.imei == NO_DIGITS:
                r.imei = tbcd(v, ln, -1)
            elif t == 86:
                uli_v2(r, v, ln)
            elif t == 83 and ln >= 3 and r.mcc == 0xFFFF:
                plmn(r, v)
            elif t == 82 and ln >= 1:
                r.rat = v[0]
            elif t == 71:
                apn_labels(r, v, ln)
        pos += 4 + ln
    return 0


cdef Py_ssize_t tv_len(uint8_t t) noexcept nogil:
    """Value length of a GTPv1 TV information element (TS 29.060 7.7), -1 if unknown."""
    if t == 1 or t == 8 or t == 11 or t == 13 or t == 14 or t == 15 or t == 19 or t == 20 or t == 21 \
            or t == 23 or t == 24 or t == 29:
        return 1
    if t == 25 or t == 26 or t == 27 or t == 28:
        return 2
    if t == 12:
        return 3
    if t == 126:
        return 1
    if t == 4 or t == 5 or t == 16 or t == 17 or t == 127:
        return 4
    if t == 18:
        return 5
    if t == 3:
        return 6
    if t == 2:
        return 8
    if t == 22:
        return 9
    if t == 9:
        return 28
    return -1


cdef int gtp1_ies(const Dec *d, const uint8_t *p, Py_ssize_t n, tp_record *r, GtpMsg *g) noexcept nogil:
    cdef Py_ssize_t pos = 0, ln
    cdef const uint8_t *v
    cdef uint8_t t
    while pos < n:
        t = p[pos]
        if t < 128:
            ln = tv_len(t)
            if ln < 0:
                return AN_GTP_IE_UNKNOWN_TV
            v = p + pos + 1
            if ln > n - pos - 1:
                return AN_GTP_IE_MALFORMED
            pos += 1 + ln
        else:
            if n - pos < 3:
                return AN_GTP_IE_MALFORMED
            ln = be16(p + pos + 1)
            v = p + pos + 3
            if ln > n - pos - 3:
                return AN_GTP_IE_MALFORMED
            pos += 3 + ln
        if t == 1:
            r.cause = v[0]
        elif t == 2 and r.imsi == NO_DIGITS:
            r.imsi = tbcd(v, 8, -1)
        elif t == 3 and not r.loc_type:                # RAI: PLMN, LAC, RAC
            plmn(r, v)
            r.lac_tac = be16(v + 3)
            r.loc_type = TP_LOC_RAI
        elif t == 16:
            g.v1_teid_u = be32(v)
            g.v1_has_u = 1
        elif t == 17:
            g.v1_teid_c = be32(v)
            g.v1_has_c = 1
        elif t == 20 and r.ebi == 0:                   # NSAPI; a Linked NSAPI (same IE) comes second
            r.ebi = v[0] & 0x0F
            r.bearers = 1                              # one PDP context per message
        elif t == 131:
            apn_labels(r, v, ln)
        elif t == 133 and g.ngsn < 2:                  # GSN address: control plane, then user plane
            g.gsn[g.ngsn] = be32(v) if ln == 4 else (fold6(v) if ln == 16 else 0)
            g.ngsn += 1
        elif t == 134 and ln >= 2 and r.msisdn == NO_DIGITS:   # MSISDN: nature-of-address octet first
            r.msisdn = tbcd(v + 1, ln - 1, -1)
            if ((v[0] >> 4) & 7) == 2:                 # national
                r.msisdn = with_country_code(d, r.msisdn)
        elif t == 151 and ln >= 1:
            r.rat = v[0]
        elif t == 152 and ln >= 8:                     # ULI: CGI, SAI or RAI
            if v[0] <= 2 and (not r.loc_type or r.loc_type == TP_LOC_RAI):
                plmn(r, v + 1)
                r.lac_tac = be16(v + 4)
                r.cell = be16(v + 6) if v[0] < 2 else 0
                r.loc_type = TP_LOC_CGI if v[0] == 0 else (TP_LOC_SAI if v[0] == 1 else TP_LOC_RAI)
        elif t == 154 and r.imei == NO_DIGITS:
            r.imei = tbcd(v, ln, -1)
    if g.v1_has_c and g.ngsn >= 1:
        fteid_add(g, g.v1_teid_c, g.gsn[0])
    if g.v1_has_u and g.ngsn >= 1:
        fteid_add(g, g.v1_teid_u, g.gsn[1] if g.ngsn > 1 else g.gsn[0])
    return 0


# ---- tunnels -------------------------------------------------------------

cdef void usage_emit(Dec *d, Tunnel *t) noexcept nogil:
    """The tunnel's counters as a data-usage record; they restart from zero."""
    cdef tp_record *r
    if t.packets == 0:
        return
    r = emit(d)
    if r == NULL:
        return
    r.ts_ns = d.pkt.ts_ns
    r.frame = <uint32_t>d.frame
    r.kind = TP_K_DATA_USAGE
    r.proto = TP_PROTO_GTPU
    r.op = 255
    r.imsi = t.imsi
    r.msisdn = t.msisdn
    r.imei = t.imei
    r.rat = t.rat
    memcpy(r.apn, t.apn, TP_APN_LEN)
    r.tid = t.teid
    r.dst = t.ip
    r.packets = t.packets
    r.octets = t.octets
    t.packets = 0
    t.octets = 0
    t.flushed_ns = d.pkt.ts_ns


cdef void tunnel_release(Dec *d, Tunnel *t) noexcept nogil:
    t.live = 0
    idx_del(&d.tun.idx, t.teid, t.ip)
    pool_give(&d.tun.pool, <int32_t>(t - d.tun.e))


cdef Tunnel *tunnel_get(Dec *d, uint32_t teid, uint32_t ip, int create) noexcept nogil:
    cdef Tunnels *x = &d.tun
    cdef int32_t i = idx_get(&x.idx, teid, ip)
    cdef Tunnel *t
    if i >= 0:
        pool_touch(&x.pool, i)
        return &x.e[i]
    if not create:
        return NULL
    i = pool_take(&x.pool)
    if i < 0:                                          # full: the least recently used goes
        t = &x.e[x.pool.head]
        anomaly(d, AN_GTPU_EVICTED, NULL)
        usage_emit(d, t)
        tunnel_release(d, t)
        i = pool_take(&x.pool)
    t = &x.e[i]
    memset(t, 0, sizeof(Tunnel))
    t.teid = teid
    t.ip = ip
    t.imsi = NO_DIGITS
    t.msisdn = NO_DIGITS
    t.imei = NO_DIGITS
    t.live = 1
    t.flushed_ns = d.pkt.ts_ns
    idx_put(&x.idx, teid, ip, i)
    return t


cdef void tunnels_sweep(Dec *d, int64_t now) noexcept nogil:
    """Every usage interval of capture time, report what idle tunnels counted since their last
    record, so a burst followed by silence is not held back. Tunnels are never forgotten for
    being idle (a session may be silent for hours); the table's size bounds them, least
    recently used first. A sweep that meets a full output resumes at the next packet."""
    cdef Tunnels *x = &d.tun
    cdef Tunnel *t
    cdef int64_t every = d.usage_interval_ns if d.usage_interval_ns > 1000000000 else 1000000000
    if x.sweep_pos == 0:
        if x.next_sweep_ns == 0:
            x.next_sweep_ns = now + every
        if now < x.next_sweep_ns:
            return
    while x.sweep_pos < x.pool.cap:
        if d.cap - d.nout <= MAX_PER_PACKET // 2:
            return
        t = &x.e[x.sweep_pos]
        x.sweep_pos += 1
        if t.live and t.packets and now - t.flushed_ns >= d.usage_interval_ns:
            usage_emit(d, t)
    x.sweep_pos = 0
    x.next_sweep_ns = now + every


cdef void tunnels_learn(Dec *d, const GtpMsg *g, const tp_record *r) noexcept nogil:
    """Every tunnel endpoint the message announces now belongs to the record's subscriber."""
    cdef int i
    cdef Tunnel *t
    if r.imsi == NO_DIGITS and r.msisdn == NO_DIGITS:
        return
    for i in range(g.nfteid):
        t = tunnel_get(d, g.fteid[i], g.fteid_ip[i], 1)
        t.imsi = r.imsi
        t.msisdn = r.msisdn
        if r.imei != NO_DIGITS:
            t.imei = r.imei
        if r.rat:
            t.rat = r.rat
        if r.apn[0]:
            memcpy(t.apn, r.apn, TP_APN_LEN)


# ---- messages ------------------------------------------------------------

cdef int gtp(Dec *d, uint8_t kind, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef uint8_t ver
    if kind == PORT_GTPU:
        return gtpu(d, p, n)
    d.layer_in[L_GTP] += 1
    if n < 1:
        return anomaly(d, AN_GTP_TRUNCATED, p)
    ver = p[0] >> 5
    if ver == 2 and kind == PORT_GTPC:
        return gtpv2(d, p, n, 0)
    if not (p[0] & 0x10):                              # protocol type 0: GTP'
        return anomaly(d, AN_GTP_PRIME, p)
    if ver == 1 and kind == PORT_GTPC:
        return gtpv1(d, p, n)
    if ver == 0:
        return anomaly(d, AN_GTP_V0, p)
    return anomaly(d, AN_GTP_MALFORMED, p)


# ---- GTP-C over TCP ------------------------------------------------------
#
# Each direction of a connection is a byte stream of messages back to back, framed by their
# length fields. Per direction, a bounded table keeps the next sequence number: a segment whose
# octets were all seen is a retransmission, decoded once (tshark dissects only the first copy).
# A message that runs past its segment is counted, not reassembled (tshark does not either);
# the rest of it is stepped over in the next segment so the messages after it still decode.
# Octets that start no GTPv1/v2-C message are counted and the segment left; a gap (a lost
# segment) or a SYN starts the flow afresh from the next segment's first octet.

cdef inline Py_ssize_t gtpc_length(const uint8_t *h) noexcept nogil:
    """Length of the GTP-C message whose first four octets h holds; -1 when it cannot be framed."""
    if h[0] >> 5 == 2:
        return 4 + be16(h + 2)
    if h[0] >> 5 == 1 and h[0] & 0x10:
        return 8 + be16(h + 2)
    return -1


cdef TcpFlow *tcp_flow(Dec *d) noexcept nogil:
    """This packet's direction of its connection (a new entry has seen == 0)."""
    cdef TcpFlows *x = &d.tcp
    cdef uint64_t addrs = (<uint64_t>d.pkt.ip_src << 32) | d.pkt.ip_dst
    cdef uint32_t ports = (<uint32_t>d.pkt.sport << 16) | d.pkt.dport
    cdef int32_t i = idx_get(&x.idx, addrs, ports)
    cdef TcpFlow *f
    if i >= 0:
        pool_touch(&x.pool, i)
        return &x.e[i]
    i = pool_take(&x.pool)
    if i < 0:                                          # full: the least recently used goes
        f = &x.e[x.pool.head]
        anomaly(d, AN_GTP_TCP_EVICTED, NULL)
        idx_del(&x.idx, f.addrs, f.ports)
        pool_give(&x.pool, x.pool.head)
        i = pool_take(&x.pool)
    f = &x.e[i]
    memset(f, 0, sizeof(TcpFlow))
    f.addrs = addrs
    f.ports = ports
    idx_put(&x.idx, addrs, ports, i)
    return f


cdef int gtp_tcp(Dec *d, uint8_t flags, uint32_t seq, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef TcpFlow *f = tcp_flow(d)
    cdef Py_ssize_t pos = 0, total, take
    cdef uint32_t behind
    if flags & 0x02:                                   # SYN: its data starts after the SYN's own number
        seq += 1
    behind = f.next_seq - seq
    if not f.seen or flags & 0x02 or d.pkt.ts_ns - f.last_ns > TCP_IDLE_NS or behind >= TCP_WINDOW:
        f.skip = 0                                     # new, idle, or a gap: start at this segment
        f.nhead = 0
    elif behind >= <uint64_t>n:
        f.last_ns = d.pkt.ts_ns
        d.layer_in[L_GTP] += 1
        return anomaly(d, AN_GTP_TCP_RETRANSMISSION, p)
    else:
        pos = behind                                   # in order, or a retransmission with new octets
    f.seen = 1
    f.last_ns = d.pkt.ts_ns
    f.next_seq = seq + <uint32_t>n
    if f.nhead or f.skip:                              # the rest of a split message
        while f.nhead and f.nhead < 4 and pos < n:
            f.head[f.nhead] = p[pos]
            f.nhead += 1
            pos += 1
        if f.nhead == 4:
            total = gtpc_length(f.head)
            f.skip = <uint32_t>(total - 4) if total > 4 else 0
            f.nhead = 0
        take = f.skip if f.skip < n - pos else n - pos
        f.skip -= <uint32_t>take
        pos += take
        d.layer_in[L_GTP] += 1
        anomaly(d, AN_GTP_TCP_REST, p)
    while pos < n:
        total = gtpc_length(p + pos) if n - pos >= 4 else 0
        if total < 0:                                  # no GTPv1/v2-C header here: lost the framing
            d.layer_in[L_GTP] += 1
            return anomaly(d, AN_GTP_TCP_UNFRAMED, p + pos)
        if total < 8 and n - pos >= 4:                 # a header too short for itself: the rest is one message
            return gtp(d, PORT_GTPC, p + pos, n - pos)
        if n - pos < total or n - pos < 4:
            d.layer_in[L_GTP] += 1
            if n - pos < 4:
                f.nhead = <uint8_t>(n - pos)
                memcpy(f.head, p + pos, n - pos)
            else:
                f.skip = <uint32_t>(total - (n - pos))
            return anomaly(d, AN_GTP_TCP_SPLIT, p + pos)
        gtp(d, PORT_GTPC, p + pos, total)
        pos += total
    return 0


cdef int gtp_record(Dec *d, GtpMsg *g, tp_record *r, int role) noexcept nogil:
    """Identity from the tunnel the header names, then per-message output or the transaction."""
    cdef Tunnel *t
    cdef Dlg *e
    cdef tp_record *o
    cdef uint64_t lo = d.pkt.ip_src, hi = d.pkt.ip_dst, key
    if r.imsi == NO_DIGITS and g.has_teid and g.teid:
        t = tunnel_get(d, g.teid, d.pkt.ip_dst, 0)
        if t != NULL:
            r.imsi = t.imsi
            if r.msisdn == NO_DIGITS:
                r.msisdn = t.msisdn
            if r.imei == NO_DIGITS:
                r.imei = t.imei
    if role == 2 and r.cause >= (64 if g.version == 2 else 192):
        r.flags |= TP_F_ERROR
    if lo > hi:
        lo, hi = hi, lo
    key = (<uint64_t>1 << 40) | (<uint64_t>g.version << 36) | g.seq
    if role == 1:
        tunnels_learn(d, g, r)
        e = dlg_find(&d.dlg, key, (lo << 32) | hi)
        if e != NULL:                                  # retransmission: the newer request counts
            dlg_release(&d.dlg, e)
        e = dlg_new(d, key, (lo << 32) | hi)
        fold(e, r, 1, NO_DIGITS, NO_DIGITS)
        e.rec.tid = g.seq
        e.rec.src = d.pkt.ip_src
        e.rec.dst = d.pkt.ip_dst
        e.rec.frame = r.frame
        e.rec.ts_ns = r.ts_ns
        e.rec.proto = r.proto
    elif role == 2:
        e = dlg_find(&d.dlg, key, (lo << 32) | hi)
        if e != NULL:
            fold(e, r, 0, NO_DIGITS, NO_DIGITS)
            e.rec.frame = r.frame
            e.rec.ts_ns = r.ts_ns
            tunnels_learn(d, g, &e.rec)
            dlg_emit(d, e, 0)
            dlg_release(&d.dlg, e)
        else:
            anomaly(d, AN_GTP_UNMATCHED, NULL)
            tunnels_learn(d, g, r)
            if not d.messages:
                o = emit(d)
                if o != NULL:
                    memcpy(o, r, sizeof(tp_record))
    if d.messages:
        o = emit(d)
        if o != NULL:
            memcpy(o, r, sizeof(tp_record))
    return 0


cdef inline void gtp_template(Dec *d, tp_record *r, uint8_t proto, uint8_t t, uint32_t seq, int version) noexcept nogil:
    memcpy(r, &d.tmpl, sizeof(tp_record))
    r.ts_ns = d.pkt.ts_ns
    r.frame = <uint32_t>d.frame
    r.proto = proto
    r.op = t
    r.kind = gtp_kind(version, t)
    r.tid = seq
    r.src = d.pkt.ip_src
    r.dst = d.pkt.ip_dst


cdef int gtpv2(Dec *d, const uint8_t *p, Py_ssize_t n, int piggybacked) noexcept nogil:
    cdef GtpMsg g
    cdef tp_record r
    cdef Py_ssize_t total, hdr
    cdef int role, rc
    if n < 8:
        return anomaly(d, AN_GTP_TRUNCATED, p)
    total = 4 + be16(p + 2)
    if p[1] <= 3:                                      # echo, version not supported: whatever their length
        anomaly(d, AN_GTP_ECHO, p)
        if (p[0] & 0x10) and not piggybacked and 8 <= total and n - total >= 8:
            return gtpv2(d, p + total, n - total, 1)
        return 0
    hdr = 12 if p[0] & 0x08 else 8
    if total < hdr:
        return anomaly(d, AN_GTP_MALFORMED, p)
    if total > n:
        return anomaly(d, AN_GTP_TRUNCATED, p)
    memset(&g, 0, sizeof(GtpMsg))
    g.version = 2
    g.type = p[1]
    g.has_teid = (p[0] & 0x08) != 0
    if g.has_teid:
        g.teid = be32(p + 4)
    g.seq = be24(p + hdr - 4)
    role = gtp_role(2, g.type)
    gtp_template(d, &r, TP_PROTO_GTPV2C, g.type, g.seq, 2)
    r.flags = TP_F_REQUEST if role == 1 else (TP_F_RESPONSE if role == 2 else 0)
    rc = gtp2_ies(p + hdr, total - hdr, &r, &g, 0)
    if rc:
        anomaly(d, rc, p)
        r.flags |= TP_F_PARTIAL
    if role == 0:
        anomaly(d, AN_GTP_OTHER_MESSAGE, p)
    else:
        d.layer_ok[L_GTP] += 1
        gtp_record(d, &g, &r, role)
    if (p[0] & 0x10) and not piggybacked and n - total >= 8:   # piggybacked message follows
        return gtpv2(d, p + total, n - total, 1)
    return 0


cdef int gtpv1(Dec *d, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef GtpMsg g
    cdef tp_record r
    cdef Py_ssize_t total, hdr = 8
    cdef int role, rc
    if n < 8:
        return anomaly(d, AN_GTP_TRUNCATED, p)
    total = 8 + be16(p + 2)
    if total > n:
        return anomaly(d, AN_GTP_TRUNCATED, p)
    if p[0] & 0x07:
        hdr = 12
        if (p[0] & 0x04) and gtp_ext_headers(p, total, &hdr):
            return anomaly(d, AN_GTP_MALFORMED, p)
    if total < hdr:
        return anomaly(d, AN_GTP_MALFORMED, p)
    memset(&g, 0, sizeof(GtpMsg))
    g.version = 1
    g.type = p[1]
    g.teid = be32(p + 4)
    g.has_teid = 1
    g.seq = be16(p + 8) if p[0] & 0x02 else 0
    if g.type <= 3:
        return anomaly(d, AN_GTP_ECHO, p)
    role = gtp_role(1, g.type)
    if role == 0:
        return anomaly(d, AN_GTP_OTHER_MESSAGE, p)
    gtp_template(d, &r, TP_PROTO_GTPV1C, g.type, g.seq, 1)
    r.flags = TP_F_REQUEST if role == 1 else TP_F_RESPONSE
    rc = gtp1_ies(d, p + hdr, total - hdr, &r, &g)
    if rc:
        anomaly(d, rc, p)
        r.flags |= TP_F_PARTIAL
    d.layer_ok[L_GTP] += 1
    return gtp_record(d, &g, &r, role)


cdef int gtp_ext_headers(const uint8_t *p, Py_ssize_t n, Py_ssize_t *hdr) noexcept nogil:
    """Step over GTPv1 extension headers (length in 4-octet units, next type last)."""
    cdef uint8_t nxt
    cdef Py_ssize_t h = 12, ln
    cdef int hops = 0
    if n < 12:
        return 1
    nxt = p[11]
    while nxt:
        if h >= n or hops == 16:
            return 1
        ln = p[h] * 4
        if ln == 0 or h + ln > n:
            return 1
        nxt = p[h + ln - 1]
        h += ln
        hops += 1
    hdr[0] = h
    return 0


cdef int gtpu(Dec *d, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t total, hdr = 8
    cdef Tunnel *t
    d.layer_in[L_GTPU] += 1
    if n < 8:
        return anomaly(d, AN_GTPU_TRUNCATED, p)
    if (p[0] >> 5) != 1 or not (p[0] & 0x10):
        return anomaly(d, AN_GTPU_MALFORMED, p)
    total = 8 + be16(p + 2)
    if p[0] & 0x07:
        if n < 12:
            return anomaly(d, AN_GTPU_TRUNCATED, p)
        hdr = 12
        if (p[0] & 0x04) and gtp_ext_headers(p, total if total < n else n, &hdr):
            return anomaly(d, AN_GTPU_MALFORMED, p)
    if total < hdr:
        return anomaly(d, AN_GTPU_MALFORMED, p)
    if p[1] != 255:
        return anomaly(d, AN_GTPU_SIGNALLING, p)
    d.layer_ok[L_GTPU] += 1
    t = tunnel_get(d, be32(p + 4), d.pkt.ip_dst, 0)
    if t == NULL:
        anomaly(d, AN_GTPU_UNKNOWN_TEID, p)
        t = tunnel_get(d, be32(p + 4), d.pkt.ip_dst, 1)
    t.packets += 1
    t.octets += <uint64_t>(total - hdr)
    if d.pkt.ts_ns - t.flushed_ns >= d.usage_interval_ns:
        usage_emit(d, t)
    return 0
