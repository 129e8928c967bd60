# TCAP (Q.773): Begin / Continue / End / Abort / Unidirectional, the dialogue
# portion (application context -> MAP version; MAP-OpenInfo references), every
# component; and the bounded transaction table that folds a dialogue into one
# record (or, in per-message mode, keeps invoke ids for the results).

cdef enum:
    T_UNI = 0x61
    T_BEGIN = 0x62
    T_END = 0x64
    T_CONTINUE = 0x65
    T_ABORT = 0x67


cdef struct Msg:
    uint32_t type
    uint64_t otid            # (length << 32) | value; 0 when absent
    uint64_t dtid
    uint8_t proto            # TCAP user by application context: MAP, CAP, 0 none, 255 other
    uint8_t version          # MAP version or CAP phase from the application context, 0 if none
    uint8_t ac_x             # MAP application context family (networkLocUp 1, ...)
    uint64_t dest_ref
    uint64_t orig_ref
    bint orig_national       # orig_ref's type of number is national
    Tlv comps
    int has_comps


cdef struct Comp:
    uint32_t type
    int invoke_id
    int op
    int err
    Tlv prm
    int has_prm


cdef inline uint64_t tid_of(const Tlv *t) noexcept nogil:
    cdef uint64_t v = 0
    cdef Py_ssize_t i
    if t.len < 1 or t.len > 4:
        return 0
    for i in range(t.len):
        v = (v << 8) | t.v[i]
    return (<uint64_t>t.len << 32) | v


cdef inline int ber_int(const Tlv *t) noexcept nogil:
    cdef int v
    cdef Py_ssize_t i
    if t.len < 1 or t.len > 4:
        return -1
    v = <int8_t>t.v[0]
    for i in range(1, t.len):
        v = (v << 8) | t.v[i]
    return v


cdef int first_child(const Tlv *parent, uint32_t tag, Tlv *out) noexcept nogil:
    """The first child of parent with tag: 0 found, -1 absent, else an anomaly code."""
    cdef Cur c = inner(parent)
    cdef int rc
    while c.p < c.end:
        rc = ber_read(&c, out, 0)
        if rc:
            return rc
        if out.tag == tag:
            return 0
    return -1


cdef int map_open(const Tlv *ui, Msg *m) noexcept nogil:
    """user-information: EXTERNAL { OID, [0] MAP-DialoguePDU | [1] octets } -> map-open references."""
    cdef Tlv ext, enc, pdu, t
    cdef Cur c
    cdef int rc
    rc = first_child(ui, 0x28, &ext)
    if rc:
        return rc if rc > 0 else 0
    c = inner(&ext)
    while c.p < c.end:
        rc = ber_read(&c, &enc, 0)
        if rc:
            return rc
        if enc.tag == 0xA0 or enc.tag == 0x81:
            break
    else:
        return 0
    c = inner(&enc)
    rc = ber_read(&c, &pdu, 0)
    if rc:
        return rc
    if pdu.tag != 0xA0:                                # map-open
        return 0
    c = inner(&pdu)
    while c.p < c.end:
        rc = ber_read(&c, &t, 0)
        if rc:
            return rc
        if t.tag == 0x80:
            m.dest_ref = address_digits(&t)
        elif t.tag == 0x81:
            m.orig_ref = address_digits(&t)
            m.orig_national = ton_national(&t)
    return 0


cdef int dialogue_portion(const Tlv *dp, Msg *m) noexcept nogil:
    cdef Tlv ext, single, pdu, t, oid
    cdef Cur c
    cdef int rc
    rc = first_child(dp, 0x28, &ext)
    if rc:
        return rc if rc > 0 else 0
    rc = first_child(&ext, 0xA0, &single)
    if rc:
        return rc if rc > 0 else 0
    c = inner(&single)
    rc = ber_read(&c, &pdu, 0)
    if rc:
        return rc
    if pdu.tag != 0x60 and pdu.tag != 0x61:            # AARQ / AARE (ABRT carries nothing we need)
        return 0
    c = inner(&pdu)
    while c.p < c.end:
        rc = ber_read(&c, &t, 0)
        if rc:
            return rc
        if t.tag == 0xA1:                              # application-context-name
            rc = first_child(&t, 0x06, &oid)
            if rc > 0:
                return rc
            if rc == 0:
                m.proto = 255
                if oid.len == 7 and oid.v[0] == 4 and oid.v[1] == 0 and oid.v[2] == 0 and oid.v[3] == 1:
                    if oid.v[4] == 0 and oid.v[5] < 50:                      # {0 4 0 0 1 0 X v}: MAP
                        m.proto = TP_PROTO_MAP
                        m.ac_x = oid.v[5]
                        m.version = oid.v[6]
                    elif oid.v[4] == 0 and oid.v[5] <= 52:                   # CAP phase 1 {.. 50 0}, 2 {.. 50 1}
                        m.proto = TP_PROTO_CAP
                        m.version = 1 if oid.v[6] == 0 else 2
                    elif oid.v[4] == 21 or oid.v[4] == 22:                   # CAP phase 3, 4 {.. 21|22 3 x}
                        m.proto = TP_PROTO_CAP
                        m.version = oid.v[4] - 18
        elif t.tag == 0xBE:
            rc = map_open(&t, m)
            if rc:
                return rc
    return 0


