#!/usr/bin/python3
"""An independent ext_authz client: Python grpcio + protobuf classes generated from Envoy's protos.

Usage: check_client.py --gen DIR --target HOST:PORT [--timeout S] < scenarios.json

DIR holds the modules gen_protos.py wrote. Reads a JSON list of scenarios from stdin, each
  {"name", "method", "path", "headers": {lower-case name: value}, "raw": bool,
   "context_extensions": {...}}
("raw": send the headers as header_map entries with raw_value bytes, as Envoy does with
encode_raw_headers), sends one Authorization/Check per scenario and a grpc.health.v1 Check for
each name in "health", and prints one JSON object with what came back. Every call has a deadline.
"""
import argparse
import json
import sys

CHECK = "/envoy.service.auth.v3.Authorization/Check"
HEALTH = "/grpc.health.v1.Health/Check"


def health_request(service):
    """grpc.health.v1.HealthCheckRequest{service = 1} encoded by hand: one length-delimited field."""
    data = service.encode("utf-8")
    if len(data) > 127:
        raise ValueError("service name too long for this encoder")
    return b"\x0a" + bytes([len(data)]) + data if data else b""


def health_status(raw):
    """grpc.health.v1.HealthCheckResponse{status = 1 (enum)} decoded by hand."""
    names = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
    if raw == b"":
        return "UNKNOWN"
    if raw[0] != 0x08 or len(raw) != 2:
        return "unexpected:" + raw.hex()
    return names.get(raw[1], str(raw[1]))


def header_options(options, base_pb2):
    action = base_pb2.HeaderValueOption.HeaderAppendAction
    return [
        {
            "key": o.header.key,
            "value": o.header.value,
            "append_action": action.Name(o.append_action),
            "append_set": o.HasField("append"),
        }
        for o in options
    ]


def describe(name, resp, base_pb2):
    kind = resp.WhichOneof("http_response")
    out = {
        "name": name,
        "status": resp.status.code,
        "status_message": resp.status.message,
        "kind": kind,
        "metadata": {k: v.string_value for k, v in resp.dynamic_metadata.fields.items()},
    }
    if kind == "denied_response":
        d = resp.denied_response
        out["http_status"] = d.status.code
        out["headers"] = header_options(d.headers, base_pb2)
        out["body"] = d.body
    elif kind == "ok_response":
        out["headers"] = header_options(resp.ok_response.headers, base_pb2)
        out["headers_to_remove"] = list(resp.ok_response.headers_to_remove)
    return out


def build(scenario, ea):
    req = ea.CheckRequest()
    req.attributes.source.address.socket_address.address = "127.0.0.1"
    req.attributes.source.address.socket_address.port_value = 40000
    http = req.attributes.request.http
    http.id = scenario.get("id", "")
    http.method = scenario.get("method", "POST")
    http.path = scenario["path"]
    http.host = "plugin-daemon:5002"
    http.scheme = "http"
    http.protocol = "HTTP/1.1"
    pseudo = {":authority": http.host, ":path": http.path, ":method": http.method}
    headers = {**pseudo, **scenario.get("headers", {})}
    if scenario.get("raw"):
        for key, value in headers.items():
            http.header_map.headers.add(key=key, raw_value=value.encode("utf-8"))
    else:
        for key, value in headers.items():
            http.headers[key] = value
    for key, value in scenario.get("context_extensions", {}).items():
        req.attributes.context_extensions[key] = value
    return req


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gen", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--timeout", type=float, default=5.0)
    args = ap.parse_args()
    sys.path.insert(0, args.gen)

    import grpc
    from envoy.config.core.v3 import base_pb2
    from envoy.service.auth.v3 import external_auth_pb2 as ea

    plan = json.load(sys.stdin)
    # Loopback only, whatever proxy variables the environment carries.
    channel = grpc.insecure_channel(args.target, options=[("grpc.enable_http_proxy", 0)])
    try:
        grpc.channel_ready_future(channel).result(timeout=args.timeout)
        check = channel.unary_unary(CHECK, request_serializer=ea.CheckRequest.SerializeToString,
                                    response_deserializer=ea.CheckResponse.FromString)
        health = channel.unary_unary(HEALTH, request_serializer=health_request, response_deserializer=lambda b: b)
        results = [describe(s["name"], check(build(s, ea), timeout=args.timeout), base_pb2) for s in plan["checks"]]
        healths = {name: health_status(health(name, timeout=args.timeout)) for name in plan.get("health", [])}
    finally:
        channel.close()
    print(json.dumps({"results": results, "health": healths, "protobuf": __import__("google.protobuf").protobuf.__version__,
                      "grpc": grpc.__version__}))


if __name__ == "__main__":
    main()
