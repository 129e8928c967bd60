# MAP (3GPP TS 29.002) operation arguments and results into record fields.
# Tags are the v2/v3 ones; v1 forms share them where the fields exist. Each
# function reads only what the record needs and skips the rest by length.

cdef enum:
    SIDE_NONE = 0
    SIDE_SENDER = 1          # the invoking party is the serving node
    SIDE_RECEIVER = 2        # the invoked party is the serving node


cdef uint16_t map_kind(int op) noexcept nogil:
    if op == 2: return TP_K_LOCATION_UPDATE
    if op == 3: return TP_K_CANCEL_LOCATION
    if op == 7: return TP_K_INSERT_SUB_DATA
    if op == 10: return TP_K_SS_REGISTER
    if op == 11: return TP_K_SS_ERASE
    if op == 12: return TP_K_SS_ACTIVATE
    if op == 13: return TP_K_SS_DEACTIVATE
    if op == 22: return TP_K_SRI
    if op == 23: return TP_K_GPRS_LOCATION_UPDATE
    if op == 43: return TP_K_CHECK_IMEI
    if op == 44: return TP_K_MT_SMS
    if op == 45: return TP_K_SRI_SM
    if op == 46: return TP_K_MO_SMS
    if op == 56: return TP_K_AUTH_INFO
    if op == 59: return TP_K_USSD
    if op == 67: return TP_K_PURGE_MS
    if op == 70 or op == 71: return TP_K_SUBSCRIBER_INFO
    return TP_K_OTHER


cdef int node_side(int op, int kind) noexcept nogil:
    """Which SCCP party of the invoke is the serving node (VLR, MSC, SGSN)."""
    if op == 2 or op == 23 or op == 56 or op == 43 or op == 67 or op == 59 or (op >= 10 and op <= 13):
        return SIDE_SENDER
    if op == 3 or op == 7 or op == 44 or op == 70:
        return SIDE_RECEIVER
    if op == 46:
        return SIDE_SENDER if kind == TP_K_MO_SMS else SIDE_RECEIVER
    return SIDE_NONE


cdef inline void plmn(tp_record *r, const uint8_t *p) noexcept nogil:
    """MCC/MNC from 3 TBCD octets, packed like digits; MNC keeps 2 or 3 digits."""
    cdef uint8_t m1 = p[0] & 0xF, m2 = p[0] >> 4, m3 = p[1] & 0xF
    cdef uint8_t n3 = p[1] >> 4, n1 = p[2] & 0xF, n2 = p[2] >> 4
    if m1 > 9 or m2 > 9 or m3 > 9 or n1 > 9 or n2 > 9 or (n3 > 9 and n3 != 0xF):
        return
    r.mcc = (m1 << 12) | (m2 << 8) | (m3 << 4) | 0xF
    r.mnc = ((n1 << 12) | (n2 << 8) | 0xFF) if n3 == 0xF else ((n1 << 12) | (n2 << 8) | (n3 << 4) | 0xF)


cdef inline void location(tp_record *r, const Tlv *t, uint8_t loc) noexcept nogil:
    """CellGlobalIdOrServiceAreaIdOrLAI: 7 octets (PLMN, LAC, CI/SAC) or 5 (PLMN, LAC)."""
    if r.loc_type:
        return
    if t.len == 7:
        plmn(r, t.v)
        r.lac_tac = be16(t.v + 3)
        r.cell = be16(t.v + 5)
        r.loc_type = loc
    elif t.len == 5:
        plmn(r, t.v)
        r.lac_tac = be16(t.v + 3)
        r.loc_type = TP_LOC_LAI


cdef Py_ssize_t wsp_skip(const uint8_t *p, Py_ssize_t n, Py_ssize_t pos) noexcept nogil:
    """Step over one WSP/MMS header value (WAP-230 8.4.1.2: by its first octet); n when out of bounds."""
    cdef uint8_t b
    cdef Py_ssize_t ln = 0
    cdef int i
    if pos >= n:
        return n
    b = p[pos]
    if b < 31:
        return pos + 1 + b
    if b == 31:
        pos += 1
        for i in range(5):
            if pos >= n:
                return n
            ln = (ln << 7) | (p[pos] & 0x7F)
            pos += 1
            if not (p[pos - 1] & 0x80):
                break
        return pos + ln
    if b < 128:
        while pos < n and p[pos] != 0:
            pos += 1
        return pos + 1
    return pos + 1


