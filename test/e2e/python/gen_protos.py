#!/usr/bin/python3
"""Generate Python message classes for Envoy's ext_authz v3 API from the official protos.

Usage: gen_protos.py --deps DIR --out DIR [--protoc PATH]

DIR is the deps/ folder of the npm package @grpc/grpc-js-xds (envoy-api, googleapis, xds,
protoc-gen-validate). Only external_auth.proto and the files it imports, transitively, are
compiled. The google/protobuf well-known types are not compiled: the installed protobuf runtime
has them, and protoc reads their definitions from a descriptor set written from that runtime
(so no .proto copies of them need to be installed). Prints the generated modules as JSON.
"""
import argparse
import json
import os
import re
import subprocess
import sys

ROOT_PROTO = "envoy/service/auth/v3/external_auth.proto"
INCLUDE_DIRS = ("envoy-api", "googleapis", "xds", "protoc-gen-validate")
IMPORT = re.compile(r'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', re.MULTILINE)
WELL_KNOWN = "google/protobuf/"


def closure(includes, root):
    """Every non-well-known .proto reachable from root through imports, in a stable order."""
    seen, todo = [], [root]
    while todo:
        name = todo.pop()
        if name in seen or name.startswith(WELL_KNOWN):
            continue
        path = next((os.path.join(d, name) for d in includes if os.path.isfile(os.path.join(d, name))), None)
        if path is None:
            raise SystemExit(f"gen_protos: {name} not found under {', '.join(includes)}")
        seen.append(name)
        with open(path, encoding="utf-8") as f:
            todo.extend(IMPORT.findall(f.read()))
    return sorted(seen)


def well_known_descriptor_set(path):
    """The runtime's own definitions of the well-known types, as a FileDescriptorSet for protoc."""
    from google.protobuf import (any_pb2, descriptor_pb2, duration_pb2, empty_pb2, struct_pb2,
                                 timestamp_pb2, wrappers_pb2)

    fds = descriptor_pb2.FileDescriptorSet()
    for module in (descriptor_pb2, any_pb2, duration_pb2, empty_pb2, struct_pb2, timestamp_pb2, wrappers_pb2):
        module.DESCRIPTOR.CopyToProto(fds.file.add())
    with open(path, "wb") as f:
        f.write(fds.SerializeToString())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deps", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--protoc", default="protoc")
    args = ap.parse_args()

    includes = [os.path.join(args.deps, d) for d in INCLUDE_DIRS]
    files = closure(includes, ROOT_PROTO)
    wkt = os.path.join(args.out, "well_known.pb")
    well_known_descriptor_set(wkt)
    cmd = [args.protoc, f"--descriptor_set_in={wkt}", *(f"-I{d}" for d in includes), f"--python_out={args.out}", *files]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"gen_protos: protoc exited {done.returncode}")
    print(json.dumps({"protos": files}))


if __name__ == "__main__":
    main()
