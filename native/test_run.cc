// test_run.cc — bpf_prog_test_run_opts with an optional struct __sk_buff context.
#include "test_run.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <cerrno>
#include <string>
#include <vector>

#include "args.h"
#include "errors.h"

namespace tortie {

Napi::Value TestRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int prog_fd = static_cast<int>(IntArg(info, 0, "progFd", 0, 0x7fffffff));
  if (info.Length() < 2 || !info[1].IsObject()) {
    throw Napi::TypeError::New(env, "testRun options must be an object with data");
  }
  Napi::Object options = info[1].As<Napi::Object>();
  Napi::Value data_value = options.Get("data");
  if (!data_value.IsBuffer()) throw Napi::TypeError::New(env, "data must be a Buffer");
  Napi::Buffer<uint8_t> data = data_value.As<Napi::Buffer<uint8_t>>();
  int repeat = static_cast<int>(IntOption(env, options, "repeat", 1, 0x7fffffff).value_or(1));
  size_t out_size = static_cast<size_t>(
      IntOption(env, options, "dataSizeOut", 0, 0x7fffffff)
          .value_or(static_cast<int64_t>(data.Length()) + 256));

  // Only a given ctx is passed: the kernel then checks every other __sk_buff field is
  // zero, and programs other than tc (XDP) take no __sk_buff at all.
  __sk_buff skb = {};
  bool with_ctx = false;
  Napi::Value ctx_value = options.Get("ctx");
  if (!ctx_value.IsUndefined()) {
    if (!ctx_value.IsObject()) throw Napi::TypeError::New(env, "ctx must be an object");
    Napi::Object ctx = ctx_value.As<Napi::Object>();
    with_ctx = true;
    skb.ifindex = static_cast<__u32>(IntOption(env, ctx, "ifindex", 0, 0xffffffff).value_or(0));
    skb.mark = static_cast<__u32>(IntOption(env, ctx, "mark", 0, 0xffffffff).value_or(0));
    skb.ingress_ifindex =
        static_cast<__u32>(IntOption(env, ctx, "ingressIfindex", 0, 0xffffffff).value_or(0));
  }

  std::vector<uint8_t> out(out_size);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data.Data(),
              .data_out = out.empty() ? nullptr : out.data(),
              .data_size_in = static_cast<__u32>(data.Length()),
              .data_size_out = static_cast<__u32>(out.size()),
              .ctx_in = with_ctx ? &skb : nullptr, .ctx_out = nullptr,
              .ctx_size_in = with_ctx ? static_cast<__u32>(sizeof(skb)) : 0u,
              .ctx_size_out = 0, .retval = 0, .repeat = repeat);
  LogScope scope;
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) {
    int err = errno;
    std::string what = "bpf_prog_test_run_opts(prog fd " + std::to_string(prog_fd) + ")";
    if (err == ENOSPC) {
      what += ": the output packet needs " + std::to_string(opts.data_size_out) +
              " bytes, dataSizeOut is " + std::to_string(out.size());
    }
    ThrowErrno(env, err, what);
  }
  Napi::Object result = Napi::Object::New(env);
  // Signed, as the program wrote it: tc's TC_ACT_UNSPEC is -1, not 4294967295.
  result.Set("retval", static_cast<int32_t>(opts.retval));
  size_t produced = opts.data_size_out < out.size() ? opts.data_size_out : out.size();
  result.Set("data", Napi::Buffer<uint8_t>::Copy(env, out.data(), produced));
  result.Set("durationNs", opts.duration);
  return result;
}

}  // namespace tortie
