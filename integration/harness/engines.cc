#include "integration/harness/engines.h"

#include <linux/magic.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/common/status.h"
#include "integration/harness/container.h"
#include "integration/harness/test_util.h"

namespace seccomp_agent::integration {

namespace {

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) return absl::InternalError("cannot write " + path);
  return absl::OkStatus();
}

absl::Status MountTmpfs(const char* where, const char* options) {
  if (mount("tmpfs", where, "tmpfs", MS_NOSUID | MS_NODEV, options) != 0) {
    return ErrnoStatus(errno, absl::StrCat("mount tmpfs on ", where));
  }
  return absl::OkStatus();
}

bool OnPath(const std::string& tool) {
  const char* path = getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  for (absl::string_view d : absl::StrSplit(dirs, ':')) {
    if (access(absl::StrCat(d, "/", tool).c_str(), X_OK) == 0) return true;
  }
  return false;
}

}  // namespace

absl::Status EnterPrivateMountNamespace() {
  if (unshare(CLONE_NEWNS) != 0) return ErrnoStatus(errno, "unshare(CLONE_NEWNS)");
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return ErrnoStatus(errno, "make / rprivate");
  }
  struct statfs st;
  if (statfs("/sys/fs/cgroup/unified", &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC &&
      umount2("/sys/fs/cgroup/unified", MNT_DETACH) != 0) {
    return ErrnoStatus(errno, "umount /sys/fs/cgroup/unified");
  }
  SA_RETURN_IF_ERROR(MountTmpfs("/run", "mode=0755"));
  SA_RETURN_IF_ERROR(MountTmpfs("/dev/shm", "mode=1777"));
  if (mkdir("/run/seccomp-agent", 0755) != 0) return ErrnoStatus(errno, "mkdir /run/seccomp-agent");
  return absl::OkStatus();
}

absl::Status RequireTools(const std::vector<std::string>& tools) {
  std::vector<std::string> missing;
  for (const auto& t : tools) {
    if (!OnPath(t)) missing.push_back(t);
  }
  if (missing.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("not installed: ", absl::StrJoin(missing, ", "),
                                                    " (scripts/install-deps.sh installs them)"));
}

absl::StatusOr<std::string> Must(const std::vector<std::string>& argv, absl::Duration timeout) {
  ProcessResult r = RunProcess(argv, timeout);
  if (r.exit.timed_out || r.exit.signal != 0 || r.exit.exit_code != 0) {
    return absl::InternalError(absl::StrCat(absl::StrJoin(argv, " "), ": ", r.Describe()));
  }
  return r.out;
}

// ---- podman ----

absl::StatusOr<std::unique_ptr<Podman>> Podman::Create(const std::string& dir) {
  auto p = std::unique_ptr<Podman>(new Podman(dir));
  p->hooks_dir_ = dir + "/hooks.d";
  for (const char* d : {"/hooks.d", "/cni", "/tmp"}) {
    if (mkdir((dir + d).c_str(), 0755) != 0) return ErrnoStatus(errno, "mkdir " + dir + d);
  }
  const std::string conf = dir + "/containers.conf";
  SA_RETURN_IF_ERROR(WriteText(
      conf, absl::StrCat("[containers]\ndefault_ulimits = []\n[engine]\n",
                         "cgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
                         "infra_image = \"localhost/sa-busybox:e2e\"\ninfra_command = \"/pause\"\n",
                         "image_copy_tmp_dir = \"", dir, "/tmp\"\n[network]\n",
                         "network_config_dir = \"", dir, "/cni\"\n")));
  // Read by every podman process, and by those conmon starts (exit commands).
  setenv("CONTAINERS_CONF", conf.c_str(), 1);
  return p;
}

Podman::~Podman() { RemoveAll(); }

std::vector<std::string> Podman::Argv(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"podman",
                                   "--root=" + dir_ + "/root",
                                   "--runroot=" + dir_ + "/runroot",
                                   "--tmpdir=" + dir_ + "/tmp",
                                   "--storage-driver=vfs",
                                   "--cgroup-manager=cgroupfs",
                                   "--events-backend=file",
                                   "--hooks-dir=" + hooks_dir_};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

ProcessResult Podman::Run(const std::vector<std::string>& args, absl::Duration timeout) const {
  return RunProcess(Argv(args), timeout);
}

absl::StatusOr<std::string> Podman::Must(const std::vector<std::string>& args,
                                         absl::Duration timeout) const {
  return integration::Must(Argv(args), timeout);
}

absl::StatusOr<std::string> Podman::Id(const std::string& name) const {
  SA_ASSIGN_OR_RETURN(std::string out, Must({"inspect", "--format", "{{.Id}}", name}));
  return std::string(absl::StripAsciiWhitespace(out));
}