cdef int component(const Tlv *ct, Comp *k) noexcept nogil:
    cdef Cur c = inner(ct), c2
    cdef Tlv t
    cdef int rc, i = 0
    k.type = ct.tag
    k.invoke_id = -1
    k.op = -1
    k.err = -1
    k.has_prm = 0
    if ct.tag == 0xA1:                                 # invoke: id, [linked id], opcode, parameter
        while c.p < c.end:
            rc = ber_read(&c, &t, 0)
            if rc:
                return rc
            if i == 0:
                if t.tag != 0x02:
                    return AN_TCAP_BAD_COMPONENT
                k.invoke_id = ber_int(&t)
            elif t.tag == 0x80 and i == 1:
                continue
            elif k.op < 0:
                if t.tag == 0x06:
                    return AN_MAP_GLOBAL_OP
                if t.tag != 0x02:
                    return AN_TCAP_BAD_COMPONENT
                k.op = ber_int(&t)
            else:
                k.prm = t
                k.has_prm = 1
                break
            i += 1
        return 0 if k.op >= 0 else AN_TCAP_BAD_COMPONENT
    if ct.tag == 0xA2 or ct.tag == 0xA7:               # returnResult(Not)Last: id, [SEQ { opcode, parameter }]
        rc = ber_read(&c, &t, 0)
        if rc or t.tag != 0x02:
            return rc if rc else AN_TCAP_BAD_COMPONENT
        k.invoke_id = ber_int(&t)
        if c.p < c.end:
            rc = ber_read(&c, &t, 0)
            if rc:
                return rc
            if t.tag == 0x30:
                c2 = inner(&t)
                if c2.p < c2.end:
                    rc = ber_read(&c2, &t, 0)
                    if rc:
                        return rc
                    if t.tag == 0x06:
                        return AN_MAP_GLOBAL_OP
                    if t.tag == 0x02:
                        k.op = ber_int(&t)
                    if c2.p < c2.end:
                        rc = ber_read(&c2, &k.prm, 0)
                        if rc:
                            return rc
                        k.has_prm = 1
        return 0
    if ct.tag == 0xA3:                                 # returnError: id, error code, [parameter]
        rc = ber_read(&c, &t, 0)
        if rc or t.tag != 0x02:
            return rc if rc else AN_TCAP_BAD_COMPONENT
        k.invoke_id = ber_int(&t)
        rc = ber_read(&c, &t, 0)
        if rc:
            return rc
        k.err = ber_int(&t) if t.tag == 0x02 else 0
        return 0
    if ct.tag == 0xA4:                                 # reject: id or NULL, problem
        rc = ber_read(&c, &t, 0)
        if rc:
            return rc
        if t.tag == 0x02:
            k.invoke_id = ber_int(&t)
        return 0
    return AN_TCAP_BAD_COMPONENT


# ---- transaction table ---------------------------------------------------

cdef inline Dlg *dlg_find(Dialogues *t, uint64_t tid, uint64_t addr) noexcept nogil:
    cdef int32_t e
    if tid == 0:
        return NULL
    e = idx_get(&t.idx, tid, addr)
    return NULL if e < 0 else &t.e[e]


cdef inline void dlg_key_b(Dialogues *t, Dlg *e, uint64_t tid, uint64_t addr) noexcept nogil:
    e.kb_tid = tid
    e.kb_addr = addr
    e.has_b = 1
    idx_put(&t.idx, tid, addr, <int32_t>(e - t.e))


cdef void dlg_release(Dialogues *t, Dlg *e) noexcept nogil:
    idx_del(&t.idx, e.ka_tid, e.ka_addr)
    if e.has_b:
        idx_del(&t.idx, e.kb_tid, e.kb_addr)
    pool_give(&t.pool, <int32_t>(e - t.e))


