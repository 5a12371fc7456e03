// btf.h — reading struct layouts from BTF (an ELF object's .BTF or a raw BTF file).
#pragma once

#include <napi.h>

namespace tortie {

Napi::Value BtfStructs(const Napi::CallbackInfo& info);

}  // namespace tortie
