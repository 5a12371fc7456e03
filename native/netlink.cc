// netlink.cc — a pod's network through raw rtnetlink, in the namespaces it lives in.
//
// CNI ADD used one `ip` (or `nsenter … ip`) process per batch of steps: ~3 ms each on an
// idle machine, several times that on a loaded one, six of them per ADD. Here each step
// is one netlink request on a socket opened inside the right namespace (a netlink socket
// stays bound to the namespace it was created in), acknowledged before the next one.
// The pod's network is made on a worker thread, which enters the node's namespace to open
// its socket and write the per-interface sysctls (/proc/sys/net resolves against the
// opener's namespace), then the pod's, then returns to its own; the guard rules and the
// dumps run on the calling thread the same way. Undoing a partial
// create is the caller's (src/plumbing/pod-network.ts deletes the host end, which takes
// its peer and routes along): an error names the step that failed (`step`) and the errno.
#include "netlink.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <bpf/libbpf.h>
#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "args.h"
#include "errors.h"

namespace tortie {
namespace {

// IFLA_INET6_ADDR_GEN_MODE's "none" (linux/if_link.h: IN6_ADDR_GEN_MODE_NONE).
constexpr uint8_t kAddrGenModeNone = 1;

struct StepError {
  std::string step;
  int err;
};

// One request under construction: header, fixed part, attributes (nests by offset).
class Request {
 public:
  Request(uint16_t type, uint16_t flags, const void* fixed, size_t fixed_len) {
    buf_.resize(NLMSG_ALIGN(sizeof(nlmsghdr)) + NLMSG_ALIGN(fixed_len));
    auto* h = header();
    h->nlmsg_type = type;
    h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    std::memcpy(buf_.data() + NLMSG_ALIGN(sizeof(nlmsghdr)), fixed, fixed_len);
  }
  void Put(uint16_t type, const void* data, size_t len) {
    size_t at = buf_.size();
    buf_.resize(at + RTA_ALIGN(RTA_LENGTH(len)));
    auto* a = reinterpret_cast<rtattr*>(buf_.data() + at);
    a->rta_type = type;
    a->rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
    std::memcpy(RTA_DATA(a), data, len);
  }
  void PutString(uint16_t type, const std::string& s) { Put(type, s.c_str(), s.size() + 1); }
  void PutU32(uint16_t type, uint32_t v) { Put(type, &v, sizeof v); }
  void PutU8(uint16_t type, uint8_t v) { Put(type, &v, sizeof v); }
  size_t Begin(uint16_t type) {
    size_t at = buf_.size();
    Put(type, nullptr, 0);
    return at;
  }
  // Appends the fixed part of a nested message (IFLA_INFO_DATA/VETH_INFO_PEER's ifinfomsg).
  void PutRaw(const void* data, size_t len) {
    size_t at = buf_.size();
    buf_.resize(at + NLMSG_ALIGN(len));
    std::memcpy(buf_.data() + at, data, len);
  }
  void End(size_t at) {
    reinterpret_cast<rtattr*>(buf_.data() + at)->rta_len = static_cast<uint16_t>(buf_.size() - at);
  }
  nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(buf_.data()); }
  std::vector<char>& Finish(uint32_t seq) {
    header()->nlmsg_len = static_cast<uint32_t>(buf_.size());
    header()->nlmsg_seq = seq;
    return buf_;
  }

 private:
  std::vector<char> buf_;
};

class Socket {
 public:
  Socket() : fd_(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)) {}
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  bool ok() const { return fd_ >= 0; }

  // Sends a dump request and calls `each` with every message until NLMSG_DONE; 0 or errno.
  template <typename F>
  int Dump(Request& req, F each) {
    req.header()->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    auto& buf = req.Finish(++seq_);
    if (send(fd_, buf.data(), buf.size(), 0) < 0) return errno;
    std::vector<char> in(1 << 16);
    for (;;) {
      ssize_t n = recv(fd_, in.data(), in.size(), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      int len = static_cast<int>(n);
      for (auto* h = reinterpret_cast<nlmsghdr*>(in.data()); NLMSG_OK(h, len);
           h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_seq != seq_) continue;
        if (h->nlmsg_type == NLMSG_DONE) return 0;
        if (h->nlmsg_type == NLMSG_ERROR) return -static_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
        each(h);
      }
    }
  }

