// program.h — a BPF program: from a loaded object, or opened from a bpffs pin.
#pragma once

#include <napi.h>

#include <string>

#include "object.h"

namespace tortie {

class BpfProgramWrap : public Napi::ObjectWrap<BpfProgramWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object FromObject(Napi::Env env, const ObjectRef& object, bpf_program* prog);
  // native.openPinnedProgram(path)
  static Napi::Value OpenPinned(const Napi::CallbackInfo& info);

  explicit BpfProgramWrap(const Napi::CallbackInfo& info);
  ~BpfProgramWrap() override;

  struct State {
    ObjectRef object;           // set for a program of an object
    bpf_program* prog = nullptr;
    int owned_fd = -1;          // set for a program opened from a pin
    std::string name;
    std::string section;
  };

 private:
  Napi::Value Name(const Napi::CallbackInfo& info);
  Napi::Value Section(const Napi::CallbackInfo& info);
  Napi::Value Fd(const Napi::CallbackInfo& info);
  void Pin(const Napi::CallbackInfo& info);
  void Close(const Napi::CallbackInfo& info);

  int CurrentFd() const;

  State state_;
};

}  // namespace tortie