cdef void dlg_emit(Dec *d, Dlg *e, uint8_t flags) noexcept nogil:
    """The dialogue's record, completed, to the output (dialogue mode only)."""
    cdef tp_record *r
    cdef int side
    cdef int64_t talk
    if d.messages:
        return
    r = emit(d)
    if r == NULL:
        return
    memcpy(r, &e.rec, sizeof(tp_record))
    r.flags |= flags
    if e.answer_ns and not flags & TP_F_TIMEOUT and r.ts_ns > e.answer_ns:
        talk = (r.ts_ns - e.answer_ns) // 1000000
        r.duration_ms = <uint32_t>talk if talk < <int64_t>0xFFFFFFFF else <uint32_t>0xFFFFFFFF
    if (r.flags & TP_F_REQUEST) and (r.flags & TP_F_RESPONSE):
        r.flags |= TP_F_CORRELATED
    if r.node == NO_DIGITS and r.proto == TP_PROTO_MAP:
        side = node_side(r.op, r.kind) if e.has_op else SIDE_NONE
        if side == SIDE_SENDER:
            r.node = e.fb_sender
        elif side == SIDE_RECEIVER:
            r.node = e.fb_receiver


cdef inline int timeout_anomaly(const Dlg *e) noexcept nogil:
    if e.rec.proto == TP_PROTO_ISUP:
        return AN_ISUP_TIMEOUT
    return AN_TCAP_TIMEOUT if e.rec.proto <= TP_PROTO_CAP else AN_GTP_TIMEOUT


cdef inline int evicted_anomaly(const Dlg *e) noexcept nogil:
    if e.rec.proto == TP_PROTO_ISUP:
        return AN_ISUP_EVICTED
    return AN_TCAP_EVICTED if e.rec.proto <= TP_PROTO_CAP else AN_GTP_EVICTED


cdef Dlg *dlg_new(Dec *d, uint64_t tid, uint64_t addr) noexcept nogil:
    cdef Dialogues *t = &d.dlg
    cdef int32_t i = pool_take(&t.pool)
    cdef Dlg *e
    if i < 0:                                          # full: the oldest goes out as timed out
        e = &t.e[t.pool.head]
        anomaly(d, evicted_anomaly(e), NULL)
        dlg_emit(d, e, TP_F_TIMEOUT)
        dlg_release(t, e)
        i = pool_take(&t.pool)
    e = &t.e[i]
    memset(e, 0, sizeof(Dlg))
    memcpy(&e.rec, &d.tmpl, sizeof(tp_record))
    e.ka_tid = tid
    e.ka_addr = addr
    e.start_ns = d.pkt.ts_ns
    e.fb_sender = NO_DIGITS
    e.fb_receiver = NO_DIGITS
    idx_put(&t.idx, tid, addr, i)
    return e


cdef void dialogue_expire(Dec *d, int64_t now) noexcept nogil:
    cdef Dialogues *t = &d.dlg
    cdef Dlg *e
    while t.pool.head >= 0 and d.cap - d.nout > MAX_PER_PACKET // 2:
        e = &t.e[t.pool.head]
        if now - e.start_ns <= d.dlg_timeout_ns:
            break
        if e.answer_ns and now - e.answer_ns <= d.call_timeout_ns:    # a call in progress: look again later
            e.start_ns = now
            pool_touch(&t.pool, <int32_t>(e - t.e))
            continue
        anomaly(d, timeout_anomaly(e), NULL)
        dlg_emit(d, e, TP_F_TIMEOUT)
        dlg_release(t, e)


# ---- messages ------------------------------------------------------------