  // Sends and waits for the ACK; 0 or a positive errno. `reply` gets the first
  // non-error message of a GET.
  int Call(Request& req, std::vector<char>* reply = nullptr) {
    auto& buf = req.Finish(++seq_);
    if (send(fd_, buf.data(), buf.size(), 0) < 0) return errno;
    std::vector<char> in(65536);
    for (;;) {
      ssize_t n = recv(fd_, in.data(), in.size(), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      int len = static_cast<int>(n);
      for (auto* h = reinterpret_cast<nlmsghdr*>(in.data()); NLMSG_OK(h, len);
           h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_seq != seq_) continue;
        if (h->nlmsg_type == NLMSG_ERROR) {
          auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
          return -e->error;
        }
        if (reply != nullptr && reply->empty())
          reply->assign(reinterpret_cast<char*>(h), reinterpret_cast<char*>(h) + h->nlmsg_len);
      }
    }
  }

 private:
  int fd_;
  uint32_t seq_ = 0;
};

// Enters a namespace by path for the lifetime of the object (no path: stays put).
class InNetns {
 public:
  explicit InNetns(const std::string& path) {
    if (path.empty()) return;
    previous_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (previous_ < 0) throw StepError{"open /proc/thread-self/ns/net", errno};
    int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (target < 0) {
      int err = errno;
      close(previous_);
      previous_ = -1;
      throw StepError{"open the network namespace " + path, err};
    }
    int rc = setns(target, CLONE_NEWNET);
    int err = errno;
    close(target);
    if (rc != 0) {
      close(previous_);
      previous_ = -1;
      throw StepError{"enter the network namespace " + path, err};
    }
  }
  ~InNetns() {
    if (previous_ < 0) return;
    // Cannot fail for a namespace fd we opened ourselves; nothing sensible to do if it did.
    (void)setns(previous_, CLONE_NEWNET);
    close(previous_);
  }
  InNetns(const InNetns&) = delete;
  InNetns& operator=(const InNetns&) = delete;

 private:
  int previous_ = -1;
};

void Check(int err, const std::string& step) {
  if (err != 0) throw StepError{step, err};
}

in_addr ParseIp(const std::string& text, const std::string& what) {
  in_addr a{};
  if (inet_pton(AF_INET, text.c_str(), &a) != 1) throw StepError{"parse " + what + " " + text, EINVAL};
  return a;
}

void WriteSysctl(const std::string& path, const char* value) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw StepError{"open " + path, errno};
  ssize_t n = write(fd, value, std::strlen(value));
  int err = errno;
  close(fd);
  if (n < 0) throw StepError{"write " + path, err};
}

// Sets a link up (and addrgenmode none) by index.
void LinkUpNoV6(Socket& s, int ifindex, const std::string& name) {
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifindex;
  ifi.ifi_flags = IFF_UP;
  ifi.ifi_change = IFF_UP;
  Request req(RTM_NEWLINK, 0, &ifi, sizeof ifi);
  size_t spec = req.Begin(IFLA_AF_SPEC);
  size_t inet6 = req.Begin(AF_INET6);
  req.PutU8(IFLA_INET6_ADDR_GEN_MODE, kAddrGenModeNone);
  req.End(inet6);
  req.End(spec);
  Check(s.Call(req), "turn off IPv6 address generation and bring " + name + " up");
}

// ifindex and MAC of a link by name.
void GetLink(Socket& s, const std::string& name, int* ifindex, std::string* mac) {
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  Request req(RTM_GETLINK, 0, &ifi, sizeof ifi);
  req.PutString(IFLA_IFNAME, name);
  std::vector<char> reply;
  Check(s.Call(req, &reply), "read " + name);
  if (reply.empty()) throw StepError{"read " + name + " (no answer)", EIO};
  auto* h = reinterpret_cast<nlmsghdr*>(reply.data());
  auto* info = static_cast<ifinfomsg*>(NLMSG_DATA(h));
  *ifindex = info->ifi_index;
  int len = static_cast<int>(IFLA_PAYLOAD(h));
  for (auto* a = IFLA_RTA(info); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    if (a->rta_type != IFLA_ADDRESS || RTA_PAYLOAD(a) != 6) continue;
    auto* b = static_cast<unsigned char*>(RTA_DATA(a));
    char text[18];
    snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
    *mac = text;
  }
}

