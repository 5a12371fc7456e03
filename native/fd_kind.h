// fd_kind.h — what kind of BPF object a file descriptor refers to.
#pragma once

#include <unistd.h>

#include <string>

namespace tortie {

// "bpf-map", "bpf-prog", "bpf-link", ... from the fd's anon inode name, or "" when the
// fd is not a BPF object. bpf_obj_get() opens any pinned object; this tells them apart.
inline std::string BpfFdKind(int fd) {
  char target[64] = {};
  std::string link = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
  if (n <= 0) return "";
  std::string kind(target, static_cast<size_t>(n));
  const std::string prefix = "anon_inode:";
  if (kind.rfind(prefix, 0) != 0) return "";
  kind = kind.substr(prefix.size());
  return kind.rfind("bpf-", 0) == 0 ? kind : "";
}

}  // namespace tortie
