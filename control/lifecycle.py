"""Lifecycle segments and data services: policy.yaml's `lifecycle` and `data_services` (docs/policy.md).

A subscriber's lifecycle segment is the first of the policy's segments whose conditions hold,
top to bottom; its conditions are an audience's (profiles, state, the TAC table, and the columns
of the lists in `lifecycle_lists`). The default set is the playbook's: data volume over the last
three months and the number of data services used. A data service is a set of APNs: a session
on one of them is a use of that service; a session on another APN (IMS, an emergency call) is
none.

    segments = read_lifecycle(doc, node, places, columns)   # ((name, where), ...), errors on doc
    services = read_services(doc, node)                     # {service: (apn, ...)}
"""
from functools import cache
from types import MappingProxyType

from yaml.nodes import MappingNode

from . import fields as F
from .conditions import Conditions
from .profiles import MAX_SERVICES
from .yamldoc import BAD, Doc

DEFAULT_SERVICES = MappingProxyType({
    "internet": ("cmnet", "3gnet", "ctnet", "internet"),
    "wap": ("cmwap", "3gwap", "uniwap", "ctwap"),
    "mms": ("cmmms", "3gmms", "unimms", "ctmms"),
})
DEFAULT_LIFECYCLE = """\
loyal: {data_mb: {last: 90d, gte: 1500}, data_services: {last: 90d, gte: 2}}
active: {data_mb: {last: 90d, gte: 300}}
trial: {data_services: {last: 90d, gte: 1}}
silent: {used_data: true}
potential: {}
"""


def read_lifecycle(doc: Doc, node, places, columns) -> tuple:
    """((name, where predicate), ...) in order; a segment whose conditions are wrong is left out."""
    cond = Conditions(doc, places, columns)
    fields = {k: f for k, f in F.audience_fields().items() if k != "lifecycle"}
    out = []
    for knode, vnode in doc.named(node, "lifecycle"):
        path = f"lifecycle.{knode.value}"
        if not isinstance(vnode, MappingNode):
            doc.err(vnode, path, "must be a mapping of field: test, like an audience's where ({} for everyone left)")
            continue
        before = len(doc.errors)
        for k, _ in vnode.value:
            if getattr(k, "value", None) == "lifecycle":
                doc.err(k, f"{path}.lifecycle", "a segment is defined by other fields than the lifecycle")
        rest = [(k, v) for k, v in vnode.value if getattr(k, "value", None) != "lifecycle"]
        where = cond.where(MappingNode(vnode.tag, rest), path, fields, "audience")
        if len(doc.errors) == before:
            out.append((knode.value, where))
    if not out and not doc.errors:
        doc.err(node, "lifecycle", "names no segment")
    return tuple(out)


@cache
def default_lifecycle() -> tuple:
    doc = Doc("(the default lifecycle)")
    segments = read_lifecycle(doc, doc.compose(DEFAULT_LIFECYCLE), None, None)
    assert not doc.errors, doc.errors
    return segments


def read_services(doc: Doc, node):
    """{service: (apn, ...)}: APN network identifiers, compared without regard to case."""
    out, owner = {}, {}
    for knode, vnode in doc.named(node, "data_services"):
        path = f"data_services.{knode.value}"
        apns = []
        for i, n in enumerate(doc.items(vnode, path)):
            apn = doc.scalar(n, f"{path}[{i}]")
            if apn is BAD:
                continue
            apn = apn.strip().lower()
            if not apn or len(apn.encode()) > 24:
                doc.err(n, f"{path}[{i}]", "an APN network identifier is 1 to 24 characters, like cmnet")
            elif apn in owner:
                doc.err(n, f"{path}[{i}]", f"{apn} is already an APN of {owner[apn]}")
            else:
                owner[apn] = knode.value
                apns.append(apn)
        out[knode.value] = tuple(apns)
    if len(out) > MAX_SERVICES:
        return doc.err(node, "data_services", f"{len(out)} services: the state tells at most {MAX_SERVICES} apart")
    return MappingProxyType(out)
