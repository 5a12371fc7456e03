// btf.cc — every named struct with its size and members' byte offsets and sizes, so
// that codecs written by hand can be checked against what the compiler laid out.
#include "btf.h"

#include <bpf/btf.h>

#include <cerrno>
#include <memory>

#include "args.h"
#include "errors.h"

namespace tortie {
namespace {

struct BtfDeleter {
  void operator()(btf* types) const { btf__free(types); }
};

Napi::Object Member(Napi::Env env, const btf* types, const btf_type* owner, uint32_t index,
                    const std::string& struct_name) {
  const btf_member* member = btf_members(owner) + index;
  // Sizes resolve through typedefs, const/volatile and arrays (element size * count).
  __s64 size = btf__resolve_size(types, member->type);
  if (size < 0) {
    ThrowErrno(env, static_cast<int>(size),
               "btf__resolve_size(struct " + struct_name + " member " + std::to_string(index) + ")");
  }
  uint32_t bit_offset = btf_member_bit_offset(owner, index);
  uint32_t bit_size = btf_member_bitfield_size(owner, index);
  Napi::Object out = Napi::Object::New(env);
  // Anonymous members (an unnamed union or struct inside) keep an empty name.
  out.Set("name", btf__name_by_offset(types, member->name_off));
  out.Set("offset", bit_offset / 8);
  // A bitfield reports the bytes its bits touch, not its storage type's size.
  out.Set("size", bit_size == 0 ? static_cast<double>(size)
                                : static_cast<double>((bit_offset % 8 + bit_size + 7) / 8));
  return out;
}

}  // namespace

Napi::Value BtfStructs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "objectPath");
  LogScope scope;
  std::unique_ptr<btf, BtfDeleter> types(btf__parse(path.c_str(), nullptr));
  if (!types) ThrowErrno(env, errno, "btf__parse(" + path + ")");

  Napi::Array out = Napi::Array::New(env);
  uint32_t count = btf__type_cnt(types.get());
  uint32_t next = 0;
  for (uint32_t id = 1; id < count; id++) {
    const btf_type* type = btf__type_by_id(types.get(), id);
    if (!btf_is_struct(type) || type->name_off == 0) continue;
    std::string name = btf__name_by_offset(types.get(), type->name_off);
    Napi::Array members = Napi::Array::New(env);
    for (uint32_t i = 0; i < btf_vlen(type); i++) {
      members.Set(i, Member(env, types.get(), type, i, name));
    }
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("name", name);
    entry.Set("size", type->size);
    entry.Set("members", members);
    out.Set(next++, entry);
  }
  return out;
}

}  // namespace tortie
