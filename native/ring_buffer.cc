// ring_buffer.cc — BPF ring buffer consumption: consume() drains on the JS thread; with
// poll: true a thread sleeps in epoll and hands batches to the JS thread through a
// thread-safe function, so the event loop never blocks on the ring.
#include "ring_buffer.h"

#include <bpf/libbpf.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "addon.h"
#include "args.h"
#include "errors.h"

namespace tortie {

struct Delivery {
  std::shared_ptr<RingState> state;
  std::vector<Record> records;
};

namespace {

// One drain copies at most this many records, so that a producer faster than us
// cannot keep a consume() (and with it the event loop) busy forever.
constexpr size_t kMaxRecordsPerDrain = 16384;
// Returned by the sample callback to stop a full drain; any negative value stops
// libbpf, and this one is ours, not an error.
constexpr int kDrainFull = -ENOBUFS;
constexpr size_t kMaxInFlight = 8;

struct Init {
  int map_fd;
  Napi::Function on_record;
  bool poll;
};

int CopyRecord(void* ctx, void* data, size_t size) {
  auto* state = static_cast<RingState*>(ctx);
  const auto* bytes = static_cast<const uint8_t*>(data);
  state->sink->emplace_back(bytes, bytes + size);
  return state->sink->size() >= kMaxRecordsPerDrain ? kDrainFull : 0;
}

// Copies what the ring holds now into `out`. Returns 0 or a negative errno.
int Drain(RingState& state, std::vector<Record>& out) {
  std::lock_guard<std::mutex> lock(state.rb_mutex);
  if (state.rb == nullptr) return 0;
  state.sink = &out;
  int rc = ring_buffer__consume(state.rb);
  state.sink = nullptr;
  return rc < 0 && rc != kDrainFull ? rc : 0;
}

void PollLoop(std::shared_ptr<RingState> state, DeliveryFunction deliver) {
  int ring_fd = ring_buffer__epoll_fd(state->rb);
  epoll_event events[2];
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(state->flow_mutex);
      state->flow_cv.wait(lock, [&] { return state->stopping || state->in_flight < kMaxInFlight; });
      if (state->stopping) return;
    }
    int n = epoll_wait(state->epoll_fd, events, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // the epoll fd is gone: nothing more can arrive
    }
    bool ready = false;
    for (int i = 0; i < n; i++) {
      if (events[i].data.fd == state->stop_fd) return;
      if (events[i].data.fd == ring_fd) ready = true;
    }
    if (!ready) continue;

    auto batch = std::make_unique<Delivery>();
    batch->state = state;
    if (Drain(*state, batch->records) < 0 || batch->records.empty()) continue;
    {
      std::lock_guard<std::mutex> lock(state->flow_mutex);
      state->in_flight++;
    }
    if (deliver.NonBlockingCall(batch.get()) != napi_ok) return;  // JS side is closing
    batch.release();  // DeliverBatch owns it now
  }
}

}  // namespace

// Runs on the JS thread for each batch the poller queued (env is null when the
// environment is being torn down: then only free the batch).
void DeliverBatch(Napi::Env env, Napi::Function on_record, std::nullptr_t*, Delivery* batch) {
  std::unique_ptr<Delivery> owned(batch);
  RingState& state = *owned->state;
  {
    std::lock_guard<std::mutex> lock(state.flow_mutex);
    state.in_flight--;
  }
  state.flow_cv.notify_one();
  if (static_cast<napi_env>(env) == nullptr || on_record.IsEmpty()) return;
  for (const Record& record : owned->records) {
    if (state.closed) return;
    // A throwing callback becomes an uncaught exception, as with any event listener.
    on_record.Call({Napi::Buffer<uint8_t>::Copy(env, record.data(), record.size())});
  }
}

Napi::Function RingBufferWrap::Define(Napi::Env env) {
  return DefineClass(env, "RingBuffer",
                     {
                         InstanceMethod<&RingBufferWrap::Consume>("consume"),
                         InstanceMethod<&RingBufferWrap::Close>("close"),
                     });
}

Napi::Value RingBufferWrap::Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Init init{};
  init.map_fd = static_cast<int>(IntArg(info, 0, "mapFd", 0, 0x7fffffff));
  if (info.Length() < 2 || !info[1].IsFunction()) {
    throw Napi::TypeError::New(env, "onRecord must be a function");
  }
  init.on_record = info[1].As<Napi::Function>();
  init.poll = BoolOption(env, OptionsArg(info, 2, "options"), "poll").value_or(false);
  return Data(env).ring_buffer_class.New({Napi::External<Init>::New(env, &init)});
}

