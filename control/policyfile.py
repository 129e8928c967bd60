"""The policy.yaml schema: a rules folder's contact policy settings, and their reader.

    policy = read_policy(doc, root)   # a Policy; what is wrong is in doc.errors

control.policy applies these settings at run time; the channels' own settings are checked
against their declarations (control.channel_settings).
"""
import re
import unicodedata
from dataclasses import dataclass, field
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from yaml.nodes import MappingNode, SequenceNode

from .channel_settings import CHANNELS, SETTINGS, required
from .lifecycle import DEFAULT_SERVICES, default_lifecycle, read_lifecycle, read_services
from .yamldoc import BAD, CONTROL, LIST_NAME, NUMBER, Doc, one_of, suggest

POLICY_FILES = ("policy.yaml", "policy.yml")

DEFAULT_CAPS = ((86400, 1), (7 * 86400, 3))         # ((per seconds, at most), ...)
DEFAULT_OPTOUT_KEYWORDS = ("TD", "退订", "T", "STOP")


@dataclass(frozen=True)
class Policy:
    """policy.yaml: the contact policy's settings (control.policy applies them); these defaults
    when the rules directory has none."""
    timezone: str = "UTC"
    caps: tuple = DEFAULT_CAPS      # ((per seconds, at most), ...)
    quiet: tuple | None = None      # (from, to) in minutes after local midnight; from > to spans midnight
    arbitration_s: int = 60
    channel: str = "file"           # the channel of a message that names none
    channels: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))  # name -> {setting: value}
    optout_lists: tuple = ()
    optout_keywords: tuple = DEFAULT_OPTOUT_KEYWORDS
    country_code: str = ""          # put in front of MO senders in national format
    data_services: MappingProxyType = field(default_factory=lambda: DEFAULT_SERVICES)   # service -> APNs
    lifecycle: tuple = field(default_factory=default_lifecycle)     # ((segment, where), ...): the first holds
    lifecycle_lists: tuple = ()     # the imported lists whose columns the lifecycle reads
    file: str = ""

    @property
    def tz(self):
        return ZoneInfo(self.timezone)


# --- reading policy.yaml -------------------------------------------------------------------------

POLICY_KEYS = ("timezone", "caps", "quiet", "arbitration", "channel", "channels", "optout_lists", "optout_keywords",
               "country_code", "data_services", "lifecycle", "lifecycle_lists")


def reply_word(text: str) -> str:
    """An MO text as opt-out keywords and reply goals compare it: full-width folded (NFKC: "Ｙ"
    is "Y"), case and the spaces around ignored."""
    return unicodedata.normalize("NFKC", text).strip().casefold()


def read_policy(doc: Doc, root, places=None, columns=None) -> Policy:
    """places and columns (control.rules.Lists, None: lists not known) check what the lifecycle names."""
    top = doc.mapping(root, "", POLICY_KEYS)
    if top is None:
        return Policy(file=doc.file)
    kw = {}
    if "timezone" in top:
        tz = doc.scalar(top["timezone"], "timezone")
        try:
            if tz is not BAD:
                ZoneInfo(tz)
                kw["timezone"] = tz
        except (ZoneInfoNotFoundError, ValueError):
            doc.err(top["timezone"], "timezone", f"{tz!r} is not a time zone name like Asia/Shanghai or UTC")
    if "caps" in top:
        kw["caps"] = _caps(doc, top["caps"])
    if "quiet" in top:
        q = doc.mapping(top["quiet"], "quiet", ("from", "to"), required=("from", "to")) or {}
        ends = [doc.clock_time(q[k], f"quiet.{k}") for k in ("from", "to") if k in q]
        if len(ends) == 2 and BAD not in ends:
            if ends[0] == ends[1]:
                doc.err(q["to"], "quiet.to", "is the same time as quiet.from: leave quiet out for no quiet hours")
            kw["quiet"] = tuple(ends)
    if "arbitration" in top:
        kw["arbitration_s"] = doc.duration(top["arbitration"], "arbitration", zero=True)
    channels = _channels(doc, top["channels"]) if "channels" in top else {}
    kw["channels"] = MappingProxyType(channels)
    if "channel" in top:
        kw["channel"] = doc.choice(top["channel"], "channel", CHANNELS)
        if kw["channel"] not in (BAD, "file") and kw["channel"] not in channels:
            doc.err(top["channel"], "channel", f"{kw['channel']} has no settings under channels")
    for key in ("optout_lists", "lifecycle_lists"):
        if key in top and not (isinstance(top[key], SequenceNode) and not top[key].value):
            kw[key] = tuple(doc.name(n, key, "a list name", LIST_NAME) for n in doc.items(top[key], key))
    if "data_services" in top:
        kw["data_services"] = read_services(doc, top["data_services"])
    if "lifecycle" in top:
        kw["lifecycle"] = read_lifecycle(doc, top["lifecycle"], places, columns)
    if "optout_keywords" in top:
        kw["optout_keywords"] = tuple(doc.scalar(n, "optout_keywords")
                                      for n in doc.items(top["optout_keywords"], "optout_keywords"))
        if any(k is not BAD and not k.strip() for k in kw["optout_keywords"]):
            doc.err(top["optout_keywords"], "optout_keywords", "an empty keyword")
    if "country_code" in top:
        cc = doc.scalar(top["country_code"], "country_code")
        if cc is not BAD and not (cc.isascii() and cc.isdigit() and len(cc) <= 3):
            cc = doc.err(top["country_code"], "country_code", f"{cc!r} is not a country code: 1 to 3 digits, like 86")
        kw["country_code"] = cc
    if any(v is BAD or (isinstance(v, tuple) and BAD in v) for v in kw.values()):
        return Policy(file=doc.file)
    return Policy(**kw, file=doc.file)


