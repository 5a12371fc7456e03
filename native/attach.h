// attach.h — attaching programs to interfaces: tc (clsact) and XDP.
#pragma once

#include <napi.h>

namespace tortie {

Napi::Value TcAttach(const Napi::CallbackInfo& info);
Napi::Value TcDetach(const Napi::CallbackInfo& info);
Napi::Value TcQuery(const Napi::CallbackInfo& info);
void XdpAttach(const Napi::CallbackInfo& info);
void XdpDetach(const Napi::CallbackInfo& info);
Napi::Value XdpQuery(const Napi::CallbackInfo& info);
Napi::Value XdpInfo(const Napi::CallbackInfo& info);

}  // namespace tortie
