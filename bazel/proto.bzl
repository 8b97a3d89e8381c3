"""Protobuf and gRPC C++ code generation with Debian's protoc and plugin."""

def cc_grpc_proto_library(name, srcs, deps = [], grpc = True, proto_deps = [], **kwargs):
    """Generates C++ (and optionally gRPC) code for `srcs` and wraps it.

    Args:
      name: the cc_library to create.
      srcs: .proto files, relative to this package; imports resolve from the
        workspace root (e.g. `import "proto/seccompagent/v1/policy.proto";`).
      deps: cc_library deps (other cc_grpc_proto_library targets).
      grpc: also run grpc_cpp_plugin.
      proto_deps: .proto files of deps (so protoc can see them).
      **kwargs: passed to cc_library.
    """
    pkg = native.package_name()
    outs = []
    for src in srcs:
        base = src[:-len(".proto")]
        outs += [base + ".pb.h", base + ".pb.cc"]
        if grpc:
            outs += [base + ".grpc.pb.h", base + ".grpc.pb.cc"]
    grpc_flags = ""
    if grpc:
        grpc_flags = "--plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin) --grpc_out=$(GENDIR) "
    native.genrule(
        name = name + "_gen",
        srcs = srcs + proto_deps,
        outs = outs,
        cmd = "protoc -I. --cpp_out=$(GENDIR) " + grpc_flags +
              " ".join(["%s/%s" % (pkg, s) if pkg else s for s in srcs]),
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        deps = deps + ["@system//:protobuf"] + (["@system//:grpcpp"] if grpc else []),
        **kwargs
    )
