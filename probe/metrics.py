"""The probe's counters for Prometheus: text exposition on http://HOST:PORT/metrics.

    server = MetricsServer("9464")          # or "127.0.0.1:9464"; port 0 picks a free one
    server.update(run.snapshot())           # from the capture thread, about once a second
    server.close()

A scrape serves the last snapshot the capture thread handed over (at most a second old): the
decoder's counters are only read from the thread that decodes. Every series carries the probe's
id as label `probe`, so several probes on one host stay apart.
"""
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def parse_address(text: str) -> tuple:
    """'9464' -> ('', 9464) (every interface, as exporters do); '127.0.0.1:9464'; '[::1]:9464'."""
    host, sep, port = str(text).rpartition(":")
    try:
        port = int(port)
    except ValueError:
        raise ValueError(f"{text!r} is not PORT or HOST:PORT") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{text!r}: the port is between 0 and 65535")
    return host.strip("[]") if sep else "", port


class MetricsServer:
    def __init__(self, address: str, prefix: str = "touchpoint_probe"):
        self.prefix = prefix
        self._text = ""
        host, port = parse_address(address)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics here")
                    return
                body = server._text.encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):      # scrapes are not news
                pass

        cls = ThreadingHTTPServer
        if ":" in host:
            cls = type("HTTPServer6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
        try:
            self.httpd = cls((host, port), Handler)
        except OSError as e:
            raise ValueError(f"cannot serve metrics on {address}: {e.strerror or e}") from None
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        shown = host or "0.0.0.0"
        self.url = f"http://{f'[{shown}]' if ':' in shown else shown}:{self.port}/metrics"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="touchpoint-metrics", daemon=True)
        self.thread.start()

    def update(self, snapshot: dict) -> None:
        self._text = exposition(snapshot, self.prefix)     # one reference swap: scrapes never see half

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def exposition(snap: dict, prefix: str = "touchpoint_probe") -> str:
    """A probe snapshot (ProbeRun.snapshot) as Prometheus text."""
    out = []
    probe = str(snap.get("probe_id", 0))

    def metric(name, kind, help_, samples):
        out.append(f"# HELP {prefix}_{name} {help_}")
        out.append(f"# TYPE {prefix}_{name} {kind}")
        for labels, value in samples:
            lab = ",".join(f'{k}="{_escape(v)}"' for k, v in (("probe", probe), *labels))
            out.append(f"{prefix}_{name}{{{lab}}} {_number(value)}")

    metric("up_seconds", "gauge", "Seconds since the probe started.", [((), snap.get("elapsed_s", 0))])
    metric("packets_total", "counter", "Capture records (packets) decoded.", [((), snap.get("packets", 0))])
    metric("bytes_total", "counter", "Bytes of packets decoded.", [((), snap.get("bytes", 0))])
    metric("records_total", "counter", "Records decoded and handed to the shards.", [((), snap.get("records", 0))])
    layers = snap.get("layers", {})
    metric("layer_packets_total", "counter", "Packets that reached each protocol layer.",
           [((("layer", layer),), row["packets"]) for layer, row in layers.items()])
    metric("layer_decoded_total", "counter", "Packets each protocol layer decoded.",
           [((("layer", layer),), row["decoded"]) for layer, row in layers.items()])
    metric("anomalies_total", "counter", "Anomalies per protocol layer and class.",
           [((("layer", layer), ("class", cls)), row[cls]) for layer, row in layers.items()
            for cls in ("truncated", "malformed", "unsupported", "evicted") if cls in row])
    metric("keys_total", "counter", "Records by the kind of subscriber key that chose their shard.",
           [((("key", k),), v) for k, v in snap.get("keys", {}).items()])
    shards = snap.get("shards", [])
    per = lambda field: [((("shard", s["shard"]),), s.get(field, 0)) for s in shards]
    metric("batches_total", "counter", "Batches cut for each shard.", per("batches"))
    metric("shard_records_total", "counter", "Records cut for each shard.", per("records"))
    metric("sent_records_total", "counter", "Records handed to ZeroMQ for each shard.", per("sent_records"))
    metric("dropped_records_total", "counter", "Records dropped, by shard and cause.",
           [((("shard", s["shard"]), ("cause", c)), d["records"]) for s in shards for c, d in s["drops"].items()])
    metric("dropped_batches_total", "counter", "Batches dropped, by shard and cause.",
           [((("shard", s["shard"]), ("cause", c)), d["batches"]) for s in shards for c, d in s["drops"].items()])
    metric("queue_records", "gauge", "Records waiting in each shard's queue.", per("queued_records"))
    metric("queue_capacity_records", "gauge", "Records a shard's queue holds before it drops.", per("queue_capacity"))
    metric("lag_seconds", "gauge", "Seconds the oldest queued batch of each shard has waited.", per("lag_s"))
    metric("engine_up", "gauge", "1 while the shard's engine is connected.",
           [((("shard", s["shard"]),), int(bool(s.get("connected")))) for s in shards])
    metric("engine_connects_total", "counter", "Connections made to each shard's engine.", per("connects"))
    metric("handshake_failures_total", "counter", "Failed handshakes with each shard's engine.",
           per("handshake_failures"))
    source = {k: v for k, v in (snap.get("source") or {}).items()
              if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if source:
        metric("source", "gauge", "The capture source's own counters (files, kernel drops, ...).",
               [((("name", k),), v) for k, v in source.items()])
    return "\n".join(out) + "\n"


def _escape(v) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(v) -> str:
    return repr(float(v)) if isinstance(v, float) else str(int(v))
