// module.cc — the addon's entry point: registers the classes and functions of
// NativeBinding (src/native/types.ts) and installs libbpf's log capture.
#include <bpf/libbpf.h>
#include <napi.h>

#include "addon.h"
#include "attach.h"
#include "btf.h"
#include "errors.h"
#include "map.h"
#include "netlink.h"
#include "netns.h"
#include "object.h"
#include "program.h"
#include "ring_buffer.h"
#include "test_run.h"

namespace tortie {
namespace {

Napi::Value PossibleCpus(const Napi::CallbackInfo& info) {
  LogScope scope;
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) ThrowErrno(info.Env(), cpus, "libbpf_num_possible_cpus");
  return Napi::Number::New(info.Env(), cpus);
}

Napi::Value LibbpfVersion(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), std::to_string(libbpf_major_version()) + "." +
                                           std::to_string(libbpf_minor_version()));
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InstallLibbpfLogCapture();

  auto* data = new AddonData();
  data->object_class = Napi::Persistent(BpfObjectWrap::Define(env));
  data->program_class = Napi::Persistent(BpfProgramWrap::Define(env));
  data->map_class = Napi::Persistent(BpfMapWrap::Define(env));
  data->ring_buffer_class = Napi::Persistent(RingBufferWrap::Define(env));
  env.SetInstanceData<AddonData>(data);

  exports.Set("openObject", Napi::Function::New<BpfObjectWrap::Open>(env, "openObject"));
  exports.Set("openPinnedMap", Napi::Function::New<BpfMapWrap::OpenPinned>(env, "openPinnedMap"));
  exports.Set("openPinnedProgram",
              Napi::Function::New<BpfProgramWrap::OpenPinned>(env, "openPinnedProgram"));
  exports.Set("tcAttach", Napi::Function::New<TcAttach>(env, "tcAttach"));
  exports.Set("tcDetach", Napi::Function::New<TcDetach>(env, "tcDetach"));
  exports.Set("tcQuery", Napi::Function::New<TcQuery>(env, "tcQuery"));
  exports.Set("xdpAttach", Napi::Function::New<XdpAttach>(env, "xdpAttach"));
  exports.Set("xdpDetach", Napi::Function::New<XdpDetach>(env, "xdpDetach"));
  exports.Set("xdpQuery", Napi::Function::New<XdpQuery>(env, "xdpQuery"));
  exports.Set("xdpInfo", Napi::Function::New<XdpInfo>(env, "xdpInfo"));
  exports.Set("testRun", Napi::Function::New<TestRun>(env, "testRun"));
  exports.Set("ringBuffer", Napi::Function::New<RingBufferWrap::Create>(env, "ringBuffer"));
  exports.Set("btfStructs", Napi::Function::New<BtfStructs>(env, "btfStructs"));
  exports.Set("enterNetns", Napi::Function::New<EnterNetns>(env, "enterNetns"));
  exports.Set("restoreNetns", Napi::Function::New<RestoreNetns>(env, "restoreNetns"));
  exports.Set("podNetworkCreate",
              Napi::Function::New<PodNetworkCreate>(env, "podNetworkCreate"));
  exports.Set("linkDelete", Napi::Function::New<LinkDelete>(env, "linkDelete"));
  exports.Set("prohibitRules", Napi::Function::New<ProhibitRules>(env, "prohibitRules"));
  exports.Set("linkDump", Napi::Function::New<LinkDump>(env, "linkDump"));
  exports.Set("addressDump", Napi::Function::New<AddressDump>(env, "addressDump"));
  exports.Set("routeDump", Napi::Function::New<RouteDump>(env, "routeDump"));
  exports.Set("possibleCpus", Napi::Function::New<PossibleCpus>(env, "possibleCpus"));
  exports.Set("libbpfVersion", Napi::Function::New<LibbpfVersion>(env, "libbpfVersion"));
  return exports;
}

}  // namespace tortie

static Napi::Object InitTortieNative(Napi::Env env, Napi::Object exports) {
  return tortie::Init(env, exports);
}

NODE_API_MODULE(tortie_native, InitTortieNative)
