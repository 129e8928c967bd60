"""The campaign schema: what one campaign file of a rules folder says, and its reader.

    c = read_campaign(doc, root, places, columns, policy)    # a Campaign, or None: see doc.errors
    c.trigger.mask(col)                                       # which candidate rows trigger it
    c.message.render({"brand": "Acme"})

The format is docs/rules.md; the fields a condition may name are control/fields.py.
"""
import json
import os
import re
import string
from dataclasses import dataclass

import numpy as np
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from touchpoint.probe.record import subject_hash

from . import fields as F
from .channel_settings import CHANNELS, required, resolve
from .conditions import Conditions
from .places import Places
from .policyfile import Policy, reply_word
from .predicates import AllOf, Digits, Pred
from .schedule import Schedule, in_windows, read_schedule, read_windows
from .yamldoc import BAD, CONTROL, LIST_NAME, TEMPLATE_FIELD, Doc, line_of, one_of, suggest

STATUSES = ("draft", "active", "paused")
SEND_MODES = ("auto", "approve")
DEFAULT_WINDOW_S = 48 * 3600
DEFAULT_DWELL_MINUTES = 30
DEFAULT_CF_WITHIN_S = 72 * 3600

SOURCE = re.compile(r"\d{1,20}\Z|[A-Za-z0-9 ]{1,11}\Z")


@dataclass(frozen=True)
class Trigger:
    event: str
    where: Pred                     # on the event's, the record's and the state's fields
    minutes: int = 0                # area_dwell: the dwell time
    within_s: int = 0               # cf_then_power_on: seconds from setting the forwarding
    numbers: tuple = ()             # hotline_call: the numbers ('10086', '95*'), also tested by `where`

    def mask(self, col, n=None) -> np.ndarray:
        return self.where.mask(col, n)


@dataclass(frozen=True)
class Contacted:
    """Contact history: a message of `campaign` was sent to the subscriber (within `within_s`
    before now; 0: ever), and it converted or not, was replied to or not (None: either)."""
    campaign: str
    within_s: int = 0
    converted: bool | None = None
    replied: bool | None = None
    line: int = 0

    def __str__(self) -> str:
        w = self.within_s
        span = f"{w // 86400}d" if w % 86400 == 0 else f"{w // 3600}h" if w % 3600 == 0 else f"{w // 60}m"
        what = [f"contacted by {self.campaign}" + (f" in {span}" if w else "")]
        what += [("" if v else "not ") + k for k, v in (("converted", self.converted), ("replied", self.replied))
                 if v is not None]
        return ", ".join(what)


@dataclass(frozen=True)
class Audience:
    lists: tuple = ()               # in at least one of these lists (none named: anyone)
    where: Pred | None = None       # None: no condition
    contacted: tuple = ()           # Contacted: each must hold (in an exclusion: any excludes)


@dataclass(frozen=True)
class Slide:
    """One page of a picture message: a text template, an image (its bytes, read with the rules)."""
    text: str = ""
    image: bytes = b""
    image_name: str = ""            # its file name


@dataclass(frozen=True)
class Message:
    channel: str                    # sms | http | file | mms; "": the policy's default channel
    text: str                       # "" for a picture message of slides only
    fields: tuple = ()              # the templates' {names}, in order of first use
    source: str = ""                # the SMPP source address / service code ("": the channel's)
    subject: str = ""               # a picture message's subject (template)
    slides: tuple = ()              # its pages (Slide)

    def render(self, values: dict) -> str:
        """The text with each {name} replaced by str(values[name]); nothing else is looked up,
        so no attribute or index of a value is ever reached ({x.__class__} cannot be written:
        `rules check` refuses it). Control characters of a value (a list's cell with an escape or a
        NUL) never reach the subscriber. KeyError names a field without a value. A picture message
        is JSON: {"subject": ..., "slides": [text, ...]}, its images left with the campaign."""
        if not self.slides:
            return render(self.text, values)
        return json.dumps({"subject": render(self.subject, values),
                           "slides": [render(s.text, values) for s in self.slides]}, ensure_ascii=False)