void AddRoute(Socket& s, in_addr dst, int prefix, int ifindex, const in_addr* via, bool onlink,
              const std::string& step) {
  rtmsg rt{};
  rt.rtm_family = AF_INET;
  rt.rtm_dst_len = static_cast<unsigned char>(prefix);
  rt.rtm_table = RT_TABLE_MAIN;
  rt.rtm_protocol = RTPROT_BOOT;
  rt.rtm_scope = via == nullptr ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  rt.rtm_type = RTN_UNICAST;
  if (onlink) rt.rtm_flags |= RTNH_F_ONLINK;
  Request req(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &rt, sizeof rt);
  if (prefix > 0) req.Put(RTA_DST, &dst, sizeof dst);
  if (via != nullptr) req.Put(RTA_GATEWAY, via, sizeof *via);
  req.PutU32(RTA_OIF, static_cast<uint32_t>(ifindex));
  Check(s.Call(req), step);
}

Napi::Error ToJsError(Napi::Env env, const StepError& e) {
  Napi::Error error = MakeErrnoError(env, e.err, e.step);
  error.Set("step", Napi::String::New(env, e.step));
  return error;
}

std::string OptionalString(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

std::string RequiredString(Napi::Env env, const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) ThrowWithCode(env, EINVAL, std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

}  // namespace

namespace {

struct PodNetworkArgs {
  std::string host_netns, pod_netns, host_if, pod_if, host_mac, ip_text, gw_text;
  uint32_t mtu = 0;
  // tortie_from_pod / tortie_to_pod (the agent's, BPF dataplane): attached to the host end
  // before it is up (-1: not attached here). Duplicates taken on the calling thread, so an
  // agent closing its object while the worker runs cannot pull them away; closed by the
  // worker.
  int from_pod_fd = -1, to_pod_fd = -1;
};

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) close(fd);
  }
};

// tc ingress <- from_pod, tc egress <- to_pod at tortie's slot (priority 1, handle 1, as
// src/loader/attach.ts), replacing: the agent's own attach later finds its programs there
// and replaces them with themselves. In the calling thread's namespace.
void AttachEndpointPrograms(int ifindex, const std::string& name, int from_pod_fd, int to_pod_fd) {
  const struct {
    bpf_tc_attach_point point;
    int fd;
    const char* what;
  } hooks[] = {{BPF_TC_INGRESS, from_pod_fd, "ingress"}, {BPF_TC_EGRESS, to_pod_fd, "egress"}};
  for (const auto& h : hooks) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = h.point);
    int err = bpf_tc_hook_create(&hook);
    if (err != 0 && err != -EEXIST)
      throw StepError{"create the clsact qdisc of " + name, -err};
    LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = h.fd, .flags = BPF_TC_F_REPLACE, .prog_id = 0,
                .handle = 1, .priority = 1);
    err = bpf_tc_attach(&hook, &opts);
    if (err != 0)
      throw StepError{"attach tortie's program to tc " + std::string(h.what) + " of " + name, -err};
  }
}

struct PodNetworkMade {
  int host_index = 0, pod_index = 0;
  std::string pod_mac;
};

