"""A minimal OTLP/HTTP receiver for scripts/try-wasmtime-serve.sh: decodes what arrives with
the official protobuf definitions (PyPI's opentelemetry-proto), answers 200, and keeps a
running summary in a JSON file.

    python3 scripts/otlp_count.py PORT SUMMARY.json
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

PORT = int(sys.argv[1])
SUMMARY = sys.argv[2]
seen = {
    "requests": 0,
    "spans": 0,
    "spans_with_remote_parent": 0,
    "log_records": 0,
    "duration_count": 0,
    "service_names": [],
}


def service_name(resource):
    for kv in resource.attributes:
        if kv.key == "service.name":
            return kv.value.string_value
    return None


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        seen["requests"] += 1
        if self.path == "/v1/traces":
            req = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
            for rs in req.resource_spans:
                seen["service_names"].append(service_name(rs.resource))
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        seen["spans"] += 1
                        if span.parent_span_id:
                            seen["spans_with_remote_parent"] += 1
        elif self.path == "/v1/logs":
            req = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
            for rl in req.resource_logs:
                for sl in rl.scope_logs:
                    seen["log_records"] += len(sl.log_records)
        elif self.path == "/v1/metrics":
            req = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
            for rm in req.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        if m.name == "http.server.request.duration":
                            seen["duration_count"] += sum(p.count for p in m.histogram.data_points)
        seen["service_names"] = sorted(set(n for n in seen["service_names"] if n))
        with open(SUMMARY, "w") as f:
            json.dump(seen, f)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


with open(SUMMARY, "w") as f:
    json.dump(seen, f)
ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