def render(template: str, values: dict) -> str:
    return TEMPLATE.sub(lambda m: m.group(0)[0] if m.group(1) is None
                        else CONTROL.sub("", str(values[m.group(1)])), template)


TEMPLATE = re.compile(r"\{\{|\}\}|\{([a-z_][a-z0-9_]*)\}")


@dataclass(frozen=True)
class Goal:
    event: str                      # a scenario event ("": a conversion of an imported list)
    within_s: int                   # seconds after the message (held out: after the decision)
    where: Pred
    list: str = ""                  # an imported list of conversions (msisdn, product, time)
    product: str = ""               # only its rows of this product ("": any)
    reply: tuple = ()               # a reply to the message with one of these words (policy.reply_word)


@dataclass(frozen=True)
class Forwards:
    """`track_forwards`: the seed MMS whose forwards control.forwards follows through the network."""
    subject_hash: int               # of its subject (probe.record.subject_hash); 0: by its size alone
    size: int = 0                   # its bytes: a notification without a subject matches within tolerance
    tolerance: float = 0.05
    sender: str = ""                # the address it comes from: its recipients are generation 0


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    status: str
    trigger: Trigger | None         # None: a scheduled campaign only
    audience: Audience
    exclude: Audience
    message: Message
    valid_from_ns: int | None = None    # since the epoch, inclusive
    valid_until_ns: int | None = None   # since the epoch, exclusive (a date `until` is its whole day)
    window_s: int = DEFAULT_WINDOW_S      # the message goes out at most this long after the trigger
    priority: int = 0
    holdout: float = 0.0            # a fraction, 0.1 for 10%
    goal: Goal | None = None
    send: str = "auto"
    cooldown_s: int = 0             # no second message of this campaign to a subscriber within it (0: none)
    quota: int = 0                  # messages a day, in the policy's time zone (0: no quota)
    schedule: Schedule | None = None    # sends to its whole audience at these times (control.schedule)
    send_window: tuple = ()         # ((from, to) minutes after local midnight, ...): when it may go out
    replies: tuple = ()             # the reply words the message asks for: kept and counted by word
    forwards: Forwards | None = None    # track_forwards: the seed's forwards are followed
    file: str = ""
    line: int = 0

    def valid_at(self, ts_ns) -> np.ndarray:
        """Mask of event times inside the validity period."""
        ts = np.asarray(ts_ns, np.int64)
        m = np.ones(ts.shape, bool)
        if self.valid_from_ns is not None:
            m &= ts >= self.valid_from_ns
        if self.valid_until_ns is not None:
            m &= ts < self.valid_until_ns
        return m

    def field_names(self) -> tuple:
        """What a trigger shows: the event's own fields, then those the conditions test."""
        names = list(F.EVENTS[self.trigger.event].fields) if self.trigger is not None else []
        for pred in (self.trigger.where if self.trigger is not None else None, self.audience.where):
            names += sorted(pred.fields - set(names)) if pred is not None else []
        # and what the message's template needs (the trigger names the subscriber itself)
        names += [n for n in self.message.fields if n not in names and n not in TRIGGER_KEYS]
        return tuple(names)


TRIGGER_KEYS = ("imsi", "msisdn", "campaign")       # a template field every trigger gives


# --- reading a campaign file ----------------------------------------------------------------------

CAMPAIGN_KEYS = ("id", "name", "status", "valid", "trigger", "audience", "exclude", "window", "message",
                 "priority", "holdout", "goal", "send", "cooldown", "quota", "schedule", "send_window", "replies",
                 "track_forwards")
CAMPAIGN_HINTS = {"when": "the scenario goes under trigger.event", "event": "put it under trigger: {event: ...}",
                  "text": "put it under message: {text: ...}", "lists": "put it under audience: {lists: [...]}"}


