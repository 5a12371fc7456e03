// map.cc — BpfMap: lookup/update/delete, batch operations, entries(), info(), pin.
#include "map.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <unordered_set>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "fd_kind.h"

namespace tortie {
namespace {

constexpr int kEnotsupp = 524;  // kernel-internal "no such operation for this map type"

bool IsPerCpu(uint32_t type) {
  switch (type) {
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
      return true;
    default:
      return false;
  }
}

// Map types whose kernel implementation has BPF_MAP_*_BATCH: the hash family
// (htab batch ops) and arrays (generic batch update; arrays cannot delete). Every
// other type — notably LPM_TRIE, which has no batch ops at all — goes through a loop
// of single-element calls.
bool HasBatchUpdate(uint32_t type) {
  switch (type) {
    case BPF_MAP_TYPE_HASH:
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_LRU_HASH:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_ARRAY:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
      return true;
    default:
      return false;
  }
}

bool HasBatchDelete(uint32_t type) {
  switch (type) {
    case BPF_MAP_TYPE_HASH:
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_LRU_HASH:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
      return true;
    default:
      return false;
  }
}

bool IsUnsupported(int err) { return err == kEnotsupp || err == EOPNOTSUPP; }

size_t PossibleCpus(Napi::Env env) {
  static int cpus = 0;
  if (cpus <= 0) {
    cpus = libbpf_num_possible_cpus();
    if (cpus <= 0) ThrowErrno(env, cpus, "libbpf_num_possible_cpus");
  }
  return static_cast<size_t>(cpus);
}

// Bytes of one value as user space sees it: per-CPU maps hold one 8-byte-aligned slot
// per possible CPU.
size_t ValueBytes(Napi::Env env, const BpfMapWrap::Layout& layout) {
  if (!IsPerCpu(layout.type)) return layout.value_size;
  return PossibleCpus(env) * ((static_cast<size_t>(layout.value_size) + 7) / 8 * 8);
}

std::string TypeName(uint32_t type) {
  const char* name = libbpf_bpf_map_type_str(static_cast<bpf_map_type>(type));
  return name != nullptr ? name : "unknown(" + std::to_string(type) + ")";
}

void CheckLength(Napi::Env env, const std::string& map, const char* what, size_t got,
                 size_t want) {
  if (got != want) {
    ThrowWithCode(env, EINVAL,
                  "map " + map + ": " + what + " is " + std::to_string(got) + " bytes, expected " +
                      std::to_string(want));
  }
}

std::string Where(const std::string& map, const char* call) {
  return std::string(call) + "(map " + map + ")";
}

}  // namespace

Napi::Function BpfMapWrap::Define(Napi::Env env) {
  return DefineClass(env, "BpfMap",
                     {
                         InstanceAccessor<&BpfMapWrap::Fd>("fd"),
                         InstanceMethod<&BpfMapWrap::Info>("info"),
                         InstanceMethod<&BpfMapWrap::Lookup>("lookup"),
                         InstanceMethod<&BpfMapWrap::Update>("update"),
                         InstanceMethod<&BpfMapWrap::Delete>("delete"),
                         InstanceMethod<&BpfMapWrap::UpdateBatch>("updateBatch"),
                         InstanceMethod<&BpfMapWrap::DeleteBatch>("deleteBatch"),
                         InstanceMethod<&BpfMapWrap::Entries>("entries"),
                         InstanceMethod<&BpfMapWrap::Count>("count"),
                         InstanceMethod<&BpfMapWrap::Pin>("pin"),
                         InstanceMethod<&BpfMapWrap::Close>("close"),
                     });
}

BpfMapWrap::BpfMapWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfMapWrap>(info) {
  state_ = std::move(*ExternalArg<State>(info, "BpfMap"));
}

BpfMapWrap::~BpfMapWrap() {
  if (state_.owned_fd >= 0) close(state_.owned_fd);
}

Napi::Object BpfMapWrap::FromObject(Napi::Env env, const ObjectRef& object, bpf_map* map) {
  State state;
  state.object = object;
  state.map = map;
  state.pinned_layout = {bpf_map__name(map),        bpf_map__type(map),
                         bpf_map__key_size(map),    bpf_map__value_size(map),
                         bpf_map__max_entries(map), bpf_map__map_flags(map)};
  return Data(env).map_class.New({Napi::External<State>::New(env, &state)});
}

Napi::Value BpfMapWrap::OpenPinned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "path");
  LogScope scope;
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) ThrowErrno(env, errno, "bpf_obj_get(" + path + ")");
  if (BpfFdKind(fd) != "bpf-map") {
    close(fd);
    ThrowWithCode(env, EINVAL, path + " is pinned but is not a BPF map");
  }
  bpf_map_info map_info = {};
  __u32 len = sizeof(map_info);
  if (bpf_obj_get_info_by_fd(fd, &map_info, &len) != 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, err, "bpf_obj_get_info_by_fd(" + path + ")");
  }
  State state;
  state.owned_fd = fd;
  state.pinned_layout = {map_info.name,        map_info.type,        map_info.key_size,
                         map_info.value_size,  map_info.max_entries, map_info.map_flags};
  try {
    return Data(env).map_class.New({Napi::External<State>::New(env, &state)});
  } catch (...) {
    if (state.owned_fd >= 0) close(state.owned_fd);
    throw;
  }
}

