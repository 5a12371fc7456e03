// ring_buffer.h — reading a BPF ring buffer map from JS, on demand or in the background.
#pragma once

#include <napi.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

struct ring_buffer;

namespace tortie {

using Record = std::vector<uint8_t>;

// Shared by the JS-side wrapper, the poller thread and the deliveries queued to the JS
// thread, so that none of them outlives what it touches.
struct RingState {
  ring_buffer* rb = nullptr;
  std::mutex rb_mutex;                   // ring_buffer__consume has one consumer at a time
  std::vector<Record>* sink = nullptr;   // where the libbpf callback copies records to
  std::atomic<bool> closed{false};       // no record reaches JS after close()

  // Poller flow control: at most kMaxInFlight batches queued for the JS thread; when JS
  // falls behind the poller stops reading and the kernel ring absorbs (or drops) the rest.
  std::mutex flow_mutex;
  std::condition_variable flow_cv;
  size_t in_flight = 0;
  bool stopping = false;
  int stop_fd = -1;   // eventfd: wakes the poller to exit
  int epoll_fd = -1;  // the poller's own epoll: the stop eventfd + libbpf's epoll fd
};

struct Delivery;
void DeliverBatch(Napi::Env env, Napi::Function on_record, std::nullptr_t*, Delivery* batch);
using DeliveryFunction = Napi::TypedThreadSafeFunction<std::nullptr_t, Delivery, DeliverBatch>;

class RingBufferWrap : public Napi::ObjectWrap<RingBufferWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // native.ringBuffer(mapFd, onRecord, { poll })
  static Napi::Value Create(const Napi::CallbackInfo& info);

  explicit RingBufferWrap(const Napi::CallbackInfo& info);
  ~RingBufferWrap() override;

 private:
  Napi::Value Consume(const Napi::CallbackInfo& info);
  void Close(const Napi::CallbackInfo& info);

  void StartPoller(Napi::Env env);
  // Stops and joins the poller; safe from the JS thread and from env teardown.
  void StopPoller();
  void FreeRing();
  static void OnEnvTeardown(void* self);

  std::shared_ptr<RingState> state_;
  Napi::FunctionReference on_record_;
  std::deque<Record> pending_;  // drained by consume() but not yet handed to JS
  bool polling_ = false;
  bool cleanup_hook_ = false;
  napi_env env_ = nullptr;
  DeliveryFunction deliver_;
  std::thread poller_;
};

}  // namespace tortie
