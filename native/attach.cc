// attach.cc — tc programs on a clsact qdisc and XDP programs, through libbpf's netlink
// helpers. Everything runs in the calling thread's network namespace (see netns.cc).
#include "attach.h"

#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>

#include <cerrno>
#include <string>

#include "args.h"
#include "errors.h"

namespace tortie {
namespace {

constexpr int64_t kMaxIfindex = 0x7fffffff;

struct TcTarget {
  int ifindex;
  bpf_tc_attach_point point;
  std::string direction;
  uint32_t priority;
  uint32_t handle;
};

TcTarget ReadTcTarget(const Napi::CallbackInfo& info, size_t options_index) {
  Napi::Env env = info.Env();
  TcTarget target{};
  target.ifindex = static_cast<int>(IntArg(info, 0, "ifindex", 1, kMaxIfindex));
  target.direction = StringArg(info, 1, "direction");
  if (target.direction == "ingress") {
    target.point = BPF_TC_INGRESS;
  } else if (target.direction == "egress") {
    target.point = BPF_TC_EGRESS;
  } else {
    ThrowWithCode(env, EINVAL,
                  "direction must be \"ingress\" or \"egress\", got \"" + target.direction + "\"");
  }
  Napi::Object options = OptionsArg(info, options_index, "options");
  // tc priorities are 16 bits; handles 32 (0 would mean "any", which libbpf refuses).
  target.priority = static_cast<uint32_t>(IntOption(env, options, "priority", 1, 0xffff).value_or(1));
  target.handle = static_cast<uint32_t>(IntOption(env, options, "handle", 1, 0xffffffff).value_or(1));
  return target;
}

std::string Describe(const TcTarget& t) {
  return "ifindex " + std::to_string(t.ifindex) + " " + t.direction + " priority " +
         std::to_string(t.priority) + " handle " + std::to_string(t.handle);
}

Napi::Object Attachment(Napi::Env env, const TcTarget& t, uint32_t prog_id) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("ifindex", t.ifindex);
  out.Set("direction", t.direction);
  out.Set("priority", t.priority);
  out.Set("handle", t.handle);
  out.Set("progId", prog_id);
  return out;
}

}  // namespace

Napi::Value TcAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TcTarget target = ReadTcTarget(info, 3);
  int prog_fd = static_cast<int>(IntArg(info, 2, "progFd", 0, 0x7fffffff));
  Napi::Object options = OptionsArg(info, 3, "options");
  bool replace = BoolOption(env, options, "replace").value_or(true);

  LogScope scope;
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = target.ifindex, .attach_point = target.point);
  int err = bpf_tc_hook_create(&hook);
  if (err != 0 && err != -EEXIST) {
    ThrowErrno(env, err, "bpf_tc_hook_create(clsact on ifindex " + std::to_string(target.ifindex) + ")");
  }
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd,
              .flags = replace ? static_cast<__u32>(BPF_TC_F_REPLACE) : 0u,
              .prog_id = 0, .handle = target.handle, .priority = target.priority);
  err = bpf_tc_attach(&hook, &opts);
  if (err != 0) ThrowErrno(env, err, "bpf_tc_attach(" + Describe(target) + ")");
  return Attachment(env, target, opts.prog_id);
}

Napi::Value TcDetach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TcTarget target = ReadTcTarget(info, 2);
  LogScope scope;
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = target.ifindex, .attach_point = target.point);
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = 0, .flags = 0, .prog_id = 0,
              .handle = target.handle, .priority = target.priority);
  int err = bpf_tc_detach(&hook, &opts);
  // ENOENT: no such filter; EINVAL: no clsact qdisc on the device at all.
  if (err == -ENOENT || err == -EINVAL) return Napi::Boolean::New(env, false);
  if (err != 0) ThrowErrno(env, err, "bpf_tc_detach(" + Describe(target) + ")");
  return Napi::Boolean::New(env, true);
}

Napi::Value TcQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TcTarget target = ReadTcTarget(info, 2);
  LogScope scope;
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = target.ifindex, .attach_point = target.point);
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = 0, .flags = 0, .prog_id = 0,
              .handle = target.handle, .priority = target.priority);
  int err = bpf_tc_query(&hook, &opts);
  if (err == -ENOENT || err == -EINVAL) return env.Null();
  if (err != 0) ThrowErrno(env, err, "bpf_tc_query(" + Describe(target) + ")");
  return Attachment(env, target, opts.prog_id);
}

void XdpAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = static_cast<int>(IntArg(info, 0, "ifindex", 1, kMaxIfindex));
  int prog_fd = static_cast<int>(IntArg(info, 1, "progFd", 0, 0x7fffffff));
  __u32 flags = static_cast<__u32>(IntArg(info, 2, "flags", 0, 0xffffffff, 0));
  LogScope scope;
  int err = bpf_xdp_attach(ifindex, prog_fd, flags, nullptr);
  if (err != 0) {
    ThrowErrno(env, err, "bpf_xdp_attach(ifindex " + std::to_string(ifindex) + ", flags " +
                             std::to_string(flags) + ")");
  }
}

void XdpDetach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = static_cast<int>(IntArg(info, 0, "ifindex", 1, kMaxIfindex));
  __u32 flags = static_cast<__u32>(IntArg(info, 1, "flags", 0, 0xffffffff, 0));
  LogScope scope;
  int err = bpf_xdp_detach(ifindex, flags, nullptr);
  if (err != 0) {
    ThrowErrno(env, err, "bpf_xdp_detach(ifindex " + std::to_string(ifindex) + ", flags " +
                             std::to_string(flags) + ")");
  }
}

Napi::Value XdpQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = static_cast<int>(IntArg(info, 0, "ifindex", 1, kMaxIfindex));
  int flags = static_cast<int>(IntArg(info, 1, "flags", 0, 0x7fffffff, 0));
  // libbpf answers "nothing attached" for a device that does not exist (its netlink
  // dump simply finds no such link): say ENODEV instead. The ioctl behind
  // if_indextoname runs in the calling thread's namespace, like the query.
  char name[IF_NAMESIZE];
  if (if_indextoname(static_cast<unsigned>(ifindex), name) == nullptr) {
    int err = errno == ENXIO ? ENODEV : errno;  // glibc reports an unknown index as ENXIO
    ThrowErrno(env, err, "bpf_xdp_query_id(ifindex " + std::to_string(ifindex) + ")");
  }
  LogScope scope;
  __u32 prog_id = 0;
  int err = bpf_xdp_query_id(ifindex, flags, &prog_id);
  if (err != 0) {
    ThrowErrno(env, err, "bpf_xdp_query_id(ifindex " + std::to_string(ifindex) + ")");
  }
  return Napi::Number::New(env, prog_id);
}

// What is attached at a device's XDP hook, and in which mode: {mode, progId, drvProgId,
// skbProgId, hwProgId}. mode is "none", "native" (driver), "generic" (skb), "offload" or
// "multi" (several at once).
Napi::Value XdpInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = static_cast<int>(IntArg(info, 0, "ifindex", 1, kMaxIfindex));
  char name[IF_NAMESIZE];
  if (if_indextoname(static_cast<unsigned>(ifindex), name) == nullptr) {
    int err = errno == ENXIO ? ENODEV : errno;
    ThrowErrno(env, err, "bpf_xdp_query(ifindex " + std::to_string(ifindex) + ")");
  }
  LogScope scope;
  LIBBPF_OPTS(bpf_xdp_query_opts, opts);
  int err = bpf_xdp_query(ifindex, 0, &opts);
  if (err != 0) ThrowErrno(env, err, "bpf_xdp_query(ifindex " + std::to_string(ifindex) + ")");
  const char* mode = "none";
  switch (opts.attach_mode) {
    case XDP_ATTACHED_DRV: mode = "native"; break;
    case XDP_ATTACHED_SKB: mode = "generic"; break;
    case XDP_ATTACHED_HW: mode = "offload"; break;
    case XDP_ATTACHED_MULTI: mode = "multi"; break;
    default: break;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("mode", mode);
  out.Set("progId", opts.prog_id);
  out.Set("drvProgId", opts.drv_prog_id);
  out.Set("skbProgId", opts.skb_prog_id);
  out.Set("hwProgId", opts.hw_prog_id);
  return out;
}

}  // namespace tortie
