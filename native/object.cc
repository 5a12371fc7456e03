// object.cc — BpfObject: open an ELF object, set globals, pin maps, load.
#include "object.h"

#include <bpf/btf.h>
#include <linux/limits.h>

#include <cerrno>
#include <cstring>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "map.h"
#include "program.h"

namespace tortie {
namespace {

// Where libbpf keeps the variables of a global-data section before load.
struct GlobalSlot {
  bpf_map* map = nullptr;
  size_t offset = 0;
  size_t size = 0;
  std::string section;
};

// Finds `name` among the variables of the object's data sections (.rodata, .data,
// .bss and their named variants) through the BTF DATASEC that describes each section.
bool FindGlobal(Napi::Env env, bpf_object* obj, const std::string& name, GlobalSlot* slot) {
  const btf* types = bpf_object__btf(obj);
  if (types == nullptr) return false;
  __u32 count = btf__type_cnt(types);
  for (__u32 id = 1; id < count; id++) {
    const btf_type* sec = btf__type_by_id(types, id);
    if (!btf_is_datasec(sec)) continue;
    const char* section = btf__name_by_offset(types, sec->name_off);
    const btf_var_secinfo* vars = btf_var_secinfos(sec);
    for (__u16 i = 0; i < btf_vlen(sec); i++) {
      const btf_type* var = btf__type_by_id(types, vars[i].type);
      if (!btf_is_var(var) || name != btf__name_by_offset(types, var->name_off)) continue;
      if (strcmp(section, ".maps") == 0) {
        ThrowWithCode(env, EINVAL, "setGlobal(" + name + "): that is a map, not a variable");
      }
      if (btf_var(var)->linkage == BTF_VAR_GLOBAL_EXTERN) {
        ThrowWithCode(env, EINVAL,
                      "setGlobal(" + name + "): an extern (" + section +
                          ") is resolved by libbpf, not set");
      }
      slot->map = bpf_object__find_map_by_name(obj, section);
      slot->offset = vars[i].offset;
      slot->size = vars[i].size;
      slot->section = section;
      return true;
    }
  }
  return false;
}

}  // namespace

Napi::Function BpfObjectWrap::Define(Napi::Env env) {
  return DefineClass(env, "BpfObject",
                     {
                         InstanceAccessor<&BpfObjectWrap::Path>("path"),
                         InstanceMethod<&BpfObjectWrap::SetGlobal>("setGlobal"),
                         InstanceMethod<&BpfObjectWrap::Load>("load"),
                         InstanceMethod<&BpfObjectWrap::Program>("program"),
                         InstanceMethod<&BpfObjectWrap::Programs>("programs"),
                         InstanceMethod<&BpfObjectWrap::Map>("map"),
                         InstanceMethod<&BpfObjectWrap::Maps>("maps"),
                         InstanceMethod<&BpfObjectWrap::Close>("close"),
                     });
}

BpfObjectWrap::BpfObjectWrap(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<BpfObjectWrap>(info) {
  handle_ = *ExternalArg<ObjectRef>(info, "BpfObject");
}

Napi::Value BpfObjectWrap::Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "path");
  Napi::Object options = OptionsArg(info, 1, "options");

  std::string pin_root;
  Napi::Value root = options.Get("pinRoot");
  if (!root.IsUndefined()) {
    if (!root.IsString() || root.As<Napi::String>().Utf8Value().empty()) {
      throw Napi::TypeError::New(env, "pinRoot must be a non-empty string");
    }
    pin_root = root.As<Napi::String>().Utf8Value();
    while (pin_root.size() > 1 && pin_root.back() == '/') pin_root.pop_back();
  }

  LogScope scope;
  auto handle = std::make_shared<ObjectHandle>();
  handle->path = path;
  handle->obj = bpf_object__open_file(path.c_str(), nullptr);
  if (handle->obj == nullptr) ThrowErrno(env, errno, "bpf_object__open_file(" + path + ")");

  if (!pin_root.empty()) {
    bpf_map* map;
    bpf_object__for_each_map(map, handle->obj) {
      if (bpf_map__is_internal(map)) continue;
      std::string pin_path = pin_root + "/" + bpf_map__name(map);
      if (pin_path.size() >= PATH_MAX) {
        ThrowWithCode(env, ENAMETOOLONG, "pin path " + pin_path + " is too long");
      }
      int err = bpf_map__set_pin_path(map, pin_path.c_str());
      if (err != 0) ThrowErrno(env, err, "bpf_map__set_pin_path(" + pin_path + ")");
    }
  }
  return Data(env).object_class.New({Napi::External<ObjectRef>::New(env, &handle)});
}