cdef void fold(Dlg *e, const tp_record *r, int is_invoke, uint64_t sender, uint64_t receiver) noexcept nogil:
    """Merge one component's record into its dialogue: the first value of each field wins."""
    cdef tp_record *x = &e.rec
    if r.op != 0xFFFF and (e.has_op == 0 or (e.has_op == 1 and is_invoke)):
        x.op = r.op
        x.kind = r.kind
        e.has_op = 2 if is_invoke else 1
    if not e.fb_set and r.op != 0xFFFF:
        e.fb_sender = sender
        e.fb_receiver = receiver
        e.fb_set = 1
    x.flags |= r.flags
    if r.cause and (x.cause == 0 or not is_invoke):   # the answer's cause wins
        x.cause = r.cause
    if x.imsi == NO_DIGITS:
        x.imsi = r.imsi
    if x.msisdn == NO_DIGITS:
        x.msisdn = r.msisdn
    if x.imei == NO_DIGITS:
        x.imei = r.imei
    if x.peer == NO_DIGITS and x.peer_alpha[0] == 0:
        x.peer = r.peer
        memcpy(x.peer_alpha, r.peer_alpha, TP_ALPHA_LEN)
    if x.node == NO_DIGITS:
        x.node = r.node
    if x.ss_code == 0:
        x.ss_code = r.ss_code
    if x.rat == 0:
        x.rat = r.rat
    if x.apn[0] == 0:
        memcpy(x.apn, r.apn, TP_APN_LEN)
    if x.service_key == 0:
        x.service_key = r.service_key
    if x.event == 0:
        x.event = r.event
    if x.nai == 0:
        x.nai = r.nai
    if x.octets == 0:
        x.octets = r.octets
    if x.bearers < r.bearers:                          # GTP: request and response list the same bearers
        x.bearers = r.bearers
    if x.ebi == 0:
        x.ebi = r.ebi
    if x.qci == 0:
        x.qci = r.qci
    if x.subject_hash == 0 and x.mms_class == 0:       # one MMS notification's
        x.subject_hash = r.subject_hash
        x.mms_class = r.mms_class
    if x.app_port == 0 and x.parts == 0 and x.sms_dcs == 0 and x.sms_pid == 0:   # one TPDU's details
        x.app_port = r.app_port
        x.parts = r.parts
        x.part = r.part
        x.sms_pid = r.sms_pid
        x.sms_dcs = r.sms_dcs
    if x.loc_type == 0 and r.loc_type:
        x.loc_type = r.loc_type
        x.mcc = r.mcc
        x.mnc = r.mnc
        x.lac_tac = r.lac_tac
        x.cell = r.cell
    elif x.mcc == 0xFFFF:                              # a network without a location (GTP serving network)
        x.mcc = r.mcc
        x.mnc = r.mnc


cdef int ber_clamp(const uint8_t *p, Py_ssize_t n, Tlv *t) noexcept nogil:
    """A TCAP message whose declared length overruns its container, clamped to what is there."""
    cdef Py_ssize_t hdr
    if n < 2 or (p[0] & 0x1F) == 0x1F:
        return 1
    hdr = 2 if p[1] < 0x80 else (2 + (p[1] & 0x7F) if 0x81 <= p[1] <= 0x84 else 0)
    if hdr == 0 or hdr > n:
        return 1
    t.tag = p[0]
    t.at = p
    t.v = p + hdr
    t.len = n - hdr
    t.next = p + n
    return 0


cdef inline int user_anomaly(int rc, uint8_t proto) noexcept nogil:
    """A BER failure inside an operation's parameter belongs to the TCAP user's layer."""
    if rc == AN_TCAP_TRUNCATED:
        return AN_CAMEL_TRUNCATED if proto == TP_PROTO_CAP else AN_MAP_TRUNCATED
    if rc == AN_TCAP_MALFORMED or rc == AN_TCAP_TOO_DEEP:
        return AN_CAMEL_MALFORMED if proto == TP_PROTO_CAP else AN_MAP_MALFORMED
    return rc