RingBufferWrap::RingBufferWrap(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<RingBufferWrap>(info), state_(std::make_shared<RingState>()) {
  Napi::Env env = info.Env();
  Init* init = ExternalArg<Init>(info, "RingBuffer");
  env_ = env;
  LogScope scope;
  state_->rb = ring_buffer__new(init->map_fd, CopyRecord, state_.get(), nullptr);
  if (state_->rb == nullptr) {
    ThrowErrno(env, errno, "ring_buffer__new(map fd " + std::to_string(init->map_fd) + ")");
  }
  on_record_ = Napi::Persistent(init->on_record);
  if (init->poll) StartPoller(env);
}

RingBufferWrap::~RingBufferWrap() {
  StopPoller();
  FreeRing();
}

void RingBufferWrap::StartPoller(Napi::Env env) {
  state_->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  state_->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (state_->stop_fd < 0 || state_->epoll_fd < 0) {
    int err = errno;
    FreeRing();
    ThrowErrno(env, err, "ring buffer poller: eventfd/epoll_create1");
  }
  int ring_fd = ring_buffer__epoll_fd(state_->rb);
  epoll_event stop_event = {};
  stop_event.events = EPOLLIN;
  stop_event.data.fd = state_->stop_fd;
  epoll_event ring_event = {};
  ring_event.events = EPOLLIN;
  ring_event.data.fd = ring_fd;
  if (epoll_ctl(state_->epoll_fd, EPOLL_CTL_ADD, state_->stop_fd, &stop_event) != 0 ||
      epoll_ctl(state_->epoll_fd, EPOLL_CTL_ADD, ring_fd, &ring_event) != 0) {
    int err = errno;
    FreeRing();
    ThrowErrno(env, err, "ring buffer poller: epoll_ctl");
  }

  deliver_ = DeliveryFunction::New(env, on_record_.Value(), "tortie ring buffer", 0, 1);
  polling_ = true;
  // While it polls, the wrapper must not be collected (records would stop arriving at
  // an arbitrary GC): hold it until close().
  Ref();
  napi_add_env_cleanup_hook(env, OnEnvTeardown, this);
  cleanup_hook_ = true;
  poller_ = std::thread(PollLoop, state_, deliver_);
}

void RingBufferWrap::StopPoller() {
  if (!polling_) return;
  polling_ = false;
  {
    std::lock_guard<std::mutex> lock(state_->flow_mutex);
    state_->stopping = true;
  }
  state_->flow_cv.notify_all();
  uint64_t one = 1;
  if (write(state_->stop_fd, &one, sizeof(one)) < 0) {
    // The eventfd cannot be full after one write; nothing else can fail here.
  }
  if (poller_.joinable()) poller_.join();
  // The poller held the function's only thread slot; queued batches still reach
  // DeliverBatch, which drops them because state_->closed is set.
  deliver_.Release();
  if (cleanup_hook_) {
    napi_remove_env_cleanup_hook(env_, OnEnvTeardown, this);
    cleanup_hook_ = false;
  }
  close(state_->stop_fd);
  close(state_->epoll_fd);
  state_->stop_fd = state_->epoll_fd = -1;
}

void RingBufferWrap::FreeRing() {
  state_->closed = true;
  std::lock_guard<std::mutex> lock(state_->rb_mutex);
  if (state_->rb != nullptr) ring_buffer__free(state_->rb);
  state_->rb = nullptr;
}

void RingBufferWrap::OnEnvTeardown(void* self) {
  auto* wrap = static_cast<RingBufferWrap*>(self);
  wrap->cleanup_hook_ = false;  // being run: do not remove it
  wrap->state_->closed = true;
  wrap->StopPoller();
  wrap->FreeRing();
}

Napi::Value RingBufferWrap::Consume(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (state_->closed) ThrowWithCode(env, EBADF, "consume: the ring buffer is closed");
  std::vector<Record> drained;
  LogScope scope;
  int rc = Drain(*state_, drained);
  for (Record& record : drained) pending_.push_back(std::move(record));
  if (rc < 0) ThrowErrno(env, rc, "ring_buffer__consume");

  // Hand records over one by one: if the callback throws, the rest stay pending for
  // the next consume() instead of being lost.
  uint32_t delivered = 0;
  while (!pending_.empty() && !state_->closed) {
    Record record = std::move(pending_.front());
    pending_.pop_front();
    delivered++;
    on_record_.Call({Napi::Buffer<uint8_t>::Copy(env, record.data(), record.size())});
  }
  return Napi::Number::New(env, delivered);
}

void RingBufferWrap::Close(const Napi::CallbackInfo&) {
  if (state_->closed && !polling_) return;
  state_->closed = true;
  bool was_polling = polling_;
  StopPoller();
  FreeRing();
  pending_.clear();
  if (was_polling) Unref();
}

}  // namespace tortie
