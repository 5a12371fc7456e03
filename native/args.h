// args.h — reading and checking JS arguments; a wrong argument throws a TypeError or
// an EINVAL error that names the parameter.
#pragma once

#include <napi.h>

#include <cstdint>
#include <optional>
#include <string>

namespace tortie {

std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* name);
Napi::Buffer<uint8_t> BufferArg(const Napi::CallbackInfo& info, size_t index, const char* name);
// An integer argument in [min, max]; `fallback` when absent or undefined.
int64_t IntArg(const Napi::CallbackInfo& info, size_t index, const char* name, int64_t min,
               int64_t max, std::optional<int64_t> fallback = std::nullopt);

// The options object at `index`, or an empty object when absent/undefined.
Napi::Object OptionsArg(const Napi::CallbackInfo& info, size_t index, const char* name);
// An integer property of an options object, checked against [min, max].
std::optional<int64_t> IntOption(Napi::Env env, const Napi::Object& options, const char* name,
                                 int64_t min, int64_t max);
std::optional<bool> BoolOption(Napi::Env env, const Napi::Object& options, const char* name);

}  // namespace tortie