cdef int tcap(Dec *d, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef Cur c = cur(p, n), cc
    cdef Tlv top, t, ct
    cdef Msg m
    cdef Comp k
    cdef Dlg tmp
    cdef Dlg *e = NULL
    cdef int rc, i, is_invoke, ncomp = 0, temp = 0
    cdef uint64_t called_key, calling_key, sender, receiver
    cdef tp_record r
    cdef tp_record *o
    cdef uint8_t partial = 0
    cdef uint8_t proto
    cdef int lay
    d.layer_in[L_TCAP] += 1
    rc = ber_read(&c, &top, 0)
    if rc == AN_TCAP_TRUNCATED and ber_clamp(p, n, &top) == 0:
        anomaly(d, rc, p)                              # longer than SCCP gave it: decode what is there
        partial = TP_F_PARTIAL
    elif rc:
        return anomaly(d, rc, p)
    if top.tag != T_BEGIN and top.tag != T_CONTINUE and top.tag != T_END and top.tag != T_ABORT and top.tag != T_UNI:
        return anomaly(d, AN_TCAP_UNKNOWN_TYPE, p)
    memset(&m, 0, sizeof(Msg))
    m.type = top.tag
    m.dest_ref = NO_DIGITS
    m.orig_ref = NO_DIGITS
    m.orig_national = 0
    c = inner(&top)
    while c.p < c.end:
        rc = ber_read(&c, &t, 0)
        if rc:
            return anomaly(d, rc, c.p)
        if t.tag == 0x48:
            m.otid = tid_of(&t)
        elif t.tag == 0x49:
            m.dtid = tid_of(&t)
        elif t.tag == 0x6B:
            rc = dialogue_portion(&t, &m)
            if rc:
                anomaly(d, rc, t.at)
                partial = TP_F_PARTIAL
        elif t.tag == 0x6C:
            m.comps = t
            m.has_comps = 1
    proto = m.proto
    if proto == 0:
        if d.cap_ssn[d.pkt.called.ssn] or d.cap_ssn[d.pkt.calling.ssn]:
            proto = TP_PROTO_CAP
        elif d.map_ssn[d.pkt.called.ssn] or d.map_ssn[d.pkt.calling.ssn]:
            proto = TP_PROTO_MAP
    if proto == 255:
        return anomaly(d, AN_TCAP_OTHER_USER, p)
    if (m.type == T_BEGIN and m.otid == 0) or (m.type == T_CONTINUE and (m.otid == 0 or m.dtid == 0)) or (
            (m.type == T_END or m.type == T_ABORT) and m.dtid == 0):
        return anomaly(d, AN_TCAP_MALFORMED, p)
    d.layer_ok[L_TCAP] += 1

    # find or open the dialogue
    called_key = addr_key(&d.pkt.called, d.pkt.dpc)
    calling_key = addr_key(&d.pkt.calling, d.pkt.opc)
    if m.type == T_BEGIN:
        if not proto:
            return anomaly(d, AN_TCAP_OTHER_USER, p)
        e = dlg_find(&d.dlg, m.otid, calling_key)
        if e != NULL:                                  # the same id reused: close the old one
            dlg_emit(d, e, TP_F_TIMEOUT)
            dlg_release(&d.dlg, e)
        e = dlg_new(d, m.otid, calling_key)
        e.rec.version = m.version if m.version or proto != TP_PROTO_MAP else 1
        e.rec.proto = proto
        e.rec.tid = <uint32_t>m.otid
        e.rec.src = d.pkt.opc
        e.rec.dst = d.pkt.dpc
    elif m.type == T_CONTINUE:
        e = dlg_find(&d.dlg, m.dtid, called_key)
        if e == NULL:
            e = dlg_find(&d.dlg, m.otid, calling_key)
        if e == NULL and not proto:
            return anomaly(d, AN_TCAP_OTHER_USER, p)
        if e == NULL:
            anomaly(d, AN_TCAP_UNMATCHED, p)
            e = dlg_new(d, m.otid, calling_key)
            e.rec.version = m.version
            e.rec.proto = proto
            e.rec.tid = <uint32_t>m.dtid
            e.rec.src = d.pkt.dpc
            e.rec.dst = d.pkt.opc
            dlg_key_b(&d.dlg, e, m.dtid, called_key)
        elif not e.has_b and dlg_find(&d.dlg, m.otid, calling_key) == NULL:
            dlg_key_b(&d.dlg, e, m.otid, calling_key)
    elif m.type == T_END or m.type == T_ABORT:
        e = dlg_find(&d.dlg, m.dtid, called_key)
    if e != NULL and not proto:
        proto = e.rec.proto                            # the dialogue says what the SSNs did not
    if e == NULL and not proto:                        # neither context, SSN, nor a known dialogue
        return anomaly(d, AN_TCAP_OTHER_USER, p)
    if e == NULL:                                      # end of an unseen dialogue, or unidirectional
        if m.type != T_UNI:
            anomaly(d, AN_TCAP_UNMATCHED, p)
        e = &tmp
        temp = 1
        memset(e, 0, sizeof(Dlg))
        memcpy(&e.rec, &d.tmpl, sizeof(tp_record))
        e.fb_sender = NO_DIGITS
        e.fb_receiver = NO_DIGITS
        e.rec.version = m.version
        e.rec.proto = proto
        e.rec.tid = <uint32_t>(m.dtid if m.dtid else m.otid)
        e.rec.src = d.pkt.dpc
        e.rec.dst = d.pkt.opc
    if e.rec.version == 0:
        e.rec.version = m.version
    e.rec.frame = <uint32_t>d.frame
    e.rec.ts_ns = d.pkt.ts_ns
    e.rec.flags |= partial
    lay = L_MAP if proto == TP_PROTO_MAP else L_CAP

    # every component
    if m.has_comps:
        cc = inner(&m.comps)
        while cc.p < cc.end:
            rc = ber_read(&cc, &ct, 0)
            if rc:
                anomaly(d, rc, cc.p)
                e.rec.flags |= TP_F_PARTIAL
                break
            d.layer_in[lay] += 1
            rc = component(&ct, &k)
            if rc:
                anomaly(d, rc, ct.at)
                e.rec.flags |= TP_F_PARTIAL
                continue
            ncomp += 1
            is_invoke = k.type == 0xA1
            if is_invoke:
                e.inv_id[e.ninv % DLG_INVOKES] = <uint8_t>k.invoke_id
                e.inv_op[e.ninv % DLG_INVOKES] = <uint16_t>k.op
                e.ninv += 1
            elif k.op < 0:
                for i in range(DLG_INVOKES if e.ninv > DLG_INVOKES else e.ninv):
                    if e.inv_id[i] == <uint8_t>k.invoke_id:
                        k.op = e.inv_op[i]
            memcpy(&r, &d.tmpl, sizeof(tp_record))
            r.ts_ns = d.pkt.ts_ns
            r.frame = <uint32_t>d.frame
            r.proto = proto
            r.version = m.version
            r.tid = e.rec.tid
            r.src = d.pkt.opc
            r.dst = d.pkt.dpc
            r.op = <uint16_t>k.op if k.op >= 0 else 0xFFFF
            r.kind = map_kind(k.op) if k.op >= 0 and proto == TP_PROTO_MAP else TP_K_OTHER
            if is_invoke:
                r.flags = TP_F_REQUEST
            elif k.type == 0xA3:
                r.flags = TP_F_RESPONSE | TP_F_ERROR
                r.cause = <uint16_t>k.err if k.err > 0 else 0
            elif k.type == 0xA4:
                r.flags = TP_F_ERROR
            else:
                r.flags = TP_F_RESPONSE
            if k.has_prm and k.op >= 0 and k.type != 0xA3:
                if proto == TP_PROTO_CAP:
                    rc = cap_arg(d, k.op, &k.prm, &r) if is_invoke else 0
                else:
                    rc = map_arg(d, k.op, &k.prm, &r) if is_invoke else map_res(d, k.op, &k.prm, &r)
                if rc:
                    anomaly(d, user_anomaly(rc, proto), k.prm.at)
                    r.flags |= TP_F_PARTIAL
                else:
                    d.layer_ok[lay] += 1
            else:
                d.layer_ok[lay] += 1
            if r.kind == TP_K_OTHER and k.op >= 0 and is_invoke and proto == TP_PROTO_MAP:
                anomaly(d, AN_MAP_UNKNOWN_OP, k.prm.at if k.has_prm else ct.at)
            if r.imsi == NO_DIGITS:
                r.imsi = m.dest_ref
            if r.msisdn == NO_DIGITS and (m.ac_x == 18 or m.ac_x == 19):
                r.msisdn = with_country_code(d, m.orig_ref) if m.orig_national else m.orig_ref
            sender = d.pkt.calling.gt if is_invoke else d.pkt.called.gt
            receiver = d.pkt.called.gt if is_invoke else d.pkt.calling.gt
            if d.messages:
                r.flags |= partial
                if r.node == NO_DIGITS and proto == TP_PROTO_MAP:
                    i = node_side(k.op, r.kind)
                    r.node = sender if i == SIDE_SENDER else (receiver if i == SIDE_RECEIVER else NO_DIGITS)
                if r.op == 0xFFFF:
                    r.op = 0
                o = emit(d)
                if o != NULL:
                    memcpy(o, &r, sizeof(tp_record))
            else:
                fold(e, &r, is_invoke, sender, receiver)
                if r.kind == TP_K_CALL_ATTEMPT and proto == TP_PROTO_CAP:
                    call_setup(d, e)
                elif r.flags & TP_F_ANSWERED and not temp:
                    call_answered(d, e)
    if d.messages and m.type == T_ABORT:
        o = emit(d)
        if o != NULL:
            memcpy(o, &e.rec, sizeof(tp_record))
            o.flags = TP_F_ABORT | partial
    # close it
    if m.type == T_END or m.type == T_ABORT or m.type == T_UNI:
        if not d.messages and (ncomp or m.type == T_ABORT or not temp):
            dlg_emit(d, e, TP_F_ABORT if m.type == T_ABORT else 0)
        if not temp:
            dlg_release(&d.dlg, e)
    return 0