absl::StatusOr<nlohmann::json> Podman::OciConfig(const std::string& id) const {
  const std::string path = dir_ + "/root/vfs-containers/" + id + "/userdata/config.json";
  nlohmann::json j = nlohmann::json::parse(ReadAll(path), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::NotFoundError("no OCI config at " + path);
  return j;
}

absl::Status Podman::ImportRootfs(const std::string& rootfs_tar, const std::string& name) const {
  return Must({"import", "--change", "ENV=PATH=/bin", "--change", "CMD [\"/pause\"]", rootfs_tar,
               name})
      .status();
}

void Podman::RemoveAllContainers() const {
  Run({"pod", "rm", "--all", "--force", "--time", "0"}, absl::Seconds(60));
  Run({"rm", "--all", "--force", "--time", "0"}, absl::Seconds(60));
}

void Podman::RemoveAll() const {
  RemoveAllContainers();
  Run({"rmi", "--all", "--force"}, absl::Seconds(60));
}

// ---- containerd ----

absl::StatusOr<std::unique_ptr<Containerd>> Containerd::Start(const std::string& dir) {
  auto c = std::unique_ptr<Containerd>(new Containerd(dir));
  c->socket_ = dir + "/containerd.sock";
  c->log_ = dir + "/containerd.log";
  const std::string conf = dir + "/config.toml";
  // No CRI plugin (no kubelet here); every path under `dir`.
  SA_RETURN_IF_ERROR(WriteText(
      conf,
      absl::StrCat("version = 2\nroot = \"", dir, "/root\"\nstate = \"", dir,
                   "/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
                   "[grpc]\n  address = \"", c->socket_, "\"\n[ttrpc]\n  address = \"", c->socket_,
                   ".ttrpc\"\n[debug]\n  address = \"\"\n", "[metrics]\n  address = \"\"\n")));
  SA_ASSIGN_OR_RETURN(
      c->process_,
      Subprocess::Start({"sh", "-c", "exec containerd --config \"$0\" 2>\"$1\"", conf, c->log_}));
  if (!WaitForSocket(c->socket_, absl::Seconds(60))) {
    return absl::DeadlineExceededError("containerd did not serve " + c->socket_ + ": " +
                                       ReadAll(c->log_));
  }
  return c;
}

Containerd::~Containerd() {
  for (const char* what : {"tasks", "containers"}) {
    ProcessResult ls = RunProcess(Ctr({what, "ls", "-q"}), absl::Seconds(30));
    for (absl::string_view id : absl::StrSplit(ls.out, '\n', absl::SkipWhitespace())) {
      if (std::string(what) == "tasks") {
        RunProcess(Ctr({"tasks", "kill", "-s", "SIGKILL", std::string(id)}), absl::Seconds(30));
        RunProcess(Ctr({"tasks", "delete", "-f", std::string(id)}), absl::Seconds(30));
      } else {
        RunProcess(Ctr({"containers", "rm", std::string(id)}), absl::Seconds(30));
      }
    }
  }
  ProcessResult images = RunProcess(Ctr({"images", "ls", "-q"}), absl::Seconds(30));
  for (absl::string_view ref : absl::StrSplit(images.out, '\n', absl::SkipWhitespace())) {
    RunProcess(Ctr({"images", "rm", std::string(ref)}), absl::Seconds(30));
  }
  if (process_ != nullptr) {
    process_->Signal(SIGTERM);
    process_->Wait(absl::Seconds(30));
  }
}

std::vector<std::string> Containerd::Ctr(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"ctr", "--address", socket_, "--namespace", "sa-e2e"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// ---- images ----

absl::Status BuildEngineRootfsTar(const std::string& rootfs, const std::string& tar) {
  SA_RETURN_IF_ERROR(BuildBusyboxRootfs(rootfs, "e2e-host"));
  SA_RETURN_IF_ERROR(WriteText(rootfs + "/pause", "#!/bin/sh\nexec sleep 2147483647\n"));
  if (chmod((rootfs + "/pause").c_str(), 0755) != 0) return ErrnoStatus(errno, "chmod /pause");
  SA_RETURN_IF_ERROR(WriteText(rootfs + "/etc/motd.alt", "redirected-by-agent\n"));
  return Must({"tar", "-C", rootfs, "-cf", tar, "."}).status();
}

absl::Status BuildOciArchive(const std::string& rootfs, const std::string& layout,
                             const std::string& archive) {
  const std::string image = layout + ":latest";
  SA_RETURN_IF_ERROR(Must({"umoci", "init", "--layout", layout}).status());
  SA_RETURN_IF_ERROR(Must({"umoci", "new", "--image", image}).status());
  SA_RETURN_IF_ERROR(Must({"umoci", "insert", "--image", image, rootfs, "/"}).status());
  SA_RETURN_IF_ERROR(Must({"umoci", "config", "--image", image, "--config.env", "PATH=/bin",
                           "--config.cmd", "/pause"})
                         .status());
  SA_RETURN_IF_ERROR(Must({"umoci", "gc", "--layout", layout}).status());
  return Must({"tar", "-C", layout, "-cf", archive, "."}).status();
}

}  // namespace seccomp_agent::integration