// The whole create, on whichever thread runs it (it enters and leaves the namespaces
// itself: setns is per thread). Throws StepError.
void CreatePodNetwork(const PodNetworkArgs& a, PodNetworkMade* made) {
  FdCloser from_closer{a.from_pod_fd}, to_closer{a.to_pod_fd};
  const std::string& host_netns = a.host_netns;
  const std::string& pod_netns = a.pod_netns;
  const std::string& host_if = a.host_if;
  const std::string& pod_if = a.pod_if;
  const std::string& host_mac = a.host_mac;
  const std::string& ip_text = a.ip_text;
  const std::string& gw_text = a.gw_text;
  const uint32_t mtu = a.mtu;
  int& host_index = made->host_index;
  int& pod_index = made->pod_index;
  std::string& pod_mac = made->pod_mac;
  std::string ignored;
  in_addr ip = ParseIp(ip_text, "pod address");
  in_addr gw = ParseIp(gw_text, "gateway");
  unsigned char mac[6];
  if (sscanf(host_mac.c_str(), "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2],
             &mac[3], &mac[4], &mac[5]) != 6)
    throw StepError{"parse the host MAC " + host_mac, EINVAL};
  int pod_fd = open(pod_netns.c_str(), O_RDONLY | O_CLOEXEC);
  if (pod_fd < 0) throw StepError{"open the pod network namespace " + pod_netns, errno};
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{pod_fd};
  {
    InNetns in_host(host_netns);
    Socket s;
    if (!s.ok()) throw StepError{"open a netlink socket in the host namespace", errno};
    // The veth pair, its peer created straight in the pod's namespace.
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    Request req(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof ifi);
    req.PutString(IFLA_IFNAME, host_if);
    req.Put(IFLA_ADDRESS, mac, sizeof mac);
    if (mtu != 0) req.PutU32(IFLA_MTU, mtu);
    size_t linkinfo = req.Begin(IFLA_LINKINFO);
    req.PutString(IFLA_INFO_KIND, "veth");
    size_t data = req.Begin(IFLA_INFO_DATA);
    size_t peer = req.Begin(VETH_INFO_PEER);
    ifinfomsg peer_ifi{};
    peer_ifi.ifi_family = AF_UNSPEC;
    req.PutRaw(&peer_ifi, sizeof peer_ifi);
    req.PutString(IFLA_IFNAME, pod_if);
    if (mtu != 0) req.PutU32(IFLA_MTU, mtu);
    req.PutU32(IFLA_NET_NS_FD, static_cast<uint32_t>(pod_fd));
    req.End(peer);
    req.End(data);
    req.End(linkinfo);
    Check(s.Call(req), "create the veth pair (peer " + pod_if + " in " + pod_netns + ")");
    GetLink(s, host_if, &host_index, &ignored);
    // The guard of the BPF dataplane (src/cni/guard.ts): with the programs on it and no
    // endpoint entry yet, every IP packet either way is dropped from the moment it is up.
    if (a.from_pod_fd >= 0)
      AttachEndpointPrograms(host_index, host_if, a.from_pod_fd, a.to_pod_fd);
    LinkUpNoV6(s, host_index, host_if);
    AddRoute(s, ip, 32, host_index, nullptr, false, "add the host route to " + ip_text + "/32");
    WriteSysctl("/proc/sys/net/ipv4/ip_forward", "1");
    WriteSysctl("/proc/sys/net/ipv4/conf/" + host_if + "/proxy_arp", "1");
    // Answer ARP for the gateway at once, not after a random delay of up to 0.8 s.
    WriteSysctl("/proc/sys/net/ipv4/neigh/" + host_if + "/proxy_delay", "0");
  }
  {
    InNetns in_pod(pod_netns);
    Socket s;
    if (!s.ok()) throw StepError{"open a netlink socket in the pod namespace", errno};
    int lo = static_cast<int>(if_nametoindex("lo"));
    if (lo == 0) throw StepError{"find lo in the pod", errno};
    {
      ifinfomsg ifi{};
      ifi.ifi_family = AF_UNSPEC;
      ifi.ifi_index = lo;
      ifi.ifi_flags = IFF_UP;
      ifi.ifi_change = IFF_UP;
      Request req(RTM_NEWLINK, 0, &ifi, sizeof ifi);
      Check(s.Call(req), "bring lo up in the pod");
    }
    GetLink(s, pod_if, &pod_index, &pod_mac);
    {
      ifaddrmsg ifa{};
      ifa.ifa_family = AF_INET;
      ifa.ifa_prefixlen = 32;
      ifa.ifa_scope = RT_SCOPE_UNIVERSE;
      ifa.ifa_index = static_cast<uint32_t>(pod_index);
      Request req(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof ifa);
      req.Put(IFA_LOCAL, &ip, sizeof ip);
      req.Put(IFA_ADDRESS, &ip, sizeof ip);
      Check(s.Call(req), "add the pod address " + ip_text + "/32");
    }
    LinkUpNoV6(s, pod_index, pod_if);
    AddRoute(s, gw, 32, pod_index, nullptr, false, "add the pod's link route to " + gw_text);
    in_addr any{};
    AddRoute(s, any, 0, pod_index, &gw, true, "add the pod's default route via " + gw_text);
  }
}