def _caps(doc, node) -> tuple:
    if not isinstance(node, SequenceNode):
        doc.err(node, "caps", "must be a list of {per: 1d, max: 1}")
        return BAD
    caps = []
    for i, item in enumerate(node.value):
        m = doc.mapping(item, f"caps[{i}]", ("per", "max"), required=("per", "max")) or {}
        if "per" in m and "max" in m:
            cap = (doc.duration(m["per"], f"caps[{i}].per"), doc.integer(m["max"], f"caps[{i}].max", 1))
            if BAD not in cap:
                caps.append(cap)
    return tuple(sorted(caps))


def _channels(doc, node) -> dict:
    """channels: {name: settings}, each channel's checked against its declaration."""
    channels = {}
    for knode, vnode in doc.named(node, "channels"):
        name = knode.value
        if name not in SETTINGS:
            doc.err(knode, f"channels.{name}", f"{name!r} is not a channel ({one_of(SETTINGS)})"
                                               f"{suggest(name, SETTINGS)}")
            continue
        channels[name] = MappingProxyType(_channel_settings(doc, name, vnode))
    return channels


def _channel_settings(doc, name, node) -> dict:
    known = SETTINGS[name]
    top = doc.mapping(node, f"channels.{name}", tuple(known), required=required(name))
    out = {}
    for key, vnode in (top or {}).items():
        path, kind = f"channels.{name}.{key}", known[key].kind
        if isinstance(kind, tuple):
            v = doc.choice(vnode, path, kind)
        elif kind == "port":
            v = doc.integer(vnode, path, 1, 65535)
        elif kind == "count":
            v = doc.integer(vnode, path, 1)
        elif kind == "duration":
            v = doc.duration(vnode, path)
        elif kind == "headers":
            v = _headers(doc, vnode, path)
        else:
            v = doc.scalar(vnode, path)
            if v is not BAD and kind == "rate":
                v = float(v) if NUMBER.match(v.strip()) and float(v) > 0 else \
                    doc.err(vnode, path, f"{v!r} is not a rate in messages a second (a number above 0)")
            elif v is not BAD and kind == "url" and not re.match(r"https?://[^\s/]+", v):
                v = doc.err(vnode, path, f"{v!r} is not an http:// or https:// URL")
            elif v is not BAD and kind == "address" and not re.fullmatch(r"[^\s:]+:\d{1,5}", v.strip()):
                v = doc.err(vnode, path, f"{v!r} is not HOST:PORT (127.0.0.1:8790)")
        if v is not BAD and v is not None:
            out[key] = v
    return out


HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")       # an HTTP token (RFC 9110)


def _headers(doc, vnode, path):
    """header: value pairs that http.client will send: a token, and one line of text."""
    if not isinstance(vnode, MappingNode):
        return doc.err(vnode, path, "must be a mapping of header: value")
    out = {}
    for k, n in vnode.value:
        name, v = k.value, doc.scalar(n, f"{path}.{k.value}")
        if not HEADER_NAME.match(name):
            doc.err(k, path, f"{name!r} is not a header name (letters, digits and -)")
        elif v is not BAD and CONTROL.search(v):
            doc.err(n, f"{path}.{name}", "has a control character (CR, LF, ...): a header value is one line of text")
        elif v is not BAD:
            out[name] = v
    return out