def read_campaign(doc: Doc, root, places: Places | None, columns, policy: Policy | None = None) -> Campaign | None:
    """The campaign of a file's root node, or None when anything in it is wrong (see doc.errors).
    places and columns (control.rules.Lists, None: lists not known) check what conditions name;
    policy, the channels a message may name (None: the defaults)."""
    policy = policy if policy is not None else Policy()
    top = doc.mapping(root, "", CAMPAIGN_KEYS, required=("id", "message"), hints=CAMPAIGN_HINTS)
    if top is None:
        return None
    if "trigger" not in top and "schedule" not in top:
        doc.err(root, "trigger", "missing: a campaign has a trigger (an event), a schedule, or both")
    cond = Conditions(doc, places, columns, (name for name, _ in policy.lifecycle))
    get = lambda key, fn, default: fn(top[key], key) if key in top else default
    cid = get("id", lambda n, p: doc.name(n, p, "an id of lower-case letters, digits, _ and -"), BAD)
    name = get("name", doc.scalar, cid if isinstance(cid, str) else "")
    status = get("status", lambda n, p: doc.choice(n, p, STATUSES), "draft")
    valid_from = valid_until = None
    if "valid" in top:
        v = doc.mapping(top["valid"], "valid", ("from", "until"))
        if v:
            valid_from = doc.time(v["from"], "valid.from") if "from" in v else None
            valid_until = doc.time(v["until"], "valid.until", end=True) if "until" in v else None
            if isinstance(valid_from, int) and isinstance(valid_until, int) and valid_from >= valid_until:
                doc.err(v["until"], "valid.until", "is not after valid.from")
    trigger = _trigger(doc, top["trigger"], cond, places) if "trigger" in top else None
    schedule = read_schedule(doc, top["schedule"]) if "schedule" in top else None
    send_window = read_windows(doc, top["send_window"]) if "send_window" in top else ()
    if send_window not in (BAD, ()) and policy.quiet and \
            not any(in_windows(send_window, m) and not in_windows((policy.quiet,), m) for m in range(1440)):
        doc.err(top["send_window"], "send_window", "wholly inside policy.yaml's quiet hours: nothing would go out")
    audience = _audience(doc, top["audience"], "audience", cond, columns) if "audience" in top else Audience()
    exclude = _audience(doc, top["exclude"], "exclude", cond, columns) if "exclude" in top else Audience()
    window = get("window", doc.duration, DEFAULT_WINDOW_S)
    message = _message(doc, top["message"], columns, policy) if "message" in top else BAD
    priority = get("priority", doc.integer, 0)
    holdout = get("holdout", doc.percent, 0.0)
    goal = _goal(doc, top["goal"], cond, columns) if "goal" in top else None
    send = get("send", lambda n, p: doc.choice(n, p, SEND_MODES), "auto")
    cooldown = get("cooldown", doc.duration, 0)
    quota = get("quota", lambda n, p: doc.integer(n, p, 1), 0)
    replies = get("replies", lambda n, p: _reply_words(doc, n, p) or BAD, ())
    forwards = _forwards(doc, top["track_forwards"], message, policy) if "track_forwards" in top else None
    if trigger is not BAD and message is not BAD:
        _check_template(doc, top["message"], message, trigger.event if trigger else None, audience, columns)
    parts = (cid, name, status, trigger, audience, exclude, message, valid_from, valid_until, window, priority,
             holdout, goal, send, cooldown, quota, schedule, send_window, replies, forwards)
    if doc.errors or any(p is BAD for p in parts):
        return None
    return Campaign(*parts, file=doc.file, line=line_of(root))


