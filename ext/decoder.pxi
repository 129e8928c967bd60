# The Python edge: Decoder owns the state and the output array; exceptions
# happen only here, never in the loop.

SCHEMA_VERSION = TP_SCHEMA_VERSION
MTP3_VARIANTS = {"itu": MTP3_ITU, "ansi": MTP3_ANSI, "japan": MTP3_JAPAN}


def record_layout():
    """(name, offset, size) of every field of the C struct, for the contract test."""
    cdef tp_record r
    cdef char *b = <char *>&r
    return [
        ("ts_ns", <char *>&r.ts_ns - b, sizeof(r.ts_ns)), ("kind", <char *>&r.kind - b, sizeof(r.kind)),
        ("proto", <char *>&r.proto - b, sizeof(r.proto)), ("flags", <char *>&r.flags - b, sizeof(r.flags)),
        ("op", <char *>&r.op - b, sizeof(r.op)), ("cause", <char *>&r.cause - b, sizeof(r.cause)),
        ("imsi", <char *>&r.imsi - b, sizeof(r.imsi)), ("msisdn", <char *>&r.msisdn - b, sizeof(r.msisdn)),
        ("imei", <char *>&r.imei - b, sizeof(r.imei)), ("peer", <char *>&r.peer - b, sizeof(r.peer)),
        ("node", <char *>&r.node - b, sizeof(r.node)), ("mcc", <char *>&r.mcc - b, sizeof(r.mcc)),
        ("mnc", <char *>&r.mnc - b, sizeof(r.mnc)), ("lac_tac", <char *>&r.lac_tac - b, sizeof(r.lac_tac)),
        ("cell", <char *>&r.cell - b, sizeof(r.cell)), ("rat", <char *>&r.rat - b, sizeof(r.rat)),
        ("ss_code", <char *>&r.ss_code - b, sizeof(r.ss_code)),
        ("version", <char *>&r.version - b, sizeof(r.version)),
        ("loc_type", <char *>&r.loc_type - b, sizeof(r.loc_type)),
        ("apn", <char *>&r.apn - b, sizeof(r.apn)), ("tid", <char *>&r.tid - b, sizeof(r.tid)),
        ("src", <char *>&r.src - b, sizeof(r.src)), ("dst", <char *>&r.dst - b, sizeof(r.dst)),
        ("frame", <char *>&r.frame - b, sizeof(r.frame)),
        ("probe_id", <char *>&r.probe_id - b, sizeof(r.probe_id)), ("pad0", <char *>&r.pad0 - b, sizeof(r.pad0)),
        ("packets", <char *>&r.packets - b, sizeof(r.packets)),
        ("octets", <char *>&r.octets - b, sizeof(r.octets)),
        ("service_key", <char *>&r.service_key - b, sizeof(r.service_key)),
        ("app_port", <char *>&r.app_port - b, sizeof(r.app_port)),
        ("sms_pid", <char *>&r.sms_pid - b, sizeof(r.sms_pid)),
        ("sms_dcs", <char *>&r.sms_dcs - b, sizeof(r.sms_dcs)),
        ("parts", <char *>&r.parts - b, sizeof(r.parts)), ("part", <char *>&r.part - b, sizeof(r.part)),
        ("event", <char *>&r.event - b, sizeof(r.event)), ("nai", <char *>&r.nai - b, sizeof(r.nai)),
        ("duration_ms", <char *>&r.duration_ms - b, sizeof(r.duration_ms)),
        ("peer_alpha", <char *>&r.peer_alpha - b, sizeof(r.peer_alpha)),
        ("bearers", <char *>&r.bearers - b, sizeof(r.bearers)), ("ebi", <char *>&r.ebi - b, sizeof(r.ebi)),
        ("qci", <char *>&r.qci - b, sizeof(r.qci)),
        ("mms_class", <char *>&r.mms_class - b, sizeof(r.mms_class)),
        ("subject_hash", <char *>&r.subject_hash - b, sizeof(r.subject_hash)),
    ], sizeof(tp_record)


