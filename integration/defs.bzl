"""integration_test: one end-to-end test of integration/ (see BUILD.bazel).

Every such test drives real runtimes as root: it runs outside the sandbox
("local"), alone ("exclusive"), is tagged "integration", and links the
harness, absl and gtest.
"""

def integration_test(
        name,
        size = "large",
        timeout = "moderate",
        data = [],
        tags = [],
        deps = [],
        own_main = False):
    """A cc_test of NAME.cc with the integration tags and the harness.

    Args:
      name: the test; its source is NAME.cc.
      size: Bazel size.
      timeout: Bazel timeout (None: the size's default).
      data: binaries and files the test runs.
      tags: tags beside exclusive, integration and local.
      deps: deps beside the harness, absl and gtest.
      own_main: the test defines main() (no gtest_main).
    """
    native.cc_test(
        name = name,
        size = size,
        timeout = timeout,
        srcs = [name + ".cc"],
        data = data,
        tags = ["exclusive", "integration", "local"] + tags,
        deps = [
            "//integration/harness",
            "@system//:absl",
            "@system//:gtest",
        ] + ([] if own_main else ["@system//:gtest_main"]) + deps,
    )