BpfMapWrap::Layout BpfMapWrap::CurrentLayout() const {
  if (!state_.object || state_.object->obj == nullptr) return state_.pinned_layout;
  const bpf_map* map = state_.map;
  return {bpf_map__name(map),        bpf_map__type(map),        bpf_map__key_size(map),
          bpf_map__value_size(map),  bpf_map__max_entries(map), bpf_map__map_flags(map)};
}

int BpfMapWrap::CurrentFd() const {
  if (state_.object) {
    if (state_.object->obj == nullptr || !state_.object->loaded) return -1;
    int fd = bpf_map__fd(state_.map);
    return fd < 0 ? -1 : fd;
  }
  return state_.owned_fd;
}

int BpfMapWrap::RequireFd(Napi::Env env, const char* operation) const {
  int fd = CurrentFd();
  if (fd >= 0) return fd;
  std::string name = CurrentLayout().name;
  if (state_.object && state_.object->obj != nullptr) {
    ThrowWithCode(env, EBADF, std::string(operation) + "(map " + name +
                                  "): the object is not loaded yet");
  }
  if (state_.object) {
    ThrowWithCode(env, EBADF,
                  std::string(operation) + "(map " + name + "): its object was closed");
  }
  ThrowWithCode(env, EBADF, std::string(operation) + "(map " + name + "): the map is closed");
}

Napi::Value BpfMapWrap::Fd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), CurrentFd());
}

Napi::Value BpfMapWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Layout layout = CurrentLayout();
  Napi::Object out = Napi::Object::New(env);
  uint32_t id = 0, btf_key = 0, btf_value = 0;
  int fd = CurrentFd();
  if (fd >= 0) {
    bpf_map_info map_info = {};
    __u32 len = sizeof(map_info);
    LogScope scope;
    if (bpf_obj_get_info_by_fd(fd, &map_info, &len) != 0) {
      ThrowErrno(env, errno, Where(layout.name, "bpf_obj_get_info_by_fd"));
    }
    // The kernel's view wins (an adopted pin is what the programs use); only the name
    // stays libbpf's, which is not cut to 15 characters.
    layout.type = map_info.type;
    layout.key_size = map_info.key_size;
    layout.value_size = map_info.value_size;
    layout.max_entries = map_info.max_entries;
    layout.flags = map_info.map_flags;
    id = map_info.id;
    btf_key = map_info.btf_key_type_id;
    btf_value = map_info.btf_value_type_id;
  } else if (state_.object && state_.object->obj != nullptr) {
    btf_key = bpf_map__btf_key_type_id(state_.map);
    btf_value = bpf_map__btf_value_type_id(state_.map);
  } else {
    RequireFd(env, "info");
  }
  out.Set("name", layout.name);
  out.Set("type", layout.type);
  out.Set("typeName", TypeName(layout.type));
  out.Set("keySize", layout.key_size);
  out.Set("valueSize", layout.value_size);
  out.Set("maxEntries", layout.max_entries);
  out.Set("flags", layout.flags);
  out.Set("id", id);
  out.Set("btfKeyTypeId", btf_key);
  out.Set("btfValueTypeId", btf_value);
  return out;
}