def _trigger(doc, node, cond, places) -> Trigger:
    event_node = next((v for k, v in node.value if getattr(k, "value", None) == "event"), None) \
        if isinstance(node, MappingNode) else None
    if getattr(event_node, "value", None) == "schedule":
        return doc.err(event_node, "trigger.event", "a scheduled campaign says when under schedule: {at: "
                                                    "[\"12:00\"], days: [weekdays]}, beside or instead of a trigger")
    event = doc.choice(event_node, "trigger.event", F.EVENTS, "a scenario event") if event_node is not None else BAD
    # With the event unknown, every event's settings are let through: one error, not a cascade.
    params = F.EVENTS[event].params if event is not BAD else tuple(p for e in F.EVENTS.values() for p in e.params)
    keys = ("event", "where", *params)
    top = doc.mapping(node, "trigger", keys, required=("event",))
    if top is None or event is BAD:
        return BAD
    fields = F.trigger_fields(event)
    where = cond.where(top["where"], "trigger.where", fields, "trigger") if "where" in top else AllOf(())
    minutes = within = 0
    numbers = ()
    if event == "area_dwell":
        minutes = doc.integer(top["minutes"], "trigger.minutes", 1) if "minutes" in top else DEFAULT_DWELL_MINUTES
    if event == "cf_then_power_on":
        within = doc.duration(top["within"], "trigger.within") if "within" in top else DEFAULT_CF_WITHIN_S
    if event == "hotline_call":
        numbers, number_pred = _numbers(doc, node, top, places, fields["number"])
        if number_pred is BAD:
            return BAD
        where = AllOf((number_pred, *where.parts))
    if BAD in (minutes, within):
        return BAD
    return Trigger(event, where, minutes, within, numbers)


def _numbers(doc, node, top, places, number_field):
    """hotline_call: the numbers of the named hotlines and the trigger's own numbers, compiled
    into a test on the `number` field."""
    numbers = []
    if "hotlines" in top:
        for i, n in enumerate(doc.items(top["hotlines"], "trigger.hotlines")):
            path = "trigger.hotlines" if not isinstance(top["hotlines"], SequenceNode) else f"trigger.hotlines[{i}]"
            name = doc.scalar(n, path)
            if name is BAD:
                continue
            if places is None:
                doc.err(n, path, "hotlines are named in places.yaml, which is missing")
            elif name not in places.hotlines:
                doc.err(n, path, f"{name!r} is not a hotline in places.yaml"
                                 f"{suggest(name, places.hotlines) or ' (' + one_of(places.hotlines) + ')'}")
            else:
                numbers += places.hotlines[name]
    if "numbers" in top:
        for i, n in enumerate(doc.items(top["numbers"], "trigger.numbers")):
            d = doc.digits(n, f"trigger.numbers[{i}]")
            if d is not BAD:
                numbers.append(d[0] + ("*" if d[1] else ""))
    if "hotlines" not in top and "numbers" not in top:
        return (), doc.err(node, "trigger", "hotline_call needs hotlines (names from places.yaml) or numbers")
    if not numbers:
        return (), BAD
    values = [(n.rstrip("*"), n.endswith("*")) for n in numbers]
    return tuple(numbers), Digits.of(number_field.name, number_field.width, values, f"number in [{', '.join(numbers)}]")


def _audience(doc, node, path, cond, columns) -> Audience:
    top = doc.mapping(node, path, ("lists", "where", "contacted"))
    if top is None:
        return BAD
    contacted = _contacted(doc, top["contacted"], f"{path}.contacted") if "contacted" in top else ()
    if contacted is BAD:
        return BAD
    lists = ()
    if "lists" in top:
        lists = tuple(doc.name(n, f"{path}.lists", "a list name", LIST_NAME)
                      for n in doc.items(top["lists"], f"{path}.lists"))
        if columns is not None:
            for n, name in zip(doc.items(top["lists"], f"{path}.lists"), lists):
                if name is not BAD and name not in columns.lists:
                    doc.err(n, f"{path}.lists", f"no list {name!r} is imported{suggest(name, columns.lists)}")
        if BAD in lists:
            return BAD
    where = cond.where(top["where"], f"{path}.where", F.audience_fields(), "audience") if "where" in top else None
    return Audience(lists, where, contacted)