cdef Py_ssize_t wsp_value(const uint8_t *p, Py_ssize_t n, Py_ssize_t pos) noexcept nogil:
    """Where a value-length prefixed value starts: after the short length, or the quote and uintvar."""
    cdef int i
    if pos >= n or p[pos] > 31:
        return n
    if p[pos] < 31:
        return pos + 1
    pos += 1
    for i in range(5):
        if pos >= n:
            return n
        pos += 1
        if not (p[pos - 1] & 0x80):
            break
    return pos


cdef enum:
    SUBJECT_MAX = 1024       # bytes of a subject in UTF-8 that are hashed at most (probe.record.SUBJECT_MAX)


cdef Py_ssize_t utf8_put(uint8_t *buf, Py_ssize_t m, uint32_t u) noexcept nogil:
    """Code point u in UTF-8 at buf[m:] (room for 4 bytes is the caller's); the new length."""
    if u < 0x80:
        buf[m] = <uint8_t>u
        return m + 1
    if u < 0x800:
        buf[m] = <uint8_t>(0xC0 | (u >> 6))
        buf[m + 1] = <uint8_t>(0x80 | (u & 0x3F))
        return m + 2
    if u < 0x10000:
        buf[m] = <uint8_t>(0xE0 | (u >> 12))
        buf[m + 1] = <uint8_t>(0x80 | ((u >> 6) & 0x3F))
        buf[m + 2] = <uint8_t>(0x80 | (u & 0x3F))
        return m + 3
    buf[m] = <uint8_t>(0xF0 | (u >> 18))
    buf[m + 1] = <uint8_t>(0x80 | ((u >> 12) & 0x3F))
    buf[m + 2] = <uint8_t>(0x80 | ((u >> 6) & 0x3F))
    buf[m + 3] = <uint8_t>(0x80 | (u & 0x3F))
    return m + 4


cdef inline uint32_t utf16_unit(const uint8_t *p, int little) noexcept nogil:
    return ((<uint32_t>p[1] << 8) | p[0]) if little else ((<uint32_t>p[0] << 8) | p[1])


cdef uint64_t mms_subject(const uint8_t *p, Py_ssize_t pos, Py_ssize_t end) noexcept nogil:
    """The Subject's (Encoded-string-value at p[pos:end]) hash, ext/subject.h; 0 when it cannot
    be read. Text in UTF-8 (or without a charset, as handsets send it), US-ASCII, ISO-8859-1,
    UCS-2 and UTF-16; another charset's bytes are hashed as they are. Longer than SUBJECT_MAX
    bytes in UTF-8: 0 (probe.record.subject_hash says the same)."""
    cdef uint32_t charset = 106, u, lo
    cdef Py_ssize_t i = pos, k, m = 0, t
    cdef uint8_t buf[SUBJECT_MAX + 4]
    cdef int little = 0
    if pos >= end:
        return 0
    if p[pos] <= 31:                                    # Value-length Char-set Text-string
        i = wsp_value(p, end, pos)
        if i >= end:
            return 0
        if p[i] & 0x80:                                 # Short-integer (0x80 alone: any charset)
            charset = p[i] & 0x7F
            i += 1
        elif 1 <= p[i] <= 4 and i + 1 + p[i] <= end:    # Long-integer
            charset = 0
            for k in range(p[i]):
                charset = (charset << 8) | p[i + 1 + k]
            i += 1 + p[i]
        else:
            return 0
    if charset == 1000 or charset == 1015:              # 16-bit units up to a 0 unit or the value's end
        if charset == 1015 and i + 1 < end and p[i] == 0xFF and p[i + 1] == 0xFE:
            little, i = 1, i + 2
        elif charset == 1015 and i + 1 < end and p[i] == 0xFE and p[i + 1] == 0xFF:
            i += 2
        while i + 1 < end:
            u = utf16_unit(p + i, little)
            i += 2
            if u == 0:
                break
            if 0xD800 <= u < 0xDC00 and i + 1 < end:    # a surrogate pair
                lo = utf16_unit(p + i, little)
                if 0xDC00 <= lo < 0xE000:
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                    i += 2
            if 0xD800 <= u < 0xE000:
                u = 0xFFFD                              # a lone surrogate: what a decoder shows
            if m > SUBJECT_MAX:
                return 0
            m = utf8_put(buf, m, u)
        return tp_subject_hash(buf, m) if m <= SUBJECT_MAX else 0
    if i < end and p[i] == 0x7F:                        # Quote (of an 8-bit text's first octet >= 128)
        i += 1
    t = i
    while t < end and p[t] != 0:
        t += 1
    if t >= end:                                        # no NUL: cut short
        return 0
    if charset != 4:
        return tp_subject_hash(p + i, t - i) if t - i <= SUBJECT_MAX else 0
    for k in range(i, t):                               # ISO-8859-1: each byte its code point
        if m > SUBJECT_MAX:
            return 0
        m = utf8_put(buf, m, p[k])
    return tp_subject_hash(buf, m) if m <= SUBJECT_MAX else 0


