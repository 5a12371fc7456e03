// map.h — a BPF map: CRUD, batch operations, iteration, info, pin.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

#include "object.h"

namespace tortie {

class BpfMapWrap : public Napi::ObjectWrap<BpfMapWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object FromObject(Napi::Env env, const ObjectRef& object, bpf_map* map);
  // native.openPinnedMap(path)
  static Napi::Value OpenPinned(const Napi::CallbackInfo& info);

  explicit BpfMapWrap(const Napi::CallbackInfo& info);
  ~BpfMapWrap() override;

  // The definition the binding checks buffers against.
  struct Layout {
    std::string name;
    uint32_t type = 0;
    uint32_t key_size = 0;
    uint32_t value_size = 0;
    uint32_t max_entries = 0;
    uint32_t flags = 0;
  };

  struct State {
    ObjectRef object;         // a map of an object: the object owns the fd
    bpf_map* map = nullptr;
    int owned_fd = -1;        // a map opened from a pin: this wrapper owns the fd
    Layout pinned_layout;     // ... and its definition, read once at open
  };

 private:
  Napi::Value Fd(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Lookup(const Napi::CallbackInfo& info);
  void Update(const Napi::CallbackInfo& info);
  Napi::Value Delete(const Napi::CallbackInfo& info);
  Napi::Value UpdateBatch(const Napi::CallbackInfo& info);
  Napi::Value DeleteBatch(const Napi::CallbackInfo& info);
  Napi::Value Entries(const Napi::CallbackInfo& info);
  Napi::Value Count(const Napi::CallbackInfo& info);
  void Pin(const Napi::CallbackInfo& info);
  void Close(const Napi::CallbackInfo& info);

  Layout CurrentLayout() const;
  int CurrentFd() const;
  // The fd, or an EBADF error naming `operation` when the map is closed or not loaded.
  int RequireFd(Napi::Env env, const char* operation) const;

  State state_;
};

}  // namespace tortie
