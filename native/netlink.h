// netlink.h — a pod's veth, addresses, routes, sysctls and guard rules through raw
// rtnetlink, each namespace entered on the calling thread (netlink.cc).
#pragma once

#include <napi.h>

namespace tortie {

Napi::Value PodNetworkCreate(const Napi::CallbackInfo& info);
Napi::Value LinkDelete(const Napi::CallbackInfo& info);
void ProhibitRules(const Napi::CallbackInfo& info);
Napi::Value LinkDump(const Napi::CallbackInfo& info);
Napi::Value AddressDump(const Napi::CallbackInfo& info);
Napi::Value RouteDump(const Napi::CallbackInfo& info);

}  // namespace tortie
