# Capture files: pcap (us and ns magic, both byte orders) and pcapng (SHB, IDB,
# EPB, SPB, obsolete PB; many interfaces and link types; both byte orders).
# feed() parses every complete record in a buffer and leaves the rest for the
# next call, so memory stays flat whatever the file size.

cdef enum:
    FMT_UNKNOWN = 0
    FMT_PCAP = 1
    FMT_PCAPNG = 2
    MAX_CAPLEN = 262144 * 4
    MAX_BLOCK = 16 * 1024 * 1024


cdef int fatal(Dec *d, int code, Py_ssize_t at) noexcept nogil:
    d.fatal = code
    d.fatal_off = d.file_off + at
    d.anomalies[code] += 1
    return code


cdef void iface_options(Dec *d, Iface *f, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t pos = 0
    cdef uint16_t code, ln
    cdef uint8_t r
    cdef int i
    cdef int64_t units
    while pos + 4 <= n:
        code = rd16(p + pos, d.swap)
        ln = rd16(p + pos + 2, d.swap)
        if code == 0 or pos + 4 + ln > n:
            break
        if code == 9 and ln >= 1:          # if_tsresol
            r = p[pos + 4]
            f.ts_mul = 0
            f.ts_div = 0
            f.ts_shift = 0
            if r & 0x80:
                f.ts_shift = r & 0x7F
            elif r <= 9:
                units = 1
                for i in range(9 - r):
                    units *= 10
                f.ts_mul = units
            else:
                units = 1
                for i in range(r - 9):
                    units *= 10
                f.ts_div = units
        elif code == 14 and ln == 8:       # if_tsoffset, seconds
            if d.swap:
                f.ts_off_ns = <int64_t>((<uint64_t>rd32(p + pos + 4, 1) << 32) | rd32(p + pos + 8, 1)) * 1000000000
            else:
                f.ts_off_ns = <int64_t>((<uint64_t>rd32(p + pos + 8, 0) << 32) | rd32(p + pos + 4, 0)) * 1000000000
        pos += 4 + ((ln + 3) & ~3)


cdef inline int64_t iface_ts(Iface *f, uint64_t raw) noexcept nogil:
    if f.ts_mul:
        return <int64_t>raw * f.ts_mul + f.ts_off_ns
    if f.ts_div:
        return <int64_t>(raw // <uint64_t>f.ts_div) + f.ts_off_ns
    if f.ts_shift:
        return <int64_t>((raw >> f.ts_shift) * 1000000000 +
                         (((raw & ((<uint64_t>1 << f.ts_shift) - 1)) * 1000000000) >> f.ts_shift)) + f.ts_off_ns
    return <int64_t>raw * 1000 + f.ts_off_ns


cdef void packet(Dec *d, uint32_t linktype, int64_t ts_ns, const uint8_t *p, Py_ssize_t caplen,
                 Py_ssize_t origlen) noexcept nogil:
    d.frame += 1
    d.bytes += caplen
    d.last_ts = ts_ns
    memset(&d.pkt, 0, sizeof(Pkt))
    d.pkt.base = p
    d.pkt.ts_ns = ts_ns
    d.layer_in[L_CAPTURE] += 1
    d.layer_ok[L_CAPTURE] += 1
    if caplen < origlen:
        anomaly(d, AN_CAP_SNAPPED, p + caplen)
    dialogue_expire(d, ts_ns)
    tunnels_sweep(d, ts_ns)
    link(d, linktype, p, caplen)


cdef Py_ssize_t feed(Dec *d, const uint8_t *buf, Py_ssize_t n) noexcept nogil:
    """Decode every complete capture record in buf; returns the bytes consumed."""
    cdef Py_ssize_t pos = 0
    cdef uint32_t magic, caplen, origlen, btype, blen, ifid
    cdef const uint8_t *p
    cdef Iface *f
    cdef uint64_t raw
    if d.fatal:
        return 0
    if d.fmt == FMT_UNKNOWN:
        if n < 4:
            return 0
        magic = le32(buf)
        if magic == 0x0A0D0D0A:
            d.fmt = FMT_PCAPNG
        else:
            if n < 24:
                return 0
            if magic == 0xA1B2C3D4U or magic == 0xA1B23C4DU:
                d.swap = 0
            elif magic == 0xD4C3B2A1U or magic == 0x4D3CB2A1:
                d.swap = 1
            else:
                fatal(d, AN_CAP_NOT_CAPTURE, 0)
                return 0
            d.nsec = (magic == 0xA1B23C4DU or magic == 0x4D3CB2A1)
            d.snaplen = rd32(buf + 16, d.swap)
            d.linktype = <uint16_t>(rd32(buf + 20, d.swap) & 0xFFFF)
            d.fmt = FMT_PCAP
            pos = 24
    while not d.fatal:
        if d.cap - d.nout < MAX_PER_PACKET:
            break
        p = buf + pos
        if d.fmt == FMT_PCAP:
            if n - pos < 16:
                break
            caplen = rd32(p + 8, d.swap)
            origlen = rd32(p + 12, d.swap)
            if caplen > MAX_CAPLEN:
                fatal(d, AN_CAP_BAD_RECORD, pos)
                break
            if n - pos < 16 + <Py_ssize_t>caplen:
                break
            raw = rd32(p + 4, d.swap)
            packet(d, d.linktype, <int64_t>rd32(p, d.swap) * 1000000000 + <int64_t>raw * (1 if d.nsec else 1000),
                   p + 16, caplen, origlen)
            pos += 16 + caplen
        else:
            if n - pos < 12:
                break
            btype = rd32(p, d.swap)
            if btype == 0x0A0D0D0A:            # section header: byte order first
                magic = le32(p + 8)
                if magic == 0x1A2B3C4D:
                    d.swap = 0
                elif magic == 0x4D3C2B1A:
                    d.swap = 1
                else:
                    fatal(d, AN_CAP_BAD_BLOCK, pos)
                    break
                d.nifaces = 0
            blen = rd32(p + 4, d.swap)
            if blen < 12 or blen % 4 or blen > MAX_BLOCK:
                fatal(d, AN_CAP_BAD_BLOCK, pos)
                break
            if n - pos < <Py_ssize_t>blen:
                break
            if btype == 1 and blen >= 20:      # interface description
                if d.nifaces < MAX_IFACES:
                    f = &d.ifaces[d.nifaces]
                    memset(f, 0, sizeof(Iface))
                    f.linktype = rd16(p + 8, d.swap)
                    f.snaplen = rd32(p + 12, d.swap)
                    f.ts_mul = 1000
                    iface_options(d, f, p + 16, blen - 20)
                d.nifaces += 1
            elif btype == 6 and blen >= 32:    # enhanced packet
                ifid = rd32(p + 8, d.swap)
                caplen = rd32(p + 20, d.swap)
                origlen = rd32(p + 24, d.swap)
                if caplen > blen - 32:
                    fatal(d, AN_CAP_BAD_BLOCK, pos)
                    break
                if ifid >= <uint32_t>d.nifaces or ifid >= MAX_IFACES:
                    d.frame += 1
                    anomaly(d, AN_CAP_NO_INTERFACE, NULL)
                else:
                    f = &d.ifaces[ifid]
                    raw = (<uint64_t>rd32(p + 12, d.swap) << 32) | rd32(p + 16, d.swap)
                    packet(d, f.linktype, iface_ts(f, raw), p + 28, caplen, origlen)
            elif btype == 3 and blen >= 16:    # simple packet: no timestamp, interface 0
                origlen = rd32(p + 8, d.swap)
                caplen = blen - 16
                if origlen < caplen:
                    caplen = origlen
                if d.nifaces == 0:
                    d.frame += 1
                    anomaly(d, AN_CAP_NO_INTERFACE, NULL)
                else:
                    f = &d.ifaces[0]
                    if f.snaplen and caplen > f.snaplen:
                        caplen = f.snaplen
                    packet(d, f.linktype, d.last_ts, p + 12, caplen, origlen)
            elif btype == 2 and blen >= 32:    # obsolete packet block
                ifid = rd16(p + 8, d.swap)
                caplen = rd32(p + 20, d.swap)
                origlen = rd32(p + 24, d.swap)
                if caplen > blen - 32:
                    fatal(d, AN_CAP_BAD_BLOCK, pos)
                    break
                if ifid >= <uint32_t>d.nifaces or ifid >= MAX_IFACES:
                    d.frame += 1
                    anomaly(d, AN_CAP_NO_INTERFACE, NULL)
                else:
                    f = &d.ifaces[ifid]
                    raw = (<uint64_t>rd32(p + 12, d.swap) << 32) | rd32(p + 16, d.swap)
                    packet(d, f.linktype, iface_ts(f, raw), p + 28, caplen, origlen)
            pos += blen
    d.file_off += pos
    return pos
