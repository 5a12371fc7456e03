// netns.cc — setns(2) on the calling thread. libbpf's tc and XDP helpers talk netlink
// in the namespace of the thread that calls them; the JS thread is that thread.
#include "netns.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "args.h"
#include "errors.h"

namespace tortie {

Napi::Value EnterNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "path");
  LogScope scope;
  int previous = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (previous < 0) ThrowErrno(env, errno, "open(/proc/thread-self/ns/net)");
  int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int err = errno;
    close(previous);
    ThrowErrno(env, err, "open(" + path + ")");
  }
  int rc = setns(target, CLONE_NEWNET);
  int err = errno;
  close(target);
  if (rc != 0) {
    close(previous);
    ThrowErrno(env, err, "setns(" + path + ", CLONE_NEWNET)");
  }
  return Napi::Number::New(env, previous);
}

void RestoreNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = static_cast<int>(IntArg(info, 0, "fd", 0, 0x7fffffff));
  LogScope scope;
  if (setns(fd, CLONE_NEWNET) != 0) {
    // Keep the fd: the caller may retry; closing it would strand the thread.
    ThrowErrno(env, errno, "setns(fd " + std::to_string(fd) + ", CLONE_NEWNET)");
  }
  close(fd);
}

}  // namespace tortie