def enum_values():
    """The C enums by name, for the test that the Python mirrors agree."""
    return {
        "proto": {"MAP": TP_PROTO_MAP, "CAP": TP_PROTO_CAP, "ISUP": TP_PROTO_ISUP, "GTPV1C": TP_PROTO_GTPV1C,
                  "GTPV2C": TP_PROTO_GTPV2C, "GTPU": TP_PROTO_GTPU},
        "flag": {"REQUEST": TP_F_REQUEST, "RESPONSE": TP_F_RESPONSE, "ERROR": TP_F_ERROR,
                 "ABORT": TP_F_ABORT, "TIMEOUT": TP_F_TIMEOUT, "PARTIAL": TP_F_PARTIAL,
                 "CORRELATED": TP_F_CORRELATED, "ANSWERED": TP_F_ANSWERED},
        "mms_class": {"PERSONAL": TP_MMS_CLASS_PERSONAL, "ADVERTISEMENT": TP_MMS_CLASS_ADVERTISEMENT,
                      "INFORMATIONAL": TP_MMS_CLASS_INFORMATIONAL, "AUTO": TP_MMS_CLASS_AUTO,
                      "OTHER": TP_MMS_CLASS_OTHER},
        "loc": {"CGI": TP_LOC_CGI, "SAI": TP_LOC_SAI, "RAI": TP_LOC_RAI, "TAI": TP_LOC_TAI, "ECGI": TP_LOC_ECGI,
                "LAI": TP_LOC_LAI},
        "kind": {"LOCATION_UPDATE": TP_K_LOCATION_UPDATE, "GPRS_LOCATION_UPDATE": TP_K_GPRS_LOCATION_UPDATE,
                 "CANCEL_LOCATION": TP_K_CANCEL_LOCATION, "PURGE_MS": TP_K_PURGE_MS,
                 "AUTH_INFO": TP_K_AUTH_INFO, "INSERT_SUB_DATA": TP_K_INSERT_SUB_DATA, "SRI": TP_K_SRI,
                 "SRI_SM": TP_K_SRI_SM, "MO_SMS": TP_K_MO_SMS, "MT_SMS": TP_K_MT_SMS,
                 "MMS_NOTIFICATION": TP_K_MMS_NOTIFICATION,
                 "SS_REGISTER": TP_K_SS_REGISTER, "SS_ACTIVATE": TP_K_SS_ACTIVATE,
                 "SS_DEACTIVATE": TP_K_SS_DEACTIVATE, "SS_ERASE": TP_K_SS_ERASE,
                 "CHECK_IMEI": TP_K_CHECK_IMEI, "SUBSCRIBER_INFO": TP_K_SUBSCRIBER_INFO, "USSD": TP_K_USSD,
                 "CALL_ATTEMPT": TP_K_CALL_ATTEMPT, "PDP_CREATE": TP_K_PDP_CREATE, "PDP_UPDATE": TP_K_PDP_UPDATE,
                 "PDP_DELETE": TP_K_PDP_DELETE, "SESSION_CREATE": TP_K_SESSION_CREATE,
                 "SESSION_MODIFY": TP_K_SESSION_MODIFY, "SESSION_DELETE": TP_K_SESSION_DELETE,
                 "BEARER_CREATE": TP_K_BEARER_CREATE, "BEARER_UPDATE": TP_K_BEARER_UPDATE,
                 "BEARER_DELETE": TP_K_BEARER_DELETE, "DATA_USAGE": TP_K_DATA_USAGE,
                 "CALL_END": TP_K_CALL_END},
    }


def anomaly_table():
    """[(code, name, layer, class, text)] from ext/anomaly.h."""
    return [(i, tp_anomaly_table[i].name.decode(), tp_layer_names[tp_anomaly_table[i].layer].decode(),
             tp_class_names[tp_anomaly_table[i].cls].decode(), tp_anomaly_table[i].text.decode())
            for i in range(AN_COUNT)]


LAYERS = [tp_layer_names[i].decode() for i in range(L_COUNT)]


