// addon.h — per-environment state: the JS classes the binding creates instances of.
#pragma once

#include <napi.h>

namespace tortie {

struct AddonData {
  Napi::FunctionReference object_class;
  Napi::FunctionReference program_class;
  Napi::FunctionReference map_class;
  Napi::FunctionReference ring_buffer_class;
};

inline AddonData& Data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

// Classes are constructed from C++ only: their constructor takes one External holding
// the native state, and refuses to run without it.
template <typename T>
T* ExternalArg(const Napi::CallbackInfo& info, const char* class_name) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), std::string(class_name) +
                                               " cannot be constructed from JavaScript");
  }
  return info[0].As<Napi::External<T>>().Data();
}

}  // namespace tortie
