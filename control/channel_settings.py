"""The channels' settings, declared once: what policy.yaml may give each channel under `channels:`.

    SETTINGS["sms"]["port"]           # Setting(kind='port', default=2775, required=False)
    resolve("file", {})               # {'path': 'sent.jsonl', 'rate': None}

The policy reader (control.policyfile) checks policy.yaml against these declarations;
make_channel (control.channels) fills in their defaults and builds the channel. This module
imports none of the channels' code (SMPP, HTTP): reading rules does not load it.
"""
from dataclasses import dataclass
from types import MappingProxyType

MM7_NAMESPACES = ("REL-5-MM7-1-0", "REL-5-MM7-1-2", "REL-6-MM7-1-0", "REL-6-MM7-1-4")   # control.mm7.NAMESPACES


@dataclass(frozen=True)
class Setting:
    kind: object                    # text, port, count, rate, url, headers, duration, address, or choices
    default: object = None          # what the channel uses when policy.yaml gives none
    required: bool = False


SETTINGS = MappingProxyType({
    "sms": MappingProxyType({       # SMPP 3.4 to an SMSC (control.channels.SmppChannel)
        "host": Setting("text", required=True),
        "port": Setting("port", 2775),
        "system_id": Setting("text", required=True),
        "password": Setting("text", ""),
        "system_type": Setting("text", ""),
        "bind": Setting(("transceiver", "transmitter"), "transceiver"),
        "window": Setting("count", 64),
        "rate": Setting("rate"),
        "source": Setting("text", ""),
    }),
    "http": MappingProxyType({      # JSON POSTs to a gateway (control.channels.HttpChannel)
        "url": Setting("url", required=True),
        "headers": Setting("headers"),
        "timeout": Setting("duration", 10),
        "rate": Setting("rate"),
    }),
    "mms": MappingProxyType({       # MM7 to an MMSC (control.mms.MmsChannel)
        "url": Setting("url", required=True),          # the MMSC's MM7 endpoint
        "user": Setting("text", ""),                   # HTTP Basic authentication to it
        "password": Setting("text", ""),
        "vasp_id": Setting("text", ""),                # the VASP and VAS the operator gave
        "vas_id": Setting("text", ""),
        "service_code": Setting("text", ""),           # the charging service code
        "source": Setting("text", ""),                 # the sender short code of a message that names none
        "namespace": Setting(MM7_NAMESPACES, "REL-5-MM7-1-2"),
        "delivery_report": Setting(("true", "false"), "true"),
        "max_size": Setting("count", 300 * 1024),      # bytes of content the MMSC takes (rules check)
        "window": Setting("count", 4),                 # requests in flight
        "timeout": Setting("duration", 30),
        "rate": Setting("rate"),
        "listen": Setting("address", ""),              # HOST:PORT where the MMSC posts delivery reports and MO
        "listen_user": Setting("text", "mmsc"),        # ... authenticating with these (Basic)
        "listen_password": Setting("text", ""),
    }),
    "file": MappingProxyType({      # JSONL of what would be sent (control.channels.FileChannel)
        "path": Setting("text", "sent.jsonl"),
        "rate": Setting("rate"),
    }),
})
CHANNELS = tuple(SETTINGS)          # sms, http, mms, file


def required(channel: str) -> tuple:
    """The names of the settings `channel` cannot go without, in declaration order."""
    return tuple(name for name, s in SETTINGS[channel].items() if s.required)


def resolve(channel: str, given) -> dict:
    """`given` (a channel's settings from policy.yaml) with the defaults filled in. Raises
    ValueError for a channel not declared, a required setting missing, or an unknown one."""
    if channel not in SETTINGS:
        raise ValueError(f"{channel!r} is not a channel ({', '.join(CHANNELS)})")
    declared, given = SETTINGS[channel], dict(given or {})
    for name in required(channel):
        if name not in given:
            raise ValueError(f"channels.{channel}.{name} is missing")
    unknown = set(given) - set(declared)
    if unknown:
        raise ValueError(f"channels.{channel}: unknown settings {', '.join(sorted(unknown))}")
    return {name: given.get(name, s.default) for name, s in declared.items()}