def _contacted(doc, node, path):
    """`contacted: {campaign: lunch-offer, within: 7d, converted: false, replied: false}`, or a list of them."""
    items = node.value if isinstance(node, SequenceNode) else [node]
    out = []
    for i, item in enumerate(items):
        p = path if len(items) == 1 and not isinstance(node, SequenceNode) else f"{path}[{i}]"
        top = doc.mapping(item, p, ("campaign", "within", "converted", "replied"), required=("campaign",))
        if top is None or "campaign" not in top:
            return BAD
        kw = {"campaign": doc.name(top["campaign"], f"{p}.campaign", "a campaign id")}
        if "within" in top:
            kw["within_s"] = doc.duration(top["within"], f"{p}.within")
        for key in ("converted", "replied"):
            if key in top:
                v = doc.scalar(top[key], f"{p}.{key}")
                kw[key] = {"true": True, "false": False}.get(v, BAD)
                if kw[key] is BAD and v is not BAD:
                    doc.err(top[key], f"{p}.{key}", f"{v!r} is not true or false")
        if BAD in kw.values():
            return BAD
        out.append(Contacted(**kw, line=line_of(item)))
    return tuple(out)


def _message(doc, node, columns, policy: Policy) -> Message:
    top = doc.mapping(node, "message", ("channel", "text", "source", "subject", "slides"))
    if top is None:
        return BAD
    channel = doc.choice(top["channel"], "message.channel", CHANNELS) if "channel" in top else ""
    if channel not in (BAD, "") and channel != "file" and channel not in policy.channels:
        doc.err(top["channel"], "message.channel", f"{channel} has no settings in policy.yaml "
                                                   f"(channels.{channel}.{required(channel)[0]})")
    source = doc.scalar(top["source"], "message.source") if "source" in top else ""
    if source not in (BAD, "") and not SOURCE.match(source):
        source = doc.err(top["source"], "message.source", f"{source!r} is not a source address: up to 20 digits "
                                                          "(a service code, 10658000) or up to 11 letters and digits")
    mms = (channel or policy.channel) == "mms"
    for key in ("subject", "slides"):
        if key in top and not mms:
            doc.err(top[key], f"message.{key}", "is for a picture message: channel: mms")
    if "text" not in top and "slides" not in top:
        return doc.err(node, "message", "missing: text" + (" or slides" if mms else ""))
    names = []
    text = _template(doc, top["text"], "message.text", names) if "text" in top else ""
    subject = _template(doc, top["subject"], "message.subject", names, empty=True) if "subject" in top else ""
    slides = _slides(doc, top["slides"], names) if "slides" in top and mms else ()
    if mms and text not in (BAD, "") and slides is not BAD:
        slides = (*slides, Slide(text))     # a text beside the slides: the last page
    if BAD in (text, channel, source, subject, slides):
        return BAD
    message = Message(channel, text if not mms else "", tuple(names), source, subject, tuple(slides))
    if mms:
        _check_size(doc, node, message, policy)
    return message


def _template(doc, node, path, names: list, empty: bool = False):
    """A template's text, its {names} added to `names`; BAD when it is not one."""
    text = doc.scalar(node, path)
    if text is BAD:
        return BAD
    if not text.strip() and not empty:
        return doc.err(node, path, "empty")
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        return doc.err(node, path, f"{e}: write {{{{ and }}}} for literal braces")
    for _, fname, spec, conv in parsed:
        if fname is None:
            continue
        if not TEMPLATE_FIELD.match(fname) or spec or conv:
            written = f"{{{fname}{'!' + conv if conv else ''}{':' + spec if spec else ''}}}"
            return doc.err(node, path, f"{written} is not a field name like {{brand}}")
        if fname not in names:
            names.append(fname)
    return text


IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8")     # JPEG, PNG, GIF