cdef void mms_notification(const uint8_t *p, Py_ssize_t n, tp_record *r) noexcept nogil:
    """m-notification-ind: sender (From) into peer, message size into octets, the Subject's
    hash (never its text) and the message class. Content location is message content: not
    kept."""
    cdef Py_ssize_t pos = 2, nxt, i, k
    cdef uint8_t h
    cdef uint64_t v
    if n < 2 or p[0] != 0x8C or p[1] != 0x82:
        return
    r.kind = TP_K_MMS_NOTIFICATION
    while pos < n:
        h = p[pos]
        pos += 1
        if h < 0x80:
            return
        nxt = wsp_skip(p, n, pos)
        if nxt > n:
            return
        if h == 0x96:                                                             # Subject
            r.subject_hash = mms_subject(p, pos, nxt)
        elif h == 0x8A and pos < nxt:                                             # X-Mms-Message-Class
            r.mms_class = p[pos] - 0x7F if 0x80 <= p[pos] <= 0x83 else TP_MMS_CLASS_OTHER
        elif h == 0x8E and pos < n and 1 <= p[pos] <= 8 and pos + 1 + p[pos] <= n:   # Message-Size
            v = 0
            for i in range(p[pos]):
                v = (v << 8) | p[pos + 1 + i]
            r.octets = v
        elif h == 0x89 and wsp_value(p, nxt, pos) < nxt and p[wsp_value(p, nxt, pos)] == 0x80:  # From
            i = wsp_value(p, nxt, pos) + 1                                            # address-present
            if i < nxt and p[i] < 31:                                                 # charset-qualified
                i += 2
            if i < nxt and p[i] == 0x2B:                                              # '+'
                i += 1
            v = 0
            k = 0
            while i < nxt and 0x30 <= p[i] <= 0x39 and k < 16:
                v = (v << 4) | (p[i] - 0x30)
                k += 1
                i += 1
            if k and (i >= nxt or p[i] == 0x2F or p[i] == 0):                         # up to '/TYPE=PLMN'
                r.peer = (v << (4 * (16 - k))) | (((<uint64_t>1 << (4 * (16 - k))) - 1) if k < 16 else 0)
        pos = nxt


cdef void wap_push(const uint8_t *p, Py_ssize_t n, tp_record *r) noexcept nogil:
    """Connectionless WSP Push (TID, PDU type 0x06, headers) carrying an MMS PDU."""
    cdef Py_ssize_t pos = 2, hlen = 0
    cdef int i
    if n < 4 or p[1] != 0x06:
        return
    for i in range(5):
        if pos >= n:
            return
        hlen = (hlen << 7) | (p[pos] & 0x7F)
        pos += 1
        if not (p[pos - 1] & 0x80):
            break
    if pos >= n or p[pos] != 0xBE or pos + hlen > n:      # application/vnd.wap.mms-message
        return
    mms_notification(p + pos + hlen, n - pos - hlen, r)


cdef void gsm7_text(const uint8_t *p, Py_ssize_t n, Py_ssize_t nchars, char *out, int size) noexcept nogil:
    """GSM 7-bit packed characters (TS 23.038) into out: letters, digits, space and common
    punctuation are the same as ASCII; anything else becomes '?'."""
    cdef Py_ssize_t i, byte
    cdef int shift, k = 0
    cdef uint8_t ch
    for i in range(nchars):
        byte = (i * 7) >> 3
        shift = (i * 7) & 7
        if byte >= n or k >= size:
            break
        ch = p[byte] >> shift
        if shift > 1 and byte + 1 < n:
            ch |= p[byte + 1] << (8 - shift)
        ch &= 0x7F
        if ch == 0x00:
            ch = 0x40                                  # '@'
        elif ch == 0x02:
            ch = 0x24                                  # '$'
        elif not ((0x20 <= ch <= 0x23) or (0x25 <= ch <= 0x3F) or (0x41 <= ch <= 0x5A) or (0x61 <= ch <= 0x7A)):
            ch = 0x3F
        out[k] = <char>ch
        k += 1