Napi::Value BpfMapWrap::Lookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Buffer<uint8_t> key = BufferArg(info, 0, "key");
  int fd = RequireFd(env, "lookup");
  Layout layout = CurrentLayout();
  CheckLength(env, layout.name, "key", key.Length(), layout.key_size);
  std::vector<uint8_t> value(ValueBytes(env, layout));
  LogScope scope;
  if (bpf_map_lookup_elem(fd, key.Data(), value.data()) != 0) {
    if (errno == ENOENT) return env.Null();
    ThrowErrno(env, errno, Where(layout.name, "bpf_map_lookup_elem"));
  }
  return Napi::Buffer<uint8_t>::Copy(env, value.data(), value.size());
}

void BpfMapWrap::Update(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Buffer<uint8_t> key = BufferArg(info, 0, "key");
  Napi::Buffer<uint8_t> value = BufferArg(info, 1, "value");
  uint64_t flags = static_cast<uint64_t>(IntArg(info, 2, "flags", 0, BPF_F_LOCK, BPF_ANY));
  int fd = RequireFd(env, "update");
  Layout layout = CurrentLayout();
  CheckLength(env, layout.name, "key", key.Length(), layout.key_size);
  CheckLength(env, layout.name, "value", value.Length(), ValueBytes(env, layout));
  LogScope scope;
  if (bpf_map_update_elem(fd, key.Data(), value.Data(), flags) != 0) {
    ThrowErrno(env, errno, Where(layout.name, "bpf_map_update_elem"));
  }
}

Napi::Value BpfMapWrap::Delete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Buffer<uint8_t> key = BufferArg(info, 0, "key");
  int fd = RequireFd(env, "delete");
  Layout layout = CurrentLayout();
  CheckLength(env, layout.name, "key", key.Length(), layout.key_size);
  LogScope scope;
  if (bpf_map_delete_elem(fd, key.Data()) != 0) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    ThrowErrno(env, errno, Where(layout.name, "bpf_map_delete_elem"));
  }
  return Napi::Boolean::New(env, true);
}

Napi::Value BpfMapWrap::UpdateBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Buffer<uint8_t> keys = BufferArg(info, 0, "keys");
  Napi::Buffer<uint8_t> values = BufferArg(info, 1, "values");
  uint64_t flags = static_cast<uint64_t>(IntArg(info, 2, "flags", 0, BPF_F_LOCK, BPF_ANY));
  int fd = RequireFd(env, "updateBatch");
  Layout layout = CurrentLayout();
  if (layout.key_size == 0 || keys.Length() % layout.key_size != 0) {
    ThrowWithCode(env, EINVAL, "updateBatch(map " + layout.name + "): keys are " +
                                   std::to_string(keys.Length()) +
                                   " bytes, not a multiple of the key size " +
                                   std::to_string(layout.key_size));
  }
  size_t count = keys.Length() / layout.key_size;
  size_t value_bytes = ValueBytes(env, layout);
  CheckLength(env, layout.name, "values", values.Length(), count * value_bytes);
  if (count == 0) return Napi::Number::New(env, 0);

  LogScope scope;
  if (HasBatchUpdate(layout.type)) {
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = flags, .flags = 0);
    __u32 done = static_cast<__u32>(count);
    if (bpf_map_update_batch(fd, keys.Data(), values.Data(), &done, &opts) == 0) {
      return Napi::Number::New(env, done);
    }
    int err = errno;
    // A kernel without batch support for this type has written nothing: use the loop.
    if (!(IsUnsupported(err) && done == 0)) {
      ThrowErrno(env, err, Where(layout.name, "bpf_map_update_batch") + " after " +
                               std::to_string(done) + " of " + std::to_string(count) +
                               " entries");
    }
  }
  for (size_t i = 0; i < count; i++) {
    if (bpf_map_update_elem(fd, keys.Data() + i * layout.key_size,
                            values.Data() + i * value_bytes, flags) != 0) {
      ThrowErrno(env, errno, Where(layout.name, "bpf_map_update_elem") + " for entry " +
                                 std::to_string(i) + " of " + std::to_string(count));
    }
  }
  return Napi::Number::New(env, static_cast<double>(count));
}

