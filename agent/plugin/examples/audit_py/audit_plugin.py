#!/usr/bin/python3
"""audit_py: an example seccomp-agent policy plugin in Python (see README.md).

Denies the syscalls and paths it is told to deny, allows everything else,
and writes one JSON line per decision to stdout. Serves the unary Decide,
the bidirectional DecideStream, and grpc.health.v1.Health.

Needs Debian's python3-grpcio and python3-protobuf, and the Python code
generated from proto/ (Bazel builds it; see README.md for protoc by hand).
"""

import argparse
import concurrent.futures
import errno as errno_mod
import fnmatch
import json
import os
import signal
import sys
import threading
import time


def _load_generated(gen_dir):
    sys.path.insert(0, gen_dir)
    global plugin_pb2, plugin_pb2_grpc, health_pb2, health_pb2_grpc, grpc
    import grpc  # noqa: F401  (python3-grpcio)
    from proto.seccompagent.v1 import plugin_pb2, plugin_pb2_grpc  # noqa: F401
    from proto.grpc.health.v1 import health_pb2, health_pb2_grpc  # noqa: F401


SERVICE = "seccompagent.v1.PolicyPlugin"


class Auditor:
    """The decision logic: pure, shared by Decide and DecideStream."""

    def __init__(self, deny_syscalls, deny_paths, deny_errno, out):
        self.deny_syscalls = set(deny_syscalls)
        self.deny_paths = list(deny_paths)
        self.deny_errno = deny_errno
        self.out = out
        self.lock = threading.Lock()

    def decide(self, n):
        d = plugin_pb2.Decision()
        path = None
        if n.decoded.HasField("path"):
            # Decide on the path the agent resolved (absolute, in the
            # task's root), not on what the task wrote ("rel", "../x").
            # Empty: the agent could not resolve it; fall back to the raw
            # value only when that is absolute.
            p = n.decoded.path
            raw = os.fsdecode(p.value)
            path = os.fsdecode(p.resolved) if p.resolved else (raw if raw.startswith("/") else None)
        if n.syscall_name in self.deny_syscalls:
            d.deny.errno_code = self.deny_errno
            d.reason = "syscall %s is denied" % n.syscall_name
            # The answer holds for every call of this syscall by this container.
            d.cache.scope = plugin_pb2.CacheHint.SCOPE_SYSCALL_CONTAINER
            d.cache.ttl_ms = 5000
        elif path is None and n.decoded.HasField("path") and self.deny_paths:
            # A relative path the agent could not resolve: fail closed.
            d.deny.errno_code = self.deny_errno
            d.reason = "unresolved path: %s" % n.decoded.error
        elif path is not None and any(fnmatch.fnmatchcase(path, g) for g in self.deny_paths):
            d.deny.errno_code = self.deny_errno
            d.reason = "path %s is denied" % path
            d.cache.scope = plugin_pb2.CacheHint.SCOPE_EXACT_ARGS
            d.cache.ttl_ms = 5000
        else:
            # Allowed calls are not cached: the point is to see every one.
            d.allow.SetInParent()
        self.log(n, d, path)
        return d

    def log(self, n, d, path):
        rec = {
            "time": time.time(),
            "container": n.container.id,
            "pid": n.pid,
            "syscall": n.syscall_name,
            "nr": n.syscall_nr,
            "args": list(n.args),
            "decision": d.WhichOneof("kind"),
        }
        if path is not None:
            rec["path"] = path
        if n.decoded.HasField("path"):
            rec["raw_path"] = os.fsdecode(n.decoded.path.value)
        if n.decoded.HasField("sockaddr"):
            rec["sockaddr"] = {"family": n.decoded.sockaddr.family,
                               "address": os.fsdecode(n.decoded.sockaddr.address),
                               "port": n.decoded.sockaddr.port}
        if d.HasField("deny"):
            rec["errno"] = d.deny.errno_code
        if n.container.HasField("kubernetes"):
            k = n.container.kubernetes
            rec["pod"] = "%s/%s" % (k.pod_namespace, k.pod_name)
        line = json.dumps(rec, sort_keys=True)
        with self.lock:
            self.out.write(line + "\n")
            self.out.flush()


def make_servicer(auditor):
    class PolicyPlugin(plugin_pb2_grpc.PolicyPluginServicer):
        def Decide(self, request, context):
            return plugin_pb2.DecideResponse(decision=auditor.decide(request.notification))

        def DecideStream(self, request_iterator, context):
            for req in request_iterator:
                yield plugin_pb2.DecideStreamResponse(
                    request_id=req.request_id, decision=auditor.decide(req.notification))

    return PolicyPlugin()


def make_health():
    class Health(health_pb2_grpc.HealthServicer):
        def __init__(self):
            self.status = {"": health_pb2.HealthCheckResponse.SERVING,
                           SERVICE: health_pb2.HealthCheckResponse.SERVING}

        def Check(self, request, context):
            if request.service not in self.status:
                context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
            return health_pb2.HealthCheckResponse(status=self.status[request.service])

        def Watch(self, request, context):
            yield health_pb2.HealthCheckResponse(
                status=self.status.get(request.service,
                                       health_pb2.HealthCheckResponse.SERVICE_UNKNOWN))

    return Health()


def parse_errno(s):
    if s.isdigit():
        return int(s)
    v = getattr(errno_mod, s, None)
    if not isinstance(v, int):
        raise argparse.ArgumentTypeError("unknown errno %r" % s)
    return v


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="unix:///run/seccomp-agent/audit-py.sock",
                   help="gRPC address (unix:///path or host:port)")
    p.add_argument("--deny_syscalls", default="",
                   help="comma-separated syscall names to deny (e.g. mount,ptrace)")
    p.add_argument("--deny_paths", default="",
                   help="comma-separated fnmatch globs of paths to deny (e.g. /etc/shadow,/root/*)")
    p.add_argument("--errno", type=parse_errno, default=errno_mod.EPERM,
                   help="errno for denials: a name (EPERM) or a number")
    p.add_argument("--gen_dir", default=os.path.join(here, "gen"),
                   help="directory holding proto/... *_pb2.py")
    p.add_argument("--workers", type=int, default=8, help="server threads")
    args = p.parse_args(argv)
    _load_generated(args.gen_dir)
    if not 1 <= args.errno <= 4095:
        p.error("--errno must be 1..4095")

    auditor = Auditor([s for s in args.deny_syscalls.split(",") if s],
                      [g for g in args.deny_paths.split(",") if g], args.errno, sys.stdout)
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=args.workers))
    plugin_pb2_grpc.add_PolicyPluginServicer_to_server(make_servicer(auditor), server)
    health_pb2_grpc.add_HealthServicer_to_server(make_health(), server)
    if server.add_insecure_port(args.listen) == 0:
        print("audit_py: cannot listen on %s" % args.listen, file=sys.stderr)
        return 1
    server.start()
    print("audit_py: serving on %s" % args.listen, file=sys.stderr, flush=True)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
