// errors.cc — errno naming, libbpf log capture and error construction.
#include "errors.h"

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>

namespace tortie {
namespace {

// Enough for the tail of a verifier log (where the rejection reason is) plus libbpf's
// own summary lines, without dragging a 1 MB log into every message.
constexpr size_t kMaxLogLines = 40;

// libbpf calls the print callback on the thread that made the libbpf call, so a
// thread-local buffer keeps the ring buffer poller's lines out of the JS thread's
// errors without any locking.
thread_local std::deque<std::string> t_log_lines;
thread_local std::string t_partial_line;

void PushLine(std::string line) {
  if (line.empty()) return;
  t_log_lines.push_back(std::move(line));
  while (t_log_lines.size() > kMaxLogLines) t_log_lines.pop_front();
}

int CaptureLibbpfPrint(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  va_list copy;
  va_copy(copy, args);
  int needed = vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  if (needed <= 0) return 0;
  std::string text(static_cast<size_t>(needed) + 1, '\0');
  vsnprintf(text.data(), text.size(), format, args);
  text.resize(static_cast<size_t>(needed));

  // One call may hold many lines (the verifier log) or part of one.
  std::string pending = t_partial_line + text;
  t_partial_line.clear();
  size_t start = 0;
  for (size_t nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n', start)) {
    PushLine(pending.substr(start, nl - start));
    start = nl + 1;
  }
  t_partial_line = pending.substr(start);
  return needed;
}

std::string CollectLog() {
  std::string out;
  for (const auto& line : t_log_lines) {
    out += line;
    out += '\n';
  }
  if (!t_partial_line.empty()) out += t_partial_line + '\n';
  if (!out.empty()) out.pop_back();
  return out;
}

}  // namespace

void InstallLibbpfLogCapture() { libbpf_set_print(CaptureLibbpfPrint); }

void ClearLibbpfLog() {
  t_log_lines.clear();
  t_partial_line.clear();
}

std::string ErrnoName(int err) {
  if (err < 0) err = -err;
  // Kernel-internal codes that leak to user space through bpf(2) and have no libc name.
  switch (err) {
    case 512: return "ERESTARTSYS";
    case 524: return "ENOTSUPP";
    default: break;
  }
  const char* name = strerrorname_np(err);
  return name != nullptr ? std::string(name) : "E" + std::to_string(err);
}

static std::string Describe(int err) {
  if (err == 524) return "Operation not supported by this map or program type";
  return strerror(err);
}

Napi::Error MakeErrnoError(Napi::Env env, int err, const std::string& what) {
  if (err < 0) err = -err;
  if (err == 0) err = EINVAL;  // a failure that forgot to set errno: still an error
  std::string code = ErrnoName(err);
  std::string message = what + ": " + Describe(err) + " (" + code + ")";
  std::string log = CollectLog();
  if (!log.empty()) message += "\nlibbpf log:\n" + log;
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  error.Set("errno", Napi::Number::New(env, err));
  if (!log.empty()) error.Set("libbpfLog", Napi::String::New(env, log));
  ClearLibbpfLog();
  return error;
}

void ThrowErrno(Napi::Env env, int err, const std::string& what) {
  throw MakeErrnoError(env, err, what);
}

void ThrowWithCode(Napi::Env env, int err, const std::string& message) {
  if (err < 0) err = -err;
  std::string code = ErrnoName(err);
  Napi::Error error = Napi::Error::New(env, message + " (" + code + ")");
  error.Set("code", Napi::String::New(env, code));
  error.Set("errno", Napi::Number::New(env, err));
  throw error;
}

}  // namespace tortie
