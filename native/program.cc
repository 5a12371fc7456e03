// program.cc — BpfProgram: name, section, fd, pin.
#include "program.h"

#include <bpf/bpf.h>
#include <unistd.h>

#include <cerrno>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "fd_kind.h"

namespace tortie {

Napi::Function BpfProgramWrap::Define(Napi::Env env) {
  return DefineClass(env, "BpfProgram",
                     {
                         InstanceAccessor<&BpfProgramWrap::Name>("name"),
                         InstanceAccessor<&BpfProgramWrap::Section>("section"),
                         InstanceAccessor<&BpfProgramWrap::Fd>("fd"),
                         InstanceMethod<&BpfProgramWrap::Pin>("pin"),
                         InstanceMethod<&BpfProgramWrap::Close>("close"),
                     });
}

BpfProgramWrap::BpfProgramWrap(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<BpfProgramWrap>(info) {
  state_ = std::move(*ExternalArg<State>(info, "BpfProgram"));
}

BpfProgramWrap::~BpfProgramWrap() {
  if (state_.owned_fd >= 0) close(state_.owned_fd);
}

Napi::Object BpfProgramWrap::FromObject(Napi::Env env, const ObjectRef& object,
                                        bpf_program* prog) {
  State state;
  state.object = object;
  state.prog = prog;
  state.name = bpf_program__name(prog);
  state.section = bpf_program__section_name(prog);
  return Data(env).program_class.New({Napi::External<State>::New(env, &state)});
}

Napi::Value BpfProgramWrap::OpenPinned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "path");
  LogScope scope;
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) ThrowErrno(env, errno, "bpf_obj_get(" + path + ")");

  if (BpfFdKind(fd) != "bpf-prog") {
    close(fd);
    ThrowWithCode(env, EINVAL, path + " is pinned but is not a BPF program");
  }
  bpf_prog_info prog_info = {};
  __u32 len = sizeof(prog_info);
  if (bpf_obj_get_info_by_fd(fd, &prog_info, &len) != 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, err, "bpf_obj_get_info_by_fd(" + path + ")");
  }
  State state;
  state.owned_fd = fd;
  state.name = prog_info.name;  // the kernel keeps 15 characters of it
  try {
    return Data(env).program_class.New({Napi::External<State>::New(env, &state)});
  } catch (...) {
    if (state.owned_fd >= 0) close(state.owned_fd);
    throw;
  }
}

int BpfProgramWrap::CurrentFd() const {
  if (state_.object) {
    if (state_.object->obj == nullptr) return -1;
    int fd = bpf_program__fd(state_.prog);
    return fd < 0 ? -1 : fd;
  }
  return state_.owned_fd;
}

Napi::Value BpfProgramWrap::Name(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), state_.name);
}

Napi::Value BpfProgramWrap::Section(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), state_.section);
}

Napi::Value BpfProgramWrap::Fd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), CurrentFd());
}

void BpfProgramWrap::Pin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "path");
  int fd = CurrentFd();
  if (fd < 0) {
    ThrowWithCode(env, EBADF,
                  "program " + state_.name + " cannot be pinned: it is not loaded or was closed");
  }
  LogScope scope;
  if (bpf_obj_pin(fd, path.c_str()) != 0) {
    ThrowErrno(env, errno, "bpf_obj_pin(program " + state_.name + ", " + path + ")");
  }
}

// Not in the TypeScript contract (BpfProgram has no close()): releases the fd of a
// program opened from a pin now instead of at garbage collection. For a program of an
// object it only lets go of the object (whose fd it is); fd reads -1 afterwards.
void BpfProgramWrap::Close(const Napi::CallbackInfo&) {
  if (state_.owned_fd >= 0) close(state_.owned_fd);
  state_.owned_fd = -1;
  state_.object.reset();
}

}  // namespace tortie