bpf_object* BpfObjectWrap::Require(Napi::Env env, const char* operation) {
  if (handle_->obj == nullptr) {
    ThrowWithCode(env, EBADF, std::string(operation) + ": object " + handle_->path + " is closed");
  }
  return handle_->obj;
}

Napi::Value BpfObjectWrap::Path(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), handle_->path);
}

void BpfObjectWrap::SetGlobal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "name");
  Napi::Buffer<uint8_t> value = BufferArg(info, 1, "value");
  bpf_object* obj = Require(env, "setGlobal");
  if (handle_->load_attempted) {
    // After load .rodata is frozen (its mmap is read-only) and the others are live
    // kernel maps: a write here would crash or silently do nothing.
    ThrowWithCode(env, EBUSY, "setGlobal(" + name + "): object " + handle_->path +
                                  " is already loaded; globals are set before load()");
  }
  GlobalSlot slot;
  if (!FindGlobal(env, obj, name, &slot)) {
    ThrowWithCode(env, ENOENT, "setGlobal(" + name + "): no global variable of that name in " +
                                   handle_->path + " (is it used by a program and in its BTF?)");
  }
  if (value.Length() != slot.size) {
    ThrowWithCode(env, EINVAL, "setGlobal(" + name + "): the variable is " +
                                   std::to_string(slot.size) + " bytes, the value " +
                                   std::to_string(value.Length()));
  }
  if (slot.map == nullptr) {
    ThrowWithCode(env, ENOENT, "setGlobal(" + name + "): libbpf made no map for section " +
                                   slot.section);
  }
  size_t region = 0;
  void* data = const_cast<void*>(bpf_map__initial_value(slot.map, &region));
  if (data == nullptr || slot.offset + slot.size > region) {
    ThrowWithCode(env, EINVAL, "setGlobal(" + name + "): section " + slot.section +
                                   " has no initial value covering the variable");
  }
  memcpy(static_cast<uint8_t*>(data) + slot.offset, value.Data(), slot.size);
}

void BpfObjectWrap::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_object* obj = Require(env, "load");
  if (handle_->load_attempted) {
    ThrowWithCode(env, EBUSY, "load: object " + handle_->path + " was already loaded once");
  }
  LogScope scope;
  handle_->load_attempted = true;
  int err = bpf_object__load(obj);
  if (err != 0) ThrowErrno(env, err, "bpf_object__load(" + handle_->path + ")");
  handle_->loaded = true;
}

Napi::Value BpfObjectWrap::Program(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "name");
  bpf_program* prog = bpf_object__find_program_by_name(Require(env, "program"), name.c_str());
  if (prog == nullptr) {
    ThrowWithCode(env, ENOENT, "no program named " + name + " in " + handle_->path);
  }
  return BpfProgramWrap::FromObject(env, handle_, prog);
}

Napi::Value BpfObjectWrap::Programs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_object* obj = Require(env, "programs");
  Napi::Array out = Napi::Array::New(env);
  bpf_program* prog;
  uint32_t i = 0;
  bpf_object__for_each_program(prog, obj) {
    out.Set(i++, BpfProgramWrap::FromObject(env, handle_, prog));
  }
  return out;
}

Napi::Value BpfObjectWrap::Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "name");
  bpf_map* map = bpf_object__find_map_by_name(Require(env, "map"), name.c_str());
  if (map == nullptr) ThrowWithCode(env, ENOENT, "no map named " + name + " in " + handle_->path);
  return BpfMapWrap::FromObject(env, handle_, map);
}

Napi::Value BpfObjectWrap::Maps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_object* obj = Require(env, "maps");
  Napi::Array out = Napi::Array::New(env);
  bpf_map* map;
  uint32_t i = 0;
  bpf_object__for_each_map(map, obj) { out.Set(i++, BpfMapWrap::FromObject(env, handle_, map)); }
  return out;
}

// Closes the libbpf object now: its maps and programs are released (pins stay), and
// every wrapper taken from it throws EBADF from here on.
void BpfObjectWrap::Close(const Napi::CallbackInfo&) { handle_->Close(); }

}  // namespace tortie
