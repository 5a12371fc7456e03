// test_run.h — running a loaded program on a packet (BPF_PROG_TEST_RUN).
#pragma once

#include <napi.h>

namespace tortie {

Napi::Value TestRun(const Napi::CallbackInfo& info);

}  // namespace tortie