def _slides(doc, node, names: list):
    """`slides: [{image: images/lunch.jpg, text: ...}, ...]`: each image a file beside the rules
    (its path relative to the campaign's file), read now."""
    if not isinstance(node, SequenceNode) or not node.value:
        return doc.err(node, "message.slides", "must be a list of {image: FILE, text: ...}")
    out = []
    for i, item in enumerate(node.value):
        path = f"message.slides[{i}]"
        top = doc.mapping(item, path, ("image", "text"))
        if top is None:
            return BAD
        if not top:
            return doc.err(item, path, "an empty slide: give it an image, a text or both")
        text = _template(doc, top["text"], f"{path}.text", names) if "text" in top else ""
        image, name = b"", ""
        if "image" in top:
            name = doc.scalar(top["image"], f"{path}.image")
            if name is BAD:
                return BAD
            file = os.path.join(os.path.dirname(doc.file), name)
            try:
                with open(file, "rb") as f:
                    image = f.read(MAX_IMAGE + 1)
            except OSError as e:
                return doc.err(top["image"], f"{path}.image", f"{name}: {e.strerror}")
            if len(image) > MAX_IMAGE:
                return doc.err(top["image"], f"{path}.image", f"{name} is over {MAX_IMAGE >> 20} MB")
            if not image.startswith(IMAGE_MAGIC):
                return doc.err(top["image"], f"{path}.image", f"{name} is not a JPEG, PNG or GIF image")
        if text is BAD:
            return BAD
        out.append(Slide(text, image, os.path.basename(name)))
    return tuple(out)


MAX_IMAGE = 8 << 20


def _check_size(doc, node, message, policy: Policy) -> None:
    """A picture message over the MMSC's maximum (channels.mms.max_size) would be refused: the
    size as the MMSC counts it, with each template as written (a value may make it longer)."""
    from .mm7 import Slide as Page, Submit, size
    limit = resolve("mms", policy.channels.get("mms") or {"url": "http://x"})["max_size"]
    pages = [Page(s.text, s.image, image_name=s.image_name) for s in message.slides]
    n = size(Submit("", "", "", "", "", [], message.subject, pages))
    if n > limit:
        doc.err(node, "message", f"the picture message is {n:,} bytes, over channels.mms.max_size ({limit:,})")


def _check_template(doc, node, message, event, audience, columns) -> None:
    """Every {field} must have a source: the trigger (imsi, msisdn, campaign), the event's,
    the record's or the state's fields, the TAC table, or a column of the audience's lists
    (any name not built in, while the lists are not known; none when the audience names no list)."""
    text_node = next((v for k, v in node.value if getattr(k, "value", None) == "text"), node)
    built_in = {**(F.trigger_fields(event) if event else F.STATE_FIELDS), **F.AUDIENCE_FIELDS}
    lists = audience.lists if audience is not BAD else ()
    for fname in message.fields:
        if fname in built_in or fname in TRIGGER_KEYS:
            continue
        if not lists:
            why = "no source gives it: not a field of the event, and the audience names no list"
        elif columns is None:
            if not suggest(fname, built_in, cutoff=0.75):
                continue            # a column of the audience's lists, known once they are imported
            why = "not a field"
        elif fname in columns:
            continue
        else:
            why = "not a column of the imported lists"
        events = [e.name for e in F.EVENTS.values() if fname in e.fields]
        if events:
            why = f"a field of {one_of(events)}, not of {event or 'a scheduled send'}"
        doc.err(text_node, "message.text", f"{{{fname}}}: {why}{suggest(fname, [*built_in, *(columns or ())])}")


