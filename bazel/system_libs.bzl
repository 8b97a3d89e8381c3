"""A repository rule that turns pkg-config modules into cc_library targets.

Each entry of `modules` maps a target name to a list of pkg-config module
names; the rule runs `pkg-config --cflags --libs` once per target and writes
a cc_library with those flags. Debian's packages are the only source of
third-party code, so the build works offline.
"""

def _flags(ctx, pkg_config, what, mods):
    res = ctx.execute([pkg_config, what] + mods)
    if res.return_code != 0:
        fail("pkg-config %s %s failed: %s (run scripts/install-deps.sh)" % (what, " ".join(mods), res.stderr))
    return [f for f in res.stdout.replace("\n", " ").split(" ") if f.strip()]

def _pkg_config_repo_impl(ctx):
    pkg_config = ctx.which("pkg-config")
    if pkg_config == None:
        fail("pkg-config not found: run scripts/install-deps.sh")
    build = ['package(default_visibility = ["//visibility:public"])', ""]
    for name, mods in ctx.attr.modules.items():
        defines = []
        linkopts = _flags(ctx, pkg_config, "--libs", mods)
        for flag in _flags(ctx, pkg_config, "--cflags", mods):
            if flag.startswith("-D"):
                if flag[2:] not in defines:
                    defines.append(flag[2:])
            elif flag.startswith("-I") and flag[2:] == "/usr/include":
                pass
            elif flag == "-pthread" and "-pthread" in linkopts:
                pass  # re2: the link flag carries it
            else:
                # Debian's packages put every header under /usr/include, so
                # only defines need to reach dependents (copts would not).
                fail("unexpected cflag %s from pkg-config %s" % (flag, " ".join(mods)))
        build.append("cc_library(")
        build.append('    name = "%s",' % name)
        build.append("    defines = %s," % repr(defines))
        build.append("    linkopts = %s," % repr(linkopts))
        build.append(")")
        build.append("")
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD.bazel", "\n".join(build))

pkg_config_repository = repository_rule(
    implementation = _pkg_config_repo_impl,
    attrs = {
        "modules": attr.string_list_dict(mandatory = True),
    },
    local = True,
    environ = ["PKG_CONFIG_PATH"],
)
