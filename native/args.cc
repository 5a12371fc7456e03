// args.cc — argument checking shared by every binding entry point.
#include "args.h"

#include <cerrno>
#include <cmath>

#include "errors.h"

namespace tortie {
namespace {

int64_t CheckedInteger(Napi::Env env, const Napi::Value& value, const std::string& name,
                       int64_t min, int64_t max) {
  if (!value.IsNumber()) throw Napi::TypeError::New(env, name + " must be a number");
  double d = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || d < static_cast<double>(min) ||
      d > static_cast<double>(max)) {
    ThrowWithCode(env, EINVAL,
                  name + " must be an integer in [" + std::to_string(min) + ", " +
                      std::to_string(max) + "], got " + value.ToString().Utf8Value());
  }
  return static_cast<int64_t>(d);
}

}  // namespace

std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !info[index].IsString()) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a string");
  }
  return info[index].As<Napi::String>().Utf8Value();
}

Napi::Buffer<uint8_t> BufferArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !info[index].IsBuffer()) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Buffer");
  }
  return info[index].As<Napi::Buffer<uint8_t>>();
}

int64_t IntArg(const Napi::CallbackInfo& info, size_t index, const char* name, int64_t min,
               int64_t max, std::optional<int64_t> fallback) {
  if (info.Length() <= index || info[index].IsUndefined()) {
    if (fallback) return *fallback;
    throw Napi::TypeError::New(info.Env(), std::string(name) + " is required");
  }
  return CheckedInteger(info.Env(), info[index], name, min, max);
}

Napi::Object OptionsArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || info[index].IsUndefined() || info[index].IsNull()) {
    return Napi::Object::New(info.Env());
  }
  if (!info[index].IsObject()) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be an object");
  }
  return info[index].As<Napi::Object>();
}

std::optional<int64_t> IntOption(Napi::Env env, const Napi::Object& options, const char* name,
                                 int64_t min, int64_t max) {
  Napi::Value value = options.Get(name);
  if (value.IsUndefined()) return std::nullopt;
  return CheckedInteger(env, value, name, min, max);
}

std::optional<bool> BoolOption(Napi::Env env, const Napi::Object& options, const char* name) {
  Napi::Value value = options.Get(name);
  if (value.IsUndefined()) return std::nullopt;
  if (!value.IsBoolean()) throw Napi::TypeError::New(env, std::string(name) + " must be a boolean");
  return value.As<Napi::Boolean>().Value();
}

}  // namespace tortie
