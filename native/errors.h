// errors.h — turning a failed libbpf or system call into a JS Error.
//
// Every thrown error carries `code` (the errno name, e.g. "ENOENT"), `errno` (the
// positive number) and, when libbpf said something during the failing call, the last
// lines it logged (`libbpfLog`, also appended to the message). The verifier log of a
// rejected program reaches JS this way.
#pragma once

#include <napi.h>

#include <string>

namespace tortie {

// Installs the libbpf print callback that records WARN/INFO lines per thread.
void InstallLibbpfLogCapture();

// Forgets what libbpf logged so far on this thread. Every binding entry point that
// calls into libbpf starts with a LogScope so the lines attached to an error belong to
// the failing call only.
void ClearLibbpfLog();

struct LogScope {
  LogScope() { ClearLibbpfLog(); }
};

// The errno name for `err` ("ENOENT"; "ENOTSUPP" for the kernel-internal 524), or
// "E<number>" when it has none.
std::string ErrnoName(int err);

// Builds the error for a call that failed with `err` (positive errno). `what` names
// the call and its subject, e.g. "bpf_obj_get(/sys/fs/bpf/x)".
Napi::Error MakeErrnoError(Napi::Env env, int err, const std::string& what);

// Throws MakeErrnoError. libbpf returns negative errnos: both signs are accepted.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& what);

// Throws for a failure detected by the binding itself (bad argument, wrong state).
[[noreturn]] void ThrowWithCode(Napi::Env env, int err, const std::string& message);

}  // namespace tortie
