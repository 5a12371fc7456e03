// netns.h — switching the calling thread's network namespace around netlink calls.
#pragma once

#include <napi.h>

namespace tortie {

Napi::Value EnterNetns(const Napi::CallbackInfo& info);
void RestoreNetns(const Napi::CallbackInfo& info);

}  // namespace tortie