// Creating the veth pair and its addresses takes the kernel a few milliseconds (more on a
// loaded node), which on the agent's event loop would hold up every other ADD's datastore
// calls and the agent's own reconciles: it runs on a worker thread, as LinkDelete does.
class PodNetworkWorker : public Napi::AsyncWorker {
 public:
  PodNetworkWorker(Napi::Env env, PodNetworkArgs args)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), args_(std::move(args)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      CreatePodNetwork(args_, &made_);
    } catch (const StepError& e) {
      error_ = e;
      failed_ = true;
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (failed_) {
      deferred_.Reject(ToJsError(env, error_).Value());
      return;
    }
    auto out = Napi::Object::New(env);
    out.Set("hostIfindex", Napi::Number::New(env, made_.host_index));
    out.Set("podIfindex", Napi::Number::New(env, made_.pod_index));
    out.Set("podMac", Napi::String::New(env, made_.pod_mac));
    deferred_.Resolve(out);
  }

 private:
  Napi::Promise::Deferred deferred_;
  PodNetworkArgs args_;
  PodNetworkMade made_;
  bool failed_ = false;
  StepError error_;
};

}  // namespace

Napi::Value PodNetworkCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) ThrowWithCode(env, EINVAL, "podNetworkCreate needs an options object");
  auto o = info[0].As<Napi::Object>();
  PodNetworkArgs a;
  a.host_netns = OptionalString(o, "hostNetns");
  a.pod_netns = RequiredString(env, o, "podNetns");
  a.host_if = RequiredString(env, o, "hostIfName");
  a.pod_if = RequiredString(env, o, "podIfName");
  a.host_mac = RequiredString(env, o, "hostMac");
  a.ip_text = RequiredString(env, o, "ip");
  a.gw_text = RequiredString(env, o, "gateway");
  a.mtu = o.Get("mtu").IsNumber() ? o.Get("mtu").As<Napi::Number>().Uint32Value() : 0;
  Napi::Value from = o.Get("fromPodFd"), to = o.Get("toPodFd");
  if (from.IsNumber() != to.IsNumber())
    ThrowWithCode(env, EINVAL, "podNetworkCreate needs both fromPodFd and toPodFd, or neither");
  if (from.IsNumber()) {
    int from_fd = from.As<Napi::Number>().Int32Value();
    int to_fd = to.As<Napi::Number>().Int32Value();
    if (from_fd < 0 || to_fd < 0)
      ThrowWithCode(env, EINVAL, "podNetworkCreate: program fds must be non-negative");
    a.from_pod_fd = fcntl(from_fd, F_DUPFD_CLOEXEC, 0);
    if (a.from_pod_fd < 0) ThrowWithCode(env, errno, "podNetworkCreate: duplicate fromPodFd");
    a.to_pod_fd = fcntl(to_fd, F_DUPFD_CLOEXEC, 0);
    if (a.to_pod_fd < 0) {
      int err = errno;
      close(a.from_pod_fd);
      ThrowWithCode(env, err, "podNetworkCreate: duplicate toPodFd");
    }
  }
  auto* worker = new PodNetworkWorker(env, std::move(a));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

