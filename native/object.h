// object.h — a BPF ELF object: open, configure globals, pin maps, load.
#pragma once

#include <bpf/libbpf.h>
#include <napi.h>

#include <memory>
#include <string>

namespace tortie {

// The libbpf object shared by the BpfObject wrapper and every program/map wrapper taken
// from it: their fds belong to the object, so the object lives until the last of them
// is gone — or until close(), after which they refuse to run (EBADF) instead of using
// a file descriptor number the process may have reused.
struct ObjectHandle {
  bpf_object* obj = nullptr;
  std::string path;
  bool load_attempted = false;
  bool loaded = false;

  ObjectHandle() = default;
  ObjectHandle(const ObjectHandle&) = delete;
  ObjectHandle& operator=(const ObjectHandle&) = delete;
  ~ObjectHandle() { Close(); }
  void Close() {
    if (obj != nullptr) bpf_object__close(obj);
    obj = nullptr;
  }
};
using ObjectRef = std::shared_ptr<ObjectHandle>;

class BpfObjectWrap : public Napi::ObjectWrap<BpfObjectWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // native.openObject(path, { pinRoot })
  static Napi::Value Open(const Napi::CallbackInfo& info);

  explicit BpfObjectWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value Path(const Napi::CallbackInfo& info);
  void SetGlobal(const Napi::CallbackInfo& info);
  void Load(const Napi::CallbackInfo& info);
  Napi::Value Program(const Napi::CallbackInfo& info);
  Napi::Value Programs(const Napi::CallbackInfo& info);
  Napi::Value Map(const Napi::CallbackInfo& info);
  Napi::Value Maps(const Napi::CallbackInfo& info);
  void Close(const Napi::CallbackInfo& info);

  bpf_object* Require(Napi::Env env, const char* operation);

  ObjectRef handle_;
};

}  // namespace tortie