def _forwards(doc, node, message, policy: Policy) -> Forwards:
    """`track_forwards: true` (this MMS campaign's subject, the same for everyone, from its source)
    or `{subject, size, tolerance, from}` of a seed another system sent."""
    path = "track_forwards"
    if isinstance(node, ScalarNode):
        v = doc.scalar(node, path)
        if v is BAD or message is BAD:
            return BAD
        if v.lower() not in ("true", "yes"):
            return doc.err(node, path, f"{v!r}: true, or the seed's {{subject, size, tolerance, from}}")
        if not message.slides:
            return doc.err(node, path, "true follows this campaign's picture message: channel: mms, with a subject")
        if TEMPLATE.search(message.subject) or not subject_hash(message.subject):
            return doc.err(node, path, "true needs a subject without {fields}, the same for every recipient, to "
                                       "know its forwards by")
        sender = message.source or policy.channels.get("mms", {}).get("source", "")
        return Forwards(subject_hash(message.subject), sender=str(sender))
    top = doc.mapping(node, path, ("subject", "size", "tolerance", "from"))
    if top is None:
        return BAD
    subject = doc.scalar(top["subject"], f"{path}.subject") if "subject" in top else ""
    size = doc.integer(top["size"], f"{path}.size", 1) if "size" in top else 0
    tolerance = doc.percent(top["tolerance"], f"{path}.tolerance") if "tolerance" in top else 0.05
    sender = doc.scalar(top["from"], f"{path}.from") if "from" in top else ""
    if BAD in (subject, size, tolerance, sender):
        return BAD
    if not subject_hash(subject) and not size:
        return doc.err(node, path, "names the seed by its subject, its size, or both")
    return Forwards(subject_hash(subject), size, tolerance, sender)


def _reply_words(doc, node, path: str) -> tuple:
    """`[Y, 是]`: words as a reply is compared with them (policyfile.reply_word); () when wrong."""
    words = tuple(reply_word(w) for n in doc.items(node, path) if (w := doc.scalar(n, path)) is not BAD)
    if any(not w for w in words):
        doc.err(node, path, "an empty reply word")
        return ()
    return words


def _goal(doc, node, cond, columns=None) -> Goal:
    """`{event, within, where}`, `{list, product, within}` (a conversion imported from billing),
    or `{reply: [Y, 是], within}` (a reply to the message with one of the words)."""
    top = doc.mapping(node, "goal", ("event", "within", "where", "list", "product", "reply"), required=("within",))
    if top is None or "within" not in top:
        return BAD
    within = doc.duration(top["within"], "goal.within")
    kinds = [k for k in ("event", "list", "reply") if k in top]
    if len(kinds) != 1:
        return doc.err(node, "goal", f"names one of an event, a list of conversions (list:) or reply words (reply:), "
                                     f"not {' and '.join(kinds)}" if kinds else
                       "missing: an event, a list of conversions (list:) or reply words (reply:)")
    if "reply" in top:
        for key in ("where", "product"):
            if key in top:
                doc.err(top[key], f"goal.{key}", "a reply goal takes its words and within")
        words = _reply_words(doc, top["reply"], "goal.reply")
        if within is BAD or not words:
            return BAD
        return Goal("", within, AllOf(()), reply=words)
    if "list" in top:
        for key in ("where",):
            if key in top:
                doc.err(top[key], f"goal.{key}", "a goal of a list takes product and within, not where")
        name = doc.name(top["list"], "goal.list", "a list name", LIST_NAME)
        product = doc.scalar(top["product"], "goal.product") if "product" in top else ""
        if columns is not None and name is not BAD:
            if name not in columns.lists:
                doc.err(top["list"], "goal.list", f"no list {name!r} is imported{suggest(name, columns.lists)}")
            elif "time" not in columns.names or (product and "product" not in columns.names):
                doc.err(top["list"], "goal.list", "a list of conversions has the columns msisdn, product and time")
        if BAD in (name, product, within):
            return BAD
        return Goal("", within, AllOf(()), list=name, product=product)
    if "product" in top:
        doc.err(top["product"], "goal.product", "only a goal of a list (list:) has a product")
    event = doc.choice(top["event"], "goal.event", F.EVENTS, "a scenario event")
    if event is BAD:
        return BAD
    where = cond.where(top["where"], "goal.where", F.trigger_fields(event), "trigger") if "where" in top else AllOf(())
    return BAD if within is BAD else Goal(event, within, where)
