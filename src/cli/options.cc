#include "cli/options.h"

#include <filesystem>

namespace terrarium::cli {
namespace {

std::string without_trailing_slash(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

}  // namespace

Result<Mount> parse_mount(const std::string& spec) {
  Mount mount;
  std::string rest = spec;
  size_t separator = spec.find("::");
  if (separator == std::string::npos) {
    mount.host_path = spec;
    mount.guest_path = spec;
  } else {
    mount.host_path = spec.substr(0, separator);
    mount.guest_path = spec.substr(separator + 2);
    size_t colon = mount.guest_path.rfind(':');
    if (colon != std::string::npos) {
      std::string mode = mount.guest_path.substr(colon + 1);
      if (mode == "ro") {
        mount.read_only = true;
      } else if (mode != "rw") {
        return Error(ErrorKind::kConfig,
                     "--dir '" + spec + "': unknown mode '" + mode + "' (expected :ro or :rw)");
      }
      mount.guest_path = mount.guest_path.substr(0, colon);
    }
  }
  if (mount.host_path.empty() || mount.guest_path.empty()) {
    return Error(ErrorKind::kConfig, "--dir '" + spec + "': expected HOST::GUEST[:ro]");
  }
  std::error_code error;
  auto absolute = std::filesystem::absolute(mount.host_path, error);
  if (!std::filesystem::is_directory(mount.host_path, error)) {
    return Error(ErrorKind::kConfig,
                 "--dir '" + spec + "': host directory '" + mount.host_path + "' does not exist");
  }
  mount.host_path = without_trailing_slash(absolute.lexically_normal().string());
  if (separator == std::string::npos) {
    // A bare DIR is seen by the guest where the host sees it.
    mount.guest_path = mount.host_path;
    return mount;
  }
  // The guest has no working directory to resolve a relative path against,
  // so "data" could only be a guess ("/data"? the host's folder?): refuse it.
  if (mount.guest_path[0] != '/') {
    return Error(ErrorKind::kConfig, "--dir '" + spec + "': the guest path '" + mount.guest_path +
                                         "' is relative; write it from the root, e.g. --dir '" +
                                         spec.substr(0, separator) + "::/" + mount.guest_path +
                                         (mount.read_only ? ":ro" : "") + "'");
  }
  for (const auto& part : std::filesystem::path(mount.guest_path)) {
    if (part == "..") {
      return Error(ErrorKind::kConfig, "--dir '" + spec + "': the guest path may not contain '..'");
    }
  }
  mount.guest_path =
      without_trailing_slash(std::filesystem::path(mount.guest_path).lexically_normal().string());
  return mount;
}

std::optional<std::string> guest_path_for(const std::string& host_file,
                                          const std::vector<Mount>& mounts) {
  std::error_code error;
  auto file = std::filesystem::absolute(host_file, error).lexically_normal();
  if (error) return std::nullopt;
  for (const auto& mount : mounts) {
    auto relative = file.lexically_relative(mount.host_path);
    if (relative.empty() || *relative.begin() == "..") continue;
    std::string guest = mount.guest_path;
    if (guest.back() != '/') guest += '/';
    return guest + relative.string();
  }
  return std::nullopt;
}

std::optional<HostFile> host_file_for(const std::string& guest_file,
                                      const std::vector<Mount>& mounts) {
  if (guest_file.empty() || guest_file[0] != '/') return std::nullopt;
  auto file = std::filesystem::path(guest_file).lexically_normal();
  // The guest sees the mount with the longest matching guest path (an inner
  // mount hides that part of an outer one).
  std::optional<HostFile> best;
  size_t best_length = 0;
  for (size_t i = 0; i < mounts.size(); ++i) {
    auto relative = file.lexically_relative(mounts[i].guest_path);
    if (relative.empty() || *relative.begin() == "..") continue;
    size_t length = mounts[i].guest_path.size();
    if (best && length < best_length) continue;
    std::string host = mounts[i].host_path;
    if (relative != ".") host = (std::filesystem::path(host) / relative).string();
    best = HostFile{host, i};
    best_length = length;
  }
  return best;
}

}  // namespace terrarium::cli