Napi::Value BpfMapWrap::DeleteBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Buffer<uint8_t> keys = BufferArg(info, 0, "keys");
  int fd = RequireFd(env, "deleteBatch");
  Layout layout = CurrentLayout();
  if (layout.key_size == 0 || keys.Length() % layout.key_size != 0) {
    ThrowWithCode(env, EINVAL, "deleteBatch(map " + layout.name + "): keys are " +
                                   std::to_string(keys.Length()) +
                                   " bytes, not a multiple of the key size " +
                                   std::to_string(layout.key_size));
  }
  size_t count = keys.Length() / layout.key_size;
  size_t next = 0;
  size_t deleted = 0;
  LogScope scope;

  if (HasBatchDelete(layout.type)) {
    // The kernel stops a delete batch at the first absent key (ENOENT) and reports how
    // many it deleted before it: skip that key and go on with the rest.
    while (next < count) {
      LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = 0, .flags = 0);
      __u32 done = static_cast<__u32>(count - next);
      int rc = bpf_map_delete_batch(fd, keys.Data() + next * layout.key_size, &done, &opts);
      int err = errno;
      deleted += done;
      next += done;
      if (rc == 0) break;
      if (err == ENOENT) {
        next++;
        continue;
      }
      if (IsUnsupported(err) && done == 0) break;  // finish with the loop below
      ThrowErrno(env, err, Where(layout.name, "bpf_map_delete_batch") + " after " +
                               std::to_string(next) + " of " + std::to_string(count) + " keys");
    }
  }
  for (; next < count; next++) {
    if (bpf_map_delete_elem(fd, keys.Data() + next * layout.key_size) == 0) {
      deleted++;
    } else if (errno != ENOENT) {
      ThrowErrno(env, errno, Where(layout.name, "bpf_map_delete_elem") + " for key " +
                                 std::to_string(next) + " of " + std::to_string(count));
    }
  }
  return Napi::Number::New(env, static_cast<double>(deleted));
}