namespace {

// Deleting a veth waits for the kernel to unregister it (RCU grace periods: ~10-20 ms on
// a loaded machine), so it runs on a worker thread, which enters the namespace itself
// (setns is per thread) and leaves it before the thread goes back to the pool.
class LinkDeleteWorker : public Napi::AsyncWorker {
 public:
  LinkDeleteWorker(Napi::Env env, std::string netns, std::string name)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        netns_(std::move(netns)),
        name_(std::move(name)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      InNetns in(netns_);
      Socket s;
      if (!s.ok()) throw StepError{"open a netlink socket", errno};
      ifinfomsg ifi{};
      ifi.ifi_family = AF_UNSPEC;
      Request req(RTM_DELLINK, 0, &ifi, sizeof ifi);
      req.PutString(IFLA_IFNAME, name_);
      int err = s.Call(req);
      if (err == ENODEV) return;
      Check(err, "delete " + name_);
      removed_ = true;
    } catch (const StepError& e) {
      error_ = e;
      failed_ = true;
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (failed_)
      deferred_.Reject(ToJsError(env, error_).Value());
    else
      deferred_.Resolve(Napi::Boolean::New(env, removed_));
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string netns_, name_;
  bool removed_ = false, failed_ = false;
  StepError error_;
};

}  // namespace

Napi::Value LinkDelete(const Napi::CallbackInfo& info) {
  const std::string netns = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  const std::string name = StringArg(info, 1, "name");
  auto* worker = new LinkDeleteWorker(info.Env(), netns, name);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// prohibitRules(netns, add, pref, iifs[], dsts[]): `pref P iif X prohibit` and
// `pref P to D/32 prohibit`, added (an existing one is fine) or deleted (an absent one is).
void ProhibitRules(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string netns = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  bool add = info[1].ToBoolean().Value();
  uint32_t pref = info[2].ToNumber().Uint32Value();
  if (!info[3].IsArray() || !info[4].IsArray())
    ThrowWithCode(env, EINVAL, "prohibitRules needs arrays of interfaces and addresses");
  auto iifs = info[3].As<Napi::Array>();
  auto dsts = info[4].As<Napi::Array>();
  try {
    InNetns in(netns);
    Socket s;
    if (!s.ok()) throw StepError{"open a netlink socket", errno};
    auto rule = [&](const std::string* iif, const in_addr* dst, const std::string& text) {
      fib_rule_hdr fr{};
      fr.family = AF_INET;
      fr.action = FR_ACT_PROHIBIT;
      fr.dst_len = dst == nullptr ? 0 : 32;
      Request req(add ? RTM_NEWRULE : RTM_DELRULE, add ? NLM_F_CREATE | NLM_F_EXCL : 0, &fr,
                  sizeof fr);
      req.PutU32(FRA_PRIORITY, pref);
      if (iif != nullptr) req.PutString(FRA_IFNAME, *iif);
      if (dst != nullptr) req.Put(FRA_DST, dst, sizeof *dst);
      int err = s.Call(req);
      if (add && err == EEXIST) return;
      if (!add && err == ENOENT) return;
      Check(err, std::string(add ? "add" : "delete") + " the rule pref " + std::to_string(pref) +
                     " " + text + " prohibit");
    };
    for (uint32_t i = 0; i < iifs.Length(); i++) {
      std::string name = iifs.Get(i).As<Napi::String>().Utf8Value();
      rule(&name, nullptr, "iif " + name);
    }
    for (uint32_t i = 0; i < dsts.Length(); i++) {
      std::string text = dsts.Get(i).As<Napi::String>().Utf8Value();
      in_addr dst = ParseIp(text, "guarded address");
      rule(nullptr, &dst, "to " + text + "/32");
    }
  } catch (const StepError& e) {
    throw ToJsError(env, e);
  }
}

// linkDump(netns): [{name, ifindex, up, mtu}] of every link in the namespace.
Napi::Value LinkDump(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string netns = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  auto out = Napi::Array::New(env);
  try {
    InNetns in(netns);
    Socket s;
    if (!s.ok()) throw StepError{"open a netlink socket", errno};
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    Request req(RTM_GETLINK, 0, &ifi, sizeof ifi);
    uint32_t i = 0;
    Check(s.Dump(req,
                 [&](nlmsghdr* h) {
                   if (h->nlmsg_type != RTM_NEWLINK) return;
                   auto* info = static_cast<ifinfomsg*>(NLMSG_DATA(h));
                   int len = static_cast<int>(IFLA_PAYLOAD(h));
                   const char* name = nullptr;
                   uint32_t mtu = 0;
                   for (auto* a = IFLA_RTA(info); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
                     if (a->rta_type == IFLA_IFNAME) name = static_cast<char*>(RTA_DATA(a));
                     if (a->rta_type == IFLA_MTU && RTA_PAYLOAD(a) >= sizeof(uint32_t))
                       std::memcpy(&mtu, RTA_DATA(a), sizeof mtu);
                   }
                   if (name == nullptr) return;
                   auto link = Napi::Object::New(env);
                   link.Set("name", Napi::String::New(env, name));
                   link.Set("ifindex", Napi::Number::New(env, info->ifi_index));
                   link.Set("up", Napi::Boolean::New(env, (info->ifi_flags & IFF_UP) != 0));
                   link.Set("mtu", Napi::Number::New(env, mtu));
                   out.Set(i++, link);
                 }),
          "list the links");
  } catch (const StepError& e) {
    throw ToJsError(env, e);
  }
  return out;
}

// addressDump(netns): [{ifindex, address, prefixlen, scope}] of every IPv4 address.
Napi::Value AddressDump(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string netns = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  auto out = Napi::Array::New(env);
  try {
    InNetns in(netns);
    Socket s;
    if (!s.ok()) throw StepError{"open a netlink socket", errno};
    ifaddrmsg ifa{};
    ifa.ifa_family = AF_INET;
    Request req(RTM_GETADDR, 0, &ifa, sizeof ifa);
    uint32_t i = 0;
    Check(s.Dump(req,
                 [&](nlmsghdr* h) {
                   if (h->nlmsg_type != RTM_NEWADDR) return;
                   auto* a4 = static_cast<ifaddrmsg*>(NLMSG_DATA(h));
                   if (a4->ifa_family != AF_INET) return;
                   int len = static_cast<int>(IFA_PAYLOAD(h));
                   const void* local = nullptr;
                   const void* address = nullptr;
                   for (auto* a = IFA_RTA(a4); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
                     if (a->rta_type == IFA_LOCAL) local = RTA_DATA(a);
                     if (a->rta_type == IFA_ADDRESS) address = RTA_DATA(a);
                   }
                   const void* ip = local != nullptr ? local : address;
                   if (ip == nullptr) return;
                   char text[INET_ADDRSTRLEN];
                   inet_ntop(AF_INET, ip, text, sizeof text);
                   auto o = Napi::Object::New(env);
                   o.Set("ifindex", Napi::Number::New(env, a4->ifa_index));
                   o.Set("address", Napi::String::New(env, text));
                   o.Set("prefixlen", Napi::Number::New(env, a4->ifa_prefixlen));
                   o.Set("scope", Napi::Number::New(env, a4->ifa_scope));
                   out.Set(i++, o);
                 }),
          "list the addresses");
  } catch (const StepError& e) {
    throw ToJsError(env, e);
  }
  return out;
}

// routeDump(netns, proto): [{dst, prefixlen, gateway, oif, mtu, prefsrc}] of the IPv4
// routes of the main table with that protocol.
Napi::Value RouteDump(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string netns = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  uint32_t proto = info[1].ToNumber().Uint32Value();
  auto out = Napi::Array::New(env);
  try {
    InNetns in(netns);
    Socket s;
    if (!s.ok()) throw StepError{"open a netlink socket", errno};
    rtmsg rt{};
    rt.rtm_family = AF_INET;
    Request req(RTM_GETROUTE, 0, &rt, sizeof rt);
    uint32_t i = 0;
    auto ip = [&](const void* p) {
      char text[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, p, text, sizeof text);
      return Napi::String::New(env, text);
    };
    Check(s.Dump(req,
                 [&](nlmsghdr* h) {
                   if (h->nlmsg_type != RTM_NEWROUTE) return;
                   auto* r = static_cast<rtmsg*>(NLMSG_DATA(h));
                   if (r->rtm_family != AF_INET || r->rtm_protocol != proto) return;
                   uint32_t table = r->rtm_table;
                   auto o = Napi::Object::New(env);
                   o.Set("prefixlen", Napi::Number::New(env, r->rtm_dst_len));
                   int len = static_cast<int>(RTM_PAYLOAD(h));
                   for (auto* a = RTM_RTA(r); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
                     switch (a->rta_type) {
                       case RTA_TABLE:
                         table = *static_cast<uint32_t*>(RTA_DATA(a));
                         break;
                       case RTA_DST:
                         o.Set("dst", ip(RTA_DATA(a)));
                         break;
                       case RTA_GATEWAY:
                         o.Set("gateway", ip(RTA_DATA(a)));
                         break;
                       case RTA_PREFSRC:
                         o.Set("prefsrc", ip(RTA_DATA(a)));
                         break;
                       case RTA_OIF:
                         o.Set("oif", Napi::Number::New(env, *static_cast<uint32_t*>(RTA_DATA(a))));
                         break;
                       case RTA_METRICS: {
                         int mlen = static_cast<int>(RTA_PAYLOAD(a));
                         for (auto* m = static_cast<rtattr*>(RTA_DATA(a)); RTA_OK(m, mlen);
                              m = RTA_NEXT(m, mlen)) {
                           if (m->rta_type == RTAX_MTU)
                             o.Set("mtu",
                                   Napi::Number::New(env, *static_cast<uint32_t*>(RTA_DATA(m))));
                         }
                         break;
                       }
                       default:
                         break;
                     }
                   }
                   if (table != RT_TABLE_MAIN) return;
                   out.Set(i++, o);
                 }),
          "list the routes");
  } catch (const StepError& e) {
    throw ToJsError(env, e);
  }
  return out;
}

}  // namespace tortie