cdef class Decoder:
    """Capture-file bytes in (feed), record arrays out (take).

    messages: one record per TCAP component instead of one per dialogue.
    mtp3: "itu", "ansi" or "japan" routing labels and SCCP addresses.
    country_code: 1 to 3 digits put in front of a subscriber's number (MSISDN) signalled as a
    national (significant) number (ISUP NAI 3, AddressString type of number 010), so the records
    carry it in international format whatever the interface; "" keeps numbers as signalled.
    """
    cdef Dec *d
    cdef object out_array
    cdef readonly object dtype

    def __cinit__(self, dtype, *, bint messages=False, str mtp3="itu", int probe_id=0,
                  Py_ssize_t capacity=65536, double dialogue_timeout=600.0, double call_timeout=14400.0,
                  int max_dialogues=131072,
                  map_ssns=(6, 7, 8, 9, 145, 148, 149, 150), cap_ssns=(146,), gtpc_ports=(2123,), gtpu_ports=(2152,),
                  double usage_interval=60.0, int max_tunnels=131072, str country_code=""):
        cdef int32_t i
        if mtp3 not in MTP3_VARIANTS:
            raise ValueError(f"mtp3 variant must be one of {', '.join(MTP3_VARIANTS)}, not {mtp3!r}")
        if capacity < 2 * MAX_PER_PACKET:
            raise ValueError(f"capacity must be at least {2 * MAX_PER_PACKET}")
        if max_dialogues < 16 or max_dialogues > (1 << 29):
            raise ValueError("max_dialogues must be between 16 and 2**29")
        if dtype.itemsize != sizeof(tp_record):
            raise ValueError(f"record dtype is {dtype.itemsize} bytes, the C struct {sizeof(tp_record)}")
        self.dtype = dtype
        self.d = <Dec *>calloc(1, sizeof(Dec))
        if self.d == NULL:
            raise MemoryError()
        self.d.messages = messages
        self.d.mtp3 = MTP3_VARIANTS[mtp3]
        self.d.probe_id = probe_id
        self.d.dlg_timeout_ns = <int64_t>(dialogue_timeout * 1e9)
        self.d.call_timeout_ns = <int64_t>(call_timeout * 1e9)
        for i in map_ssns:
            if not 0 < i < 256:
                raise ValueError(f"SSN {i} is not between 1 and 255")
            self.d.map_ssn[i] = 1
        for i in cap_ssns:
            if not 0 < i < 256:
                raise ValueError(f"SSN {i} is not between 1 and 255")
            self.d.cap_ssn[i] = 1
        for i, kind in ((3386, PORT_GTP0), *((x, PORT_GTPC) for x in gtpc_ports),
                        *((x, PORT_GTPU) for x in gtpu_ports)):
            if not 0 < i < 65536:
                raise ValueError(f"UDP port {i} is not between 1 and 65535")
            self.d.gtp_port[i] = kind
        self.d.usage_interval_ns = <int64_t>(usage_interval * 1e9)
        if country_code and not (country_code.isascii() and country_code.isdigit() and len(country_code) <= 3):
            raise ValueError(f"country code {country_code!r} is not 1 to 3 digits")
        self.d.cc_len = len(country_code)
        self.d.cc = 0
        for i in range(self.d.cc_len):
            self.d.cc |= <uint64_t>(ord(country_code[i]) - 48) << (4 * (15 - i))
        if max_tunnels < 16 or max_tunnels > (1 << 29):
            raise ValueError("max_tunnels must be between 16 and 2**29")
        self.d.tun.e = <Tunnel *>calloc(max_tunnels, sizeof(Tunnel))
        if self.d.tun.e == NULL or table_init(&self.d.tun.idx, &self.d.tun.pool, max_tunnels):
            raise MemoryError()
        self.d.assoc.e = <Assoc *>calloc(4096, sizeof(Assoc))
        if self.d.assoc.e == NULL or table_init(&self.d.assoc.idx, &self.d.assoc.pool, 4096):
            raise MemoryError()
        self.d.tcp.e = <TcpFlow *>calloc(TCP_FLOWS, sizeof(TcpFlow))
        if self.d.tcp.e == NULL or table_init(&self.d.tcp.idx, &self.d.tcp.pool, TCP_FLOWS):
            raise MemoryError()
        self.d.dlg.e = <Dlg *>calloc(max_dialogues, sizeof(Dlg))
        if self.d.dlg.e == NULL or table_init(&self.d.dlg.idx, &self.d.dlg.pool, max_dialogues):
            raise MemoryError()
        memset(&self.d.tmpl, 0, sizeof(tp_record))
        self.d.tmpl.imsi = NO_DIGITS
        self.d.tmpl.msisdn = NO_DIGITS
        self.d.tmpl.imei = NO_DIGITS
        self.d.tmpl.peer = NO_DIGITS
        self.d.tmpl.node = NO_DIGITS
        self.d.tmpl.mcc = 0xFFFF
        self.d.tmpl.mnc = 0xFFFF
        self.d.tmpl.probe_id = probe_id
        self._new_output(capacity)

    cdef _new_output(self, Py_ssize_t capacity):
        cdef cnp.ndarray a = np.empty(capacity, self.dtype)
        self.out_array = a
        self.d.out = <tp_record *>cnp.PyArray_DATA(a)
        self.d.cap = capacity
        self.d.nout = 0

    def __dealloc__(self):
        cdef int i
        if self.d == NULL:
            return
        for i in range(FRAG_SLOTS):
            free(self.d.frags[i].buf)
        for i in range(SCTP_SLOTS):
            free(self.d.sctp[i].buf)
        for i in range(SEG_SLOTS):
            free(self.d.segs[i].buf)
        free(self.d.dlg.e)
        table_free(&self.d.dlg.idx, &self.d.dlg.pool)
        free(self.d.tun.e)
        table_free(&self.d.tun.idx, &self.d.tun.pool)
        free(self.d.assoc.e)
        table_free(&self.d.assoc.idx, &self.d.assoc.pool)
        free(self.d.tcp.e)
        table_free(&self.d.tcp.idx, &self.d.tcp.pool)
        free(self.d)

    def feed(self, const uint8_t[::1] buf not None, Py_ssize_t length=-1):
        """Decode every complete capture record in buf[:length]; returns the bytes consumed.

        Stops early when the output is nearly full: take() the records and feed the rest.
        """
        cdef Py_ssize_t n = buf.shape[0] if length < 0 or length > buf.shape[0] else length
        cdef Py_ssize_t used
        if n == 0:
            return 0
        with nogil:
            used = feed(self.d, &buf[0], n)
        return used

    @property
    def pending(self):
        """Records waiting in the output."""
        return self.d.nout

    @property
    def full(self):
        return self.d.cap - self.d.nout < MAX_PER_PACKET

    def take(self):
        """The records decoded so far, as a numpy array of the record dtype; the output restarts."""
        cdef Py_ssize_t n = self.d.nout
        out = self.out_array[:n].copy()
        self.d.nout = 0
        return out

    def flush(self):
        """End of input: open dialogues go out as timed out. Returns True while more remain
        (the output filled up first): take() and call again."""
        cdef Dialogues *t = &self.d.dlg
        cdef Dlg *e
        cdef Tunnel *tun
        while t.pool.head >= 0:
            if self.d.cap - self.d.nout < 1:
                return True
            e = &t.e[t.pool.head]
            anomaly(self.d, timeout_anomaly(e), NULL)
            dlg_emit(self.d, e, TP_F_TIMEOUT)
            dlg_release(t, e)
        self.d.pkt.ts_ns = self.d.last_ts
        while self.d.tun.pool.head >= 0:              # what the tunnels counted since their last record
            if self.d.cap - self.d.nout < 1:
                return True
            tun = &self.d.tun.e[self.d.tun.pool.head]
            usage_emit(self.d, tun)
            tunnel_release(self.d, tun)
        return False

    def truncated(self, Py_ssize_t leftover):
        """The file ended with leftover bytes of an incomplete record."""
        if leftover > 0 and not self.d.fatal:
            self.d.anomalies[AN_CAP_TRUNCATED] += 1

    @property
    def error(self):
        """(anomaly code, file offset) of the error that stopped the file, or None."""
        if not self.d.fatal:
            return None
        return self.d.fatal, self.d.fatal_off

    @property
    def frames(self):
        return self.d.frame

    @property
    def file_offset(self):
        return self.d.file_off

    def counters(self):
        """Raw counters: frames, bytes, records, per-layer in/ok, per-anomaly counts, recent anomalies."""
        cdef Py_ssize_t i
        cdef Py_ssize_t nrec = <Py_ssize_t>min(self.d.nrecent, <uint64_t>RECENT)
        recent = []
        for i in range(nrec):
            r = &self.d.recent[(self.d.nrecent - nrec + i) % RECENT]
            recent.append((r.frame, r.code, r.offset))
        return {
            "frames": self.d.frame,
            "bytes": self.d.bytes,
            "records": self.d.records,
            "layer_in": [self.d.layer_in[i] for i in range(L_COUNT)],
            "layer_ok": [self.d.layer_ok[i] for i in range(L_COUNT)],
            "anomalies": [self.d.anomalies[i] for i in range(AN_COUNT)],
            "recent": recent,
            "dialogues_open": self.d.dlg.pool.live,
            "tunnels": self.d.tun.pool.live,
        }
