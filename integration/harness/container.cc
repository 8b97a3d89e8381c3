#include "integration/harness/container.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/common/status.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent::integration {
namespace fs = std::filesystem;

namespace {

constexpr char kBusybox[] = "/usr/bin/busybox";

absl::Status WriteFile(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// A user namespace in `spec` mapping container ids 0..65535 to host ids
// `host_id`..: the rootfs chowned to them, `dirs` (the bundle's parents)
// searchable by the mapped root.
absl::Status UserNamespace(uint32_t host_id, const std::vector<std::string>& dirs,
                           const std::string& rootfs, nlohmann::json& spec) {
  spec["linux"]["namespaces"].push_back({{"type", "user"}});
  const nlohmann::json map =
      nlohmann::json::array({{{"containerID", 0}, {"hostID", host_id}, {"size", 65536}}});
  spec["linux"]["uidMappings"] = map;
  spec["linux"]["gidMappings"] = map;
  for (const std::string& d : dirs) {
    if (chmod(d.c_str(), 0711) != 0) return ErrnoStatus(errno, "chmod " + d);
  }
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(rootfs, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (lchown(it->path().c_str(), host_id, host_id) != 0) {
      return ErrnoStatus(errno, "lchown " + it->path().string());
    }
  }
  if (ec) return absl::InternalError("walk " + rootfs + ": " + ec.message());
  if (lchown(rootfs.c_str(), host_id, host_id) != 0) return ErrnoStatus(errno, "lchown " + rootfs);
  return absl::OkStatus();
}

}  // namespace

const char* RuntimeName(Runtime r) { return r == Runtime::kRunc ? "runc" : "crun"; }

absl::StatusOr<TempDir> TempDir::Make(const std::string& prefix) {
  std::string tmpl = absl::StrCat("/tmp/", prefix, "-XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) return ErrnoStatus(errno, "mkdtemp " + tmpl);
  TempDir d;
  d.path_ = tmpl;
  return d;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string UniqueContainerId(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return absl::StrCat(prefix, "-", getpid(), "-", counter.fetch_add(1));
}

absl::Status BuildBusyboxRootfs(const std::string& dir, const std::string& hostname) {
  std::error_code ec;
  for (const char* d : {"bin", "proc", "dev", "sys", "tmp", "etc", "forbidden", "root", "mnt"}) {
    fs::create_directories(fs::path(dir) / d, ec);
    if (ec) return absl::InternalError(absl::StrCat("mkdir ", dir, "/", d, ": ", ec.message()));
  }
  fs::permissions(fs::path(dir) / "tmp", fs::perms::all | fs::perms::sticky_bit, ec);
  const fs::path bb = fs::path(dir) / "bin" / "busybox";
  fs::copy_file(kBusybox, bb, fs::copy_options::overwrite_existing, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("copy ", kBusybox, ": ", ec.message(), " (is busybox-static installed?)"));
  }
  fs::permissions(bb,
                  fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                      fs::perms::others_read | fs::perms::others_exec,
                  ec);
  ProcessResult list = RunProcess({kBusybox, "--list"}, absl::Seconds(10));
  if (list.exit.exit_code != 0 || list.exit.signal != 0) {
    return absl::InternalError("busybox --list: " + list.Describe());
  }
  int applets = 0;
  for (absl::string_view name : absl::StrSplit(list.out, '\n', absl::SkipWhitespace())) {
    if (name == "busybox") continue;
    fs::create_symlink("busybox", fs::path(dir) / "bin" / std::string(name), ec);
    if (ec && ec != std::errc::file_exists) {
      return absl::InternalError(absl::StrCat("symlink ", name, ": ", ec.message()));
    }
    ++applets;
  }
  if (applets < 50) return absl::InternalError(absl::StrCat("only ", applets, " busybox applets"));
  SA_RETURN_IF_ERROR(WriteFile(dir + "/etc/hostname", hostname + "\n"));
  SA_RETURN_IF_ERROR(WriteFile(dir + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"));
  SA_RETURN_IF_ERROR(WriteFile(dir + "/etc/group", "root:x:0:\n"));
  return absl::OkStatus();
}

Container::Container(Runtime runtime, std::string id, TempDir dir)
    : runtime_(runtime), id_(std::move(id)), dir_(std::move(dir)) {
  bundle_ = dir_.path() + "/bundle";
  rootfs_ = bundle_ + "/rootfs";
  state_root_ = dir_.path() + "/state";
}

absl::StatusOr<std::unique_ptr<Container>> Container::Create(Runtime runtime, const std::string& id,
                                                             const ContainerConfig& config) {
  SA_ASSIGN_OR_RETURN(TempDir dir, TempDir::Make("sa-ctr"));
  auto c = std::unique_ptr<Container>(new Container(runtime, id, std::move(dir)));
  std::error_code ec;
  fs::create_directories(c->rootfs_, ec);
  fs::create_directories(c->state_root_, ec);
  if (ec) return absl::InternalError("mkdir bundle: " + ec.message());
  SA_RETURN_IF_ERROR(BuildBusyboxRootfs(c->rootfs_, config.hostname));

  // Start from runc's own default spec (namespaces, mounts, masked paths,
  // capabilities): both runtimes are known to run it here.
  ProcessResult spec = RunProcess({"runc", "spec", "--bundle", c->bundle_}, absl::Seconds(20));
  if (spec.exit.exit_code != 0 || spec.exit.signal != 0) {
    return absl::InternalError("runc spec: " + spec.Describe());
  }
  SA_ASSIGN_OR_RETURN(std::string text, ReadFile(c->bundle_ + "/config.json"));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InternalError("runc spec wrote invalid JSON");
  j["process"]["terminal"] = false;
  j["process"]["args"] = config.args;
  j["root"] = {{"path", c->rootfs_}, {"readonly", false}};
  j["hostname"] = config.hostname;
  for (const auto& [k, v] : config.annotations) j["annotations"][k] = v;
  if (config.user.has_value()) {
    j["process"]["user"] = {{"uid", config.user->first}, {"gid", config.user->second}};
  }
  if (config.no_capabilities) {
    const nlohmann::json none = nlohmann::json::array();
    j["process"]["capabilities"] = {{"bounding", none},
                                    {"effective", none},
                                    {"inheritable", none},
                                    {"permitted", none},
                                    {"ambient", none}};
    j["process"]["noNewPrivileges"] = true;
  } else {
    for (const std::string& cap : config.add_capabilities) {
      for (const char* set : {"bounding", "effective", "permitted"}) {
        j["process"]["capabilities"][set].push_back(cap);
      }
    }
  }
  if (config.rootfs_propagation.has_value()) {
    j["linux"]["rootfsPropagation"] = *config.rootfs_propagation;
  }
  if (config.memory_limit.has_value()) {
    j["linux"]["resources"]["memory"] = {{"limit", *config.memory_limit}};
  }
  if (config.userns_host_id.has_value()) {
    c->userns_host_id_ = config.userns_host_id;
    SA_RETURN_IF_ERROR(
        UserNamespace(*config.userns_host_id, {c->dir_.path(), c->bundle_}, c->rootfs_, j));
  }
  if (config.host_pid_namespace) {
    nlohmann::json& ns = j["linux"]["namespaces"];
    ns.erase(std::remove_if(ns.begin(), ns.end(),
                            [](const nlohmann::json& n) { return n.value("type", "") == "pid"; }),
             ns.end());
  }
  if (config.seccomp.has_value()) {
    const SeccompConfig& s = *config.seccomp;
    nlohmann::json sec = {
        {"defaultAction", "SCMP_ACT_ALLOW"},
        {"architectures", {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}},
        {"listenerPath", s.listener_path},
        {"syscalls", nlohmann::json::array()},
    };
    if (s.listener_metadata.has_value()) sec["listenerMetadata"] = *s.listener_metadata;
    if (!s.notify_syscalls.empty()) {
      sec["syscalls"].push_back({{"names", s.notify_syscalls}, {"action", "SCMP_ACT_NOTIFY"}});
    }
    j["linux"]["seccomp"] = sec;
  }
  SA_RETURN_IF_ERROR(WriteFile(c->bundle_ + "/config.json", j.dump(2)));
  return c;
}

std::vector<std::string> Container::RuntimeArgv(const std::vector<std::string>& args) const {
  std::vector<std::string> argv;
  if (runtime_ == Runtime::kRunc) {
    argv = {"runc", "--root", state_root_};
  } else {
    // crun refuses hybrid cgroups: run it in a private mount namespace
    // without the cgroup2 mount (the host's mounts are untouched).
    argv = {"unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "if mountpoint -q /sys/fs/cgroup/unified; then "
            "umount /sys/fs/cgroup/unified || exit 125; fi; exec crun \"$@\"",
            "crun",
            "--root",
            state_root_};
  }
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

ProcessResult Container::Run(absl::Duration timeout) {
  ProcessResult r = RunProcess(RuntimeArgv({"run", "--bundle", bundle_, id_}), timeout);
  if (r.exit.timed_out) ForceDelete();
  return r;
}

absl::StatusOr<std::unique_ptr<Subprocess>> Container::Start() {
  return Subprocess::Start(RuntimeArgv({"run", "--bundle", bundle_, id_}));
}

bool Container::ForceDelete() {
  ProcessResult r = RunProcess(RuntimeArgv({"delete", "-f", id_}), absl::Seconds(20));
  return r.exit.exit_code == 0 && r.exit.signal == 0;
}

absl::Status Container::Install(const std::string& from, const std::string& to) const {
  const fs::path dst = fs::path(rootfs_) / fs::path(to).relative_path();
  std::error_code ec;
  fs::create_directories(dst.parent_path(), ec);
  fs::copy_file(from, dst, fs::copy_options::overwrite_existing, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("copy ", from, " to ", dst.string(), ": ", ec.message()));
  }
  if (chmod(dst.c_str(), 0755) != 0) return ErrnoStatus(errno, "chmod " + dst.string());
  if (userns_host_id_.has_value() && chown(dst.c_str(), *userns_host_id_, *userns_host_id_) != 0) {
    return ErrnoStatus(errno, "chown " + dst.string());
  }
  return absl::OkStatus();
}

Container::~Container() { ForceDelete(); }

absl::StatusOr<WorkloadRun> RunWorkload(Runtime runtime, const std::string& id,
                                        const std::string& socket, const std::string& script,
                                        const std::vector<std::string>& syscalls,
                                        absl::Duration timeout) {
  ContainerConfig cfg;
  cfg.args = {"sh", "-c", script};
  cfg.seccomp = SeccompConfig{socket, std::nullopt, syscalls};
  WorkloadRun w;
  SA_ASSIGN_OR_RETURN(w.container, Container::Create(runtime, id, cfg));
  w.result = w.container->Run(timeout);
  return w;
}

}  // namespace seccomp_agent::integration
