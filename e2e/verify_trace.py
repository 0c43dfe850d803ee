#!/usr/bin/env python3
"""An OTLP/HTTP receiver, and a check of one request's trace.

  verify_trace.py receive --port P
      Accepts the protobuf the servers' exporters POST to /v1/traces,
      decoded with opentelemetry-proto; GET /spans?trace=<hex> lists what
      arrived for a trace as JSON.

  verify_trace.py check --port P --balancer URL
      Sends one home page through URL with a W3C traceparent and asserts
      the span tree that comes back at the receiver: the request span
      continues the caller's span and carries the request id; the
      operation is inside it; loader batches are inside the operation;
      every SQL statement is inside the operation or a loader, its text
      without bind values; every span lies within its parent's time.
      Prints the tree with durations.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import sys
import threading
import time
import urllib.parse
import urllib.request

SPANS: list[dict] = []
LOCK = threading.Lock()


def attributes(pairs) -> dict:
    out = {}
    for kv in pairs:
        value = kv.value
        kind = value.WhichOneof("value")
        out[kv.key] = getattr(value, kind) if kind else None
    return out


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (the handler's name)
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path != "/v1/traces" or self.headers.get("content-type") != "application/x-protobuf":
            self.send_response(415 if self.path == "/v1/traces" else 404)
            self.end_headers()
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with LOCK:
            for resource_spans in request.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        SPANS.append({
                            "service": resource.get("service.name"),
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "name": span.name,
                            "start": span.start_time_unix_nano,
                            "end": span.end_time_unix_nano,
                            "attributes": attributes(span.attributes),
                        })
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def do_GET(self) -> None:  # noqa: N802
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        trace = query.get("trace", [""])[0]
        with LOCK:
            found = [s for s in SPANS if s["trace_id"] == trace]
        body = json.dumps(found).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args) -> None:
        pass


def receive(port: int) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    print("listening", flush=True)
    server.serve_forever()


HOME = ("query HomePage($first: Int) { articles(first: $first) { edges { node { title tagList "
        "author { username } } } } tags }")


def check(port: int, balancer: str) -> int:
    trace_id = os.urandom(16).hex()
    caller = os.urandom(8).hex()
    request = urllib.request.Request(
        f"{balancer}/graphql",
        # A variable the document does not use makes the request one the
        # response cache has not seen: the trace shows the page being made.
        data=json.dumps({"query": HOME, "variables": {"first": 10, "trace": trace_id},
                         "operationName": "HomePage"}).encode(),
        headers={"content-type": "application/json", "traceparent": f"00-{trace_id}-{caller}-01"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        request_id = response.headers.get("x-request-id")
        body = json.loads(response.read())
    assert not body.get("errors"), body
    assert body["data"]["articles"]["edges"], "the home page lists articles"

    # Spans arrive in batches: read them again until the trace is whole
    # (the request, its operation, a loader, three statements, and every
    # parent named present), or fail after 15 s.
    def whole(spans: list[dict]) -> bool:
        names = [s["name"] for s in spans]
        ids = {s["span_id"] for s in spans} | {caller}
        return ("POST /graphql" in names and "query HomePage" in names
                and "loader UserById" in names
                and sum(n.startswith("sql ") for n in names) >= 3
                and all(s["parent_span_id"] in ids for s in spans if s["parent_span_id"]))

    deadline = time.monotonic() + 15
    spans: list[dict] = []
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/spans?trace={trace_id}", timeout=5) as r:
            spans = json.loads(r.read())
        if whole(spans):
            break
        assert time.monotonic() < deadline, \
            f"trace {trace_id} still incomplete after 15 s: {[s['name'] for s in spans]}"
        time.sleep(0.2)
    names = [s["name"] for s in spans]

    def one(name: str) -> dict:
        matches = [s for s in spans if s["name"] == name]
        assert len(matches) == 1, f"one `{name}` span among {names}"
        return matches[0]

    root = one("POST /graphql")
    assert root["parent_span_id"] == caller, "the request continues the caller's span"
    assert root["attributes"].get("request_id") == request_id, root["attributes"]
    operation = one("query HomePage")
    assert operation["parent_span_id"] == root["span_id"], "the operation is inside the request"
    loaders = [s for s in spans if s["name"].startswith("loader ")]
    for key in ("loader UserById",):
        assert key in names, f"a `{key}` span among {names}"
    for loader in loaders:
        assert loader["parent_span_id"] == operation["span_id"], f"{loader['name']} is inside the operation"
    statements = [s for s in spans if s["name"].startswith("sql ")]
    assert len(statements) >= 3, names
    inside = {operation["span_id"], *(l["span_id"] for l in loaders)}
    for statement in statements:
        assert statement["parent_span_id"] in inside, f"{statement['name']} is inside the operation or a loader"
        text = statement["attributes"].get("db.statement", "")
        assert "SELECT" in text and "binds" not in text, text
    by_id = {s["span_id"]: s for s in spans}
    for span in spans:
        parent = by_id.get(span["parent_span_id"])
        assert span["end"] >= span["start"], span["name"]
        if parent:
            assert parent["start"] <= span["start"] and span["end"] <= parent["end"], \
                f"{span['name']} lies within {parent['name']}"

    def show(span: dict, depth: int) -> None:
        took = (span["end"] - span["start"]) / 1e6
        print(f"{'  ' * depth}{span['name']}  {took:.2f} ms  [{span['service']}]")
        for child in sorted((s for s in spans if s["parent_span_id"] == span["span_id"]), key=lambda s: s["start"]):
            show(child, depth + 1)

    show(root, 0)
    print(f"trace {trace_id}: {len(spans)} spans (request, operation, {len(loaders)} loader batches, "
          f"{len(statements)} SQL statements)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["receive", "check"])
    parser.add_argument("--port", type=int, default=24318)
    parser.add_argument("--balancer", default="http://127.0.0.1:28080")
    args = parser.parse_args()
    if args.command == "receive":
        receive(args.port)
        return 0
    try:
        return check(args.port, args.balancer)
    except AssertionError as e:
        print(f"trace check failed: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
