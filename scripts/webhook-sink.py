#!/usr/bin/env python3
"""A webhook receiver for benchmarks: answers 200 at once and counts the events it gets
(and the highest position). GET /count reports {"requests":…,"events":…,"max_position":…}.

    scripts/webhook-sink.py 127.0.0.1:18099
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

state = {"requests": 0, "events": 0, "max_position": 0}


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        events = json.loads(body)["events"]
        state["requests"] += 1
        state["events"] += len(events)
        if events:
            state["max_position"] = max(state["max_position"], events[-1]["position"])
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        body = json.dumps(state).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


host, port = sys.argv[1].rsplit(":", 1)
ThreadingHTTPServer((host, int(port)), Sink).serve_forever()