cdef int sms_tpdu(const Tlv *ui, tp_record *r) noexcept nogil:
    """SMS-DELIVER / SMS-SUBMIT (TS 23.040): the other party, PID, DCS, user data header
    (concatenation, application ports) and a WAP-push MMS notification. Never the text."""
    cdef const uint8_t *p = ui.v
    cdef Py_ssize_t n = ui.len, pos, nb, h, hend
    cdef uint8_t mti, vpf, iei, iel
    if n < 1:
        return AN_MAP_TRUNCATED
    mti = p[0] & 3
    if mti > 1:
        return 0
    pos = 1 if mti == 0 else 2                         # SUBMIT: TP-MR first
    if pos + 2 > n:
        return AN_MAP_TRUNCATED
    nb = (p[pos] + 1) // 2
    if pos + 2 + nb > n:
        return AN_MAP_TRUNCATED
    if ((p[pos + 1] >> 4) & 7) != 5:
        r.peer = tbcd(p + pos + 2, nb, p[pos])
    else:                                              # alphanumeric: GSM 7-bit packed, length in semi-octets
        gsm7_text(p + pos + 2, nb, p[pos] * 4 // 7, r.peer_alpha, TP_ALPHA_LEN)
    pos += 2 + nb
    if pos + 2 > n:
        return AN_MAP_TRUNCATED
    r.sms_pid = p[pos]
    r.sms_dcs = p[pos + 1]
    pos += 2
    if mti == 0:
        pos += 7                                       # TP-SCTS
    else:
        vpf = (p[0] >> 3) & 3
        pos += 0 if vpf == 0 else (1 if vpf == 2 else 7)
    pos += 1                                           # TP-UDL
    if pos > n:
        return AN_MAP_TRUNCATED
    if not (p[0] & 0x40):
        return 0
    if pos >= n or pos + 1 + p[pos] > n:
        return AN_MAP_TRUNCATED
    hend = pos + 1 + p[pos]
    h = pos + 1
    while h + 2 <= hend:
        iei = p[h]
        iel = p[h + 1]
        if h + 2 + iel > hend:
            break
        if iei == 0x00 and iel == 3:
            r.parts = p[h + 3]
            r.part = p[h + 4]
        elif iei == 0x08 and iel == 4:
            r.parts = p[h + 4]
            r.part = p[h + 5]
        elif iei == 0x05 and iel == 4:
            r.app_port = be16(p + h + 2)
        elif iei == 0x04 and iel == 2:
            r.app_port = p[h + 2]
        h += 2 + iel
    if mti == 0 and r.app_port == 2948 and r.part <= 1:
        wap_push(p + hend, n - hend, r)
    return 0


cdef uint64_t ussd_digits(const Tlv *s, uint8_t dcs) noexcept nogil:
    """A USSD string made only of 0-9 * # (GSM 7-bit packed), as packed digits."""
    cdef Py_ssize_t nchars, i, byte
    cdef int shift, k = 0
    cdef uint8_t ch
    cdef uint64_t v = 0
    if not ((dcs >> 4) == 0 or (dcs >> 4) == 1 or ((dcs >> 6) == 1 and (dcs & 0x0C) == 0)
            or ((dcs >> 4) == 0xF and not (dcs & 4))):
        return NO_DIGITS
    nchars = s.len * 8 // 7
    for i in range(nchars):
        byte = (i * 7) >> 3
        shift = (i * 7) & 7
        ch = s.v[byte] >> shift
        if shift > 1 and byte + 1 < s.len:
            ch |= s.v[byte + 1] << (8 - shift)
        ch &= 0x7F
        if ch == 0x0D and i == nchars - 1:           # padding when 7 bits are spare
            break
        if ch >= 0x30 and ch <= 0x39:
            ch -= 0x30
        elif ch == 0x2A:
            ch = 10
        elif ch == 0x23:
            ch = 11
        else:
            return NO_DIGITS
        if k == 16:
            return NO_DIGITS
        v = (v << 4) | ch
        k += 1
    if k == 0:
        return NO_DIGITS
    if k < 16:
        v = (v << (4 * (16 - k))) | ((<uint64_t>1 << (4 * (16 - k))) - 1)
    return v


cdef int location_info(tp_record *r, const Tlv *li, int gprs) noexcept nogil:
    """LocationInformation (or ...GPRS): cell or area, serving node (MAP, and CAP InitialDP)."""
    cdef Cur c = inner(li), c2
    cdef Tlv u, w
    cdef int rc
    cdef uint8_t loc = TP_LOC_CGI
    while c.p < c.end:
        rc = ber_read(&c, &u, 0)
        if rc:
            return rc
        if not gprs and u.tag == 0x89:                 # sai-Present
            loc = TP_LOC_SAI
            if r.loc_type == TP_LOC_CGI:
                r.loc_type = TP_LOC_SAI
        elif gprs and u.tag == 0x80:                   # CAP's LocationInformationGPRS: a plain [0] octet string
            location(r, &u, TP_LOC_CGI)
        elif u.tag == (0xA0 if gprs else 0xA3):        # cellGlobalIdOrServiceAreaIdOrLAI
            c2 = inner(&u)
            if c2.p < c2.end:
                rc = ber_read(&c2, &w, 0)
                if rc:
                    return rc
                if w.tag == 0x80 or w.tag == 0x81:
                    location(r, &w, loc)
        elif not gprs and (u.tag == 0x81 or u.tag == 0x86) and r.node == NO_DIGITS:
            r.node = address_digits(&u)                # vlr-number, msc-Number
        elif gprs and u.tag == 0x83 and r.node == NO_DIGITS:
            r.node = address_digits(&u)                # sgsn-Number
    return 0


cdef int subscriber_info(tp_record *r, const Tlv *si) noexcept nogil:
    """SubscriberInfo of PSI / ATI results: location, serving node, IMEI."""
    cdef Cur c = inner(si)
    cdef Tlv t
    cdef int rc
    while c.p < c.end:
        rc = ber_read(&c, &t, 0)
        if rc:
            return rc
        if t.tag == 0xA0 or t.tag == 0xA3:             # locationInformation / ...GPRS
            rc = location_info(r, &t, t.tag == 0xA3)
            if rc:
                return rc
        elif t.tag == 0x85:
            r.imei = tbcd(t.v, t.len, -1)
    return 0


cdef int map_arg(Dec *d, int op, const Tlv *prm, tp_record *r) noexcept nogil:
    cdef Cur c = inner(prm), c2
    cdef Tlv t, u
    cdef int rc, i = 0, n04 = 0
    cdef uint8_t dcs = 0
    if op == 43 and prm.tag == 0x04:                   # checkIMEI v1/v2: bare IMEI
        r.imei = tbcd(prm.v, prm.len, -1)
        return 0
    if (op == 56 or op == 3) and prm.tag == 0x04:      # v2 SAI / cancelLocation: bare IMSI
        r.imsi = imsi_digits(prm)
        return 0
    if prm.tag != 0x30 and prm.tag != 0xA3:
        return AN_MAP_MALFORMED
    while c.p < c.end:
        rc = ber_read(&c, &t, 0)
        if rc:
            return rc
        if op == 2 or op == 23:                        # updateLocation / updateGprsLocation
            if t.tag == 0x04:
                if n04 == 0:
                    r.imsi = imsi_digits(&t)
                elif n04 == 1:
                    r.node = address_digits(&t)        # vlr-Number / sgsn-Number
                n04 += 1
        elif op == 3 or op == 67:                      # cancelLocation [3] / purgeMS
            if t.tag == 0x04 and n04 == 0:
                r.imsi = imsi_digits(&t)
                n04 += 1
            elif t.tag == 0x30 and n04 == 0:           # imsi-WithLMSI
                c2 = inner(&t)
                if ber_read(&c2, &u, 0) == 0 and u.tag == 0x04:
                    r.imsi = imsi_digits(&u)
                n04 += 1
            elif op == 67 and (t.tag == 0x80 or t.tag == 0x81 or t.tag == 0x04):
                if r.node == NO_DIGITS:
                    r.node = address_digits(&t)        # vlr-Number / sgsn-Number
        elif op == 7:                                  # insertSubscriberData
            if t.tag == 0x80:
                r.imsi = imsi_digits(&t)
            elif t.tag == 0x81:
                r.msisdn = msisdn_digits(d, &t)
        elif op >= 10 and op <= 13:                    # registerSS / eraseSS / activateSS / deactivateSS
            if t.tag == 0x04 and t.len >= 1 and r.ss_code == 0:
                r.ss_code = t.v[0]
            elif op == 10 and t.tag == 0x84:
                r.peer = address_digits(&t)            # forwardedToNumber
        elif op == 22 or op == 45:                     # sendRoutingInfo / ...ForSM
            if t.tag == 0x80:
                r.msisdn = msisdn_digits(d, &t)
            elif op == 45 and t.tag == 0x82:
                r.peer = address_digits(&t)            # serviceCentreAddress
        elif op == 43:                                 # checkIMEI v3
            if t.tag == 0x04 and r.imei == NO_DIGITS:
                r.imei = tbcd(t.v, t.len, -1)
        elif op == 44 or op == 46:                     # mt-/mo-forwardSM: DA, OA, UI by position
            if i == 0:
                if t.tag == 0x80:
                    r.imsi = imsi_digits(&t)
                    r.kind = TP_K_MT_SMS
                elif t.tag == 0x81:
                    r.kind = TP_K_MT_SMS
                elif t.tag == 0x84 and op == 46:
                    r.kind = TP_K_MO_SMS
            elif i == 1:
                if t.tag == 0x82:
                    r.msisdn = msisdn_digits(d, &t)
            elif i == 2 and t.tag == 0x04:
                rc = sms_tpdu(&t, r)
                if rc:
                    return rc
        elif op == 56:                                 # sendAuthenticationInfo v3
            if t.tag == 0x80:
                r.imsi = imsi_digits(&t)
        elif op == 59:                                 # processUnstructuredSS-Request
            if t.tag == 0x04:
                if n04 == 0 and t.len >= 1:
                    dcs = t.v[0]
                elif n04 == 1:
                    r.peer = ussd_digits(&t, dcs)
                n04 += 1
            elif t.tag == 0x80:
                r.msisdn = msisdn_digits(d, &t)
        elif op == 70:                                 # provideSubscriberInfo
            if t.tag == 0x80:
                r.imsi = imsi_digits(&t)
        elif op == 71:                                 # anyTimeInterrogation
            if t.tag == 0xA0:
                c2 = inner(&t)
                if ber_read(&c2, &u, 0) == 0:
                    if u.tag == 0x80:
                        r.imsi = imsi_digits(&u)
                    elif u.tag == 0x81:
                        r.msisdn = msisdn_digits(d, &u)
        i += 1
    return 0


cdef int map_res(Dec *d, int op, const Tlv *prm, tp_record *r) noexcept nogil:
    cdef Cur c = inner(prm), c2
    cdef Tlv t, u
    cdef int rc, n04 = 0
    if prm.tag != 0x30 and prm.tag != 0xA3:
        return 0                                       # bare results carry nothing the record needs
    while c.p < c.end:
        rc = ber_read(&c, &t, 0)
        if rc:
            return rc
        if op == 22:                                   # sendRoutingInfo
            if prm.tag == 0xA3:                        # v3
                if t.tag == 0x89:
                    r.imsi = imsi_digits(&t)
                elif t.tag == 0x04:
                    r.peer = address_digits(&t)        # roamingNumber
                elif t.tag == 0x82:
                    r.node = address_digits(&t)        # vmsc-Address
            elif t.tag == 0x04:                        # v2: imsi, roamingNumber
                if n04 == 0:
                    r.imsi = imsi_digits(&t)
                else:
                    r.peer = address_digits(&t)
                n04 += 1
        elif op == 45:                                 # sendRoutingInfoForSM
            if t.tag == 0x04 and n04 == 0:
                r.imsi = imsi_digits(&t)
                n04 += 1
            elif t.tag == 0xA0:
                c2 = inner(&t)
                while c2.p < c2.end:
                    rc = ber_read(&c2, &u, 0)
                    if rc:
                        return rc
                    if u.tag == 0x81:
                        r.node = address_digits(&u)    # networkNode-Number
        elif op == 70 or op == 71:
            if t.tag == 0x30:
                return subscriber_info(r, &t)
        elif op == 43:                                 # checkIMEI v3 result may echo nothing useful
            pass
    return 0