Napi::Value BpfMapWrap::Entries(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = RequireFd(env, "entries");
  Layout layout = CurrentLayout();
  size_t value_bytes = ValueBytes(env, layout);
  std::vector<uint8_t> key(layout.key_size), next(layout.key_size), value(value_bytes);
  Napi::Array keys = Napi::Array::New(env);
  Napi::Array values = Napi::Array::New(env);

  // When the key we continue from is deleted under us, hash maps and LPM tries answer
  // get_next_key with their first key again: the walk restarts. `seen` keeps such a
  // restart from listing an entry twice, and the step bound keeps a map that churns
  // faster than we read it from holding us forever.
  std::unordered_set<std::string> seen;
  const uint64_t max_steps = (static_cast<uint64_t>(layout.max_entries) + 1) * 16 + 1024;
  uint64_t steps = 0;
  bool first = true;
  uint32_t out = 0;
  LogScope scope;
  for (;;) {
    if (bpf_map_get_next_key(fd, first ? nullptr : key.data(), next.data()) != 0) {
      if (errno == ENOENT) break;
      ThrowErrno(env, errno, Where(layout.name, "bpf_map_get_next_key"));
    }
    first = false;
    key.swap(next);
    if (++steps > max_steps) {
      ThrowWithCode(env, EAGAIN, "entries(map " + layout.name +
                                     "): the map kept changing while it was read; try again");
    }
    std::string id(reinterpret_cast<const char*>(key.data()), key.size());
    if (seen.count(id) != 0) continue;
    if (bpf_map_lookup_elem(fd, key.data(), value.data()) != 0) {
      if (errno == ENOENT) continue;  // deleted between get_next_key and lookup
      ThrowErrno(env, errno, Where(layout.name, "bpf_map_lookup_elem"));
    }
    seen.insert(std::move(id));
    keys.Set(out, Napi::Buffer<uint8_t>::Copy(env, key.data(), key.size()));
    values.Set(out, Napi::Buffer<uint8_t>::Copy(env, value.data(), value.size()));
    out++;
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("keys", keys);
  result.Set("values", values);
  return result;
}

// The number of entries, without handing any to JavaScript. The hash family answers
// BPF_MAP_LOOKUP_BATCH (one syscall per kChunk entries, copied into a scratch buffer
// that is thrown away); other types, or a kernel without it, walk get_next_key. A count
// of a map that changes while it is read is a sample, not a snapshot: an entry added or
// evicted meanwhile may or may not be in it.
Napi::Value BpfMapWrap::Count(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = RequireFd(env, "count");
  Layout layout = CurrentLayout();
  size_t value_bytes = ValueBytes(env, layout);
  LogScope scope;
  if (HasBatchDelete(layout.type)) {
    constexpr __u32 kChunk = 4096;
    std::vector<uint8_t> keys(static_cast<size_t>(kChunk) * layout.key_size);
    std::vector<uint8_t> values(static_cast<size_t>(kChunk) * value_bytes);
    std::vector<uint8_t> in_batch(layout.key_size), out_batch(layout.key_size);
    uint64_t total = 0;
    bool first = true;
    for (;;) {
      LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = 0, .flags = 0);
      __u32 n = kChunk;
      int rc = bpf_map_lookup_batch(fd, first ? nullptr : in_batch.data(), out_batch.data(),
                                    keys.data(), values.data(), &n, &opts);
      int err = rc == 0 ? 0 : errno;
      if (rc != 0 && err != ENOENT) {
        if (first && IsUnsupported(err)) break;  // no batch ops here: walk below
        ThrowErrno(env, err, Where(layout.name, "bpf_map_lookup_batch"));
      }
      total += n;
      if (err == ENOENT) return Napi::Number::New(env, static_cast<double>(total));
      first = false;
      in_batch.swap(out_batch);
    }
  }
  std::vector<uint8_t> key(layout.key_size), next(layout.key_size);
  uint64_t total = 0;
  const uint64_t max_steps = (static_cast<uint64_t>(layout.max_entries) + 1) * 16 + 1024;
  for (bool first = true;; first = false) {
    if (bpf_map_get_next_key(fd, first ? nullptr : key.data(), next.data()) != 0) {
      if (errno == ENOENT) break;
      ThrowErrno(env, errno, Where(layout.name, "bpf_map_get_next_key"));
    }
    key.swap(next);
    if (++total > max_steps) {
      ThrowWithCode(env, EAGAIN, "count(map " + layout.name +
                                     "): the map kept changing while it was read; try again");
    }
  }
  return Napi::Number::New(env, static_cast<double>(total));
}

void BpfMapWrap::Pin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "path");
  int fd = RequireFd(env, "pin");
  LogScope scope;
  if (bpf_obj_pin(fd, path.c_str()) != 0) {
    ThrowErrno(env, errno, "bpf_obj_pin(map " + CurrentLayout().name + ", " + path + ")");
  }
}

// A map opened from a pin closes its fd. A map of an object lets go of the object (the
// object's close() releases the map itself); this wrapper throws EBADF afterwards.
void BpfMapWrap::Close(const Napi::CallbackInfo&) {
  if (state_.object) state_.pinned_layout = CurrentLayout();
  state_.object.reset();
  state_.map = nullptr;
  if (state_.owned_fd >= 0) close(state_.owned_fd);
  state_.owned_fd = -1;
}

}  // namespace tortie
