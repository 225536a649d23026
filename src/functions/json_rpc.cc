// `terrarium functions stdio`: JSON-RPC 2.0, one message per line, so that a
// host in any language can drive the function runtime. Requests run on a
// fixed set of worker threads; while one runs, its hostcalls go back to the
// peer as our own requests, answered on the same stream.
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "functions/json_depth.h"
#include "terrarium/functions.h"

namespace terrarium {

namespace {

using json = nlohmann::json;

constexpr int kParseError = -32700;
constexpr int kInvalidRequest = -32600;
constexpr int kMethodNotFound = -32601;
constexpr int kInvalidParams = -32602;
constexpr std::chrono::microseconds kSpin{200};
constexpr int kInternalError = -32603;
constexpr int kServerError = -32000;
using functions_internal::json_depth;
constexpr int kMaxDepth = functions_internal::kMaxJsonDepth;

std::string dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

json error_response(const json& id, int code, const std::string& message, json data = nullptr) {
  json error = {{"code", code}, {"message", message}};
  if (!data.is_null()) error["data"] = std::move(data);
  return {{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(error)}};
}

json function_error_response(const json& id, const FunctionError& error) {
  json data = {{"kind", function_error_kind_name(error.kind)}};
  data["type"] = error.type;
  data["traceback"] = error.traceback;
  if (!error.op_name.empty()) data["op_name"] = error.op_name;
  return error_response(id, kServerError, error.message, std::move(data));
}

// A JSON-RPC string field, or (leniently) any other JSON value as its text.
std::optional<std::string> text_field(const json& params, const char* key) {
  auto found = params.find(key);
  if (found == params.end()) return std::nullopt;
  if (found->is_string()) return found->get<std::string>();
  return dump(*found);
}

class Session {
 public:
  Session(Functions& functions, int in_fd, int out_fd, JsonRpcOptions options)
      : functions_(functions), in_fd_(in_fd), out_fd_(out_fd), options_(std::move(options)) {
    peer_ = [this](std::string_view op_name, std::string_view value) {
      return ask_peer(op_name, value);
    };
    hostcall_ =
        options_.manifest ? manifest_hostcall(*options_.manifest, functions_, peer_) : peer_;
  }

  Result<void> run() {
    size_t workers =
        options_.workers ? options_.workers : std::max(1u, std::thread::hardware_concurrency());
    for (size_t i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
    Result<void> outcome = read_loop();
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
      // Nobody will answer hostcalls any more.
      for (auto& [id, promise] : pending_) {
        promise.set_value(Error(ErrorKind::kHostError, "the client closed its input"));
      }
      pending_.clear();
    }
    ready_.notify_all();
    for (std::thread& thread : threads_) thread.join();
    return outcome;
  }

 private:
  struct Job {
    json message;
    uint64_t inits_before = 0;  // jobs holding an init read before this one
    bool holds_init = false;
  };

  Result<void> read_loop() {
    std::string buffer;
    char chunk[65536];
    for (;;) {
      ssize_t got = read(in_fd_, chunk, sizeof chunk);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0)
        return Error(ErrorKind::kConfig, std::string("reading stdin: ") + std::strerror(errno));
      if (got == 0) break;
      size_t scanned = buffer.size();  // no newline before this
      buffer.append(chunk, static_cast<size_t>(got));
      size_t start = 0;
      for (size_t newline; (newline = buffer.find('\n', scanned)) != std::string::npos;
           start = scanned = newline + 1) {
        on_line(std::string_view(buffer).substr(start, newline - start));
      }
      buffer.erase(0, start);
      if (buffer.size() > options_.max_line_bytes) {
        send(error_response(
            nullptr, kInvalidRequest,
            "a line longer than " + std::to_string(options_.max_line_bytes) + " bytes: dropped"));
        buffer.clear();
        skipping_ = true;
      }
    }
    if (!buffer.empty() && !skipping_) on_line(buffer);
    return {};
  }

  void on_line(std::string_view line) {
    if (skipping_) {  // the rest of an over-long line
      skipping_ = false;
      return;
    }
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) return;
    if (json_depth(line) > kMaxDepth) {
      send(error_response(
          nullptr, kParseError,
          "Parse error: nested deeper than " + std::to_string(kMaxDepth) + " levels"));
      return;
    }
    json message;
    try {
      message = json::parse(line);
    } catch (const json::exception& error) {
      send(error_response(nullptr, kParseError, std::string("Parse error: ") + error.what()));
      return;
    }
    if (message.is_array()) {
      if (message.empty()) {
        send(error_response(nullptr, kInvalidRequest, "Invalid Request: an empty batch"));
        return;
      }
      // Responses to our hostcalls may come batched too.
      json requests = json::array();
      for (json& entry : message) {
        if (is_response(entry)) {
          on_peer_response(entry);
        } else {
          requests.push_back(std::move(entry));
        }
      }
      if (!requests.empty()) enqueue(std::move(requests));
      return;
    }
    if (!message.is_object()) {
      send(error_response(nullptr, kInvalidRequest, "Invalid Request: not an object"));
      return;
    }
    if (is_response(message)) {
      on_peer_response(message);
      return;
    }
    enqueue(std::move(message));
  }

  static bool is_response(const json& message) {
    return message.is_object() && !message.contains("method") &&
           (message.contains("result") || message.contains("error"));
  }

  void enqueue(json message) {
    auto is_init = [](const json& entry) {
      return entry.is_object() && entry.value("method", json()).is_string() &&
             entry["method"] == "init";
    };
    bool init = is_init(message);
    if (message.is_array()) {
      for (const json& entry : message) init = init || is_init(entry);
    }
    std::unique_lock lock(mutex_);
    if (queue_.size() >= options_.max_queued) {
      // Never block the reader: it also carries the answers to hostcalls.
      lock.unlock();
      json id = message.is_object() ? message.value("id", json()) : json();
      send(error_response(id, kServerError,
                          "overloaded: " + std::to_string(options_.max_queued) +
                              " requests are waiting; retry later"));
      return;
    }
    queue_.push_back({std::move(message), inits_read_, init});
    queued_.store(queue_.size());
    if (init) ++inits_read_;
    lock.unlock();
    // A spinning worker takes it (it checks the queue under the lock once it
    // stops spinning): no wake-up needed.
    if (!spinning_.load()) ready_.notify_one();
  }

  void work() {
    for (;;) {
      Job job;
      // A worker that just finished watches the queue for a moment before it
      // sleeps: a peer making calls one after another (the common case)
      // then never pays a thread wake-up, which costs more than the call.
      // One worker at a time: on two cores, more spinners would take the
      // reader's and the peer's CPU.
      if (!spinning_.exchange(true)) {
        for (auto until = std::chrono::steady_clock::now() + kSpin;
             queued_.load() == 0 && std::chrono::steady_clock::now() < until;) {
#if defined(__x86_64__)
          __builtin_ia32_pause();
#endif
        }
        spinning_.store(false);
      }
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [this] { return !queue_.empty() || closing_; });
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
        queued_.store(queue_.size(), std::memory_order_relaxed);
        // Calls read after an init run on the ops it sets up.
        inits_done_changed_.wait(lock, [&] { return inits_done_ >= job.inits_before; });
      }
      run_job(job);
      if (job.holds_init) {
        // Whatever became of the init (done, refused, malformed), the calls
        // read after it may go.
        {
          std::lock_guard lock(mutex_);
          ++inits_done_;
        }
        inits_done_changed_.notify_all();
      }
    }
  }

  void run_job(const Job& job) {
    try {
      if (job.message.is_array()) {
        json responses = json::array();
        for (const json& entry : job.message) {
          json response = answer(entry);
          if (!response.is_null()) responses.push_back(std::move(response));
        }
        if (!responses.empty()) send(responses);
      } else {
        json response = answer(job.message);
        if (!response.is_null()) send(response);
      }
    } catch (const std::exception& error) {
      // A bug, not the peer's fault: say so and carry on.
      json id = job.message.is_object() && job.message.contains("id") ? job.message["id"] : json();
      send(error_response(id.is_string() || id.is_number() ? id : json(), kInternalError,
                          std::string("Internal error: ") + error.what()));
    }
  }

  // The response to one request (null for a notification).
  json answer(const json& request) {
    json id = request.is_object() ? request.value("id", json()) : json();
    bool notification = request.is_object() && !request.contains("id");
    auto respond = [&](json response) { return notification ? json() : response; };
    if (!request.is_object() || request.value("jsonrpc", json()) != "2.0" ||
        !request.value("method", json()).is_string() ||
        !(id.is_null() || id.is_string() || id.is_number())) {
      return error_response(id.is_string() || id.is_number() ? id : json(), kInvalidRequest,
                            "Invalid Request: expected {\"jsonrpc\": \"2.0\", \"method\": ..., "
                            "\"id\": ..., \"params\": {...}}");
    }
    std::string method = request["method"];
    json params = request.value("params", json::object());
    if (!params.is_object()) {
      return respond(
          error_response(id, kInvalidParams, "Invalid params: params must be an object"));
    }
    if (method == "init") return respond(run_init(id, params));
    if (method == "handle") {
      std::optional<std::string> op_name = text_field(params, "op_name");
      std::optional<std::string> in_json = text_field(params, "in_json");
      if (!op_name || !params["op_name"].is_string() || !in_json) {
        return respond(error_response(id, kInvalidParams,
                                      "Invalid params: handle takes {\"op_name\": string, "
                                      "\"in_json\": string}"));
      }
      FunctionResult<std::string> result = functions_.handle(*op_name, *in_json, hostcall_);
      if (!result) return respond(function_error_response(id, result.error()));
      return respond({{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(*result)}});
    }
    return respond(error_response(id, kMethodNotFound,
                                  "Method not found: '" + method + "' (methods: init, handle)"));
  }

  json run_init(const json& id, const json& params) {
    auto request = parse_init_request(dump(params));
    if (!request) {
      return error_response(id, kInvalidParams, "Invalid params: " + request.error().message());
    }
    FunctionResult<bool> done = functions_.init(request->metatype_version, std::move(request->ops));
    if (!done) return function_error_response(id, done.error());
    return {{"jsonrpc", "2.0"}, {"id", id}, {"result", {{"ok", true}}}};
  }

  Result<std::string> ask_peer(std::string_view op_name, std::string_view value) {
    std::future<Result<std::string>> answer;
    std::string id;
    {
      std::lock_guard lock(mutex_);
      if (closing_) return Error(ErrorKind::kHostError, "the client closed its input");
      id = "hostcall-" + std::to_string(++hostcalls_);
      answer = pending_[id].get_future();
    }
    send({{"jsonrpc", "2.0"},
          {"id", id},
          {"method", "hostcall"},
          {"params", {{"op_name", std::string(op_name)}, {"json", std::string(value)}}}});
    if (answer.wait_for(options_.hostcall_timeout) != std::future_status::ready) {
      std::lock_guard lock(mutex_);
      pending_.erase(id);
      return Error(ErrorKind::kHostError, "no answer from the client within " +
                                              std::to_string(options_.hostcall_timeout.count()) +
                                              " ms");
    }
    return answer.get();
  }

  void on_peer_response(const json& message) {
    json id = message.value("id", json());
    std::promise<Result<std::string>> promise;
    {
      std::lock_guard lock(mutex_);
      auto found = id.is_string() ? pending_.find(id.get<std::string>()) : pending_.end();
      if (found == pending_.end()) {
        if (options_.log)
          options_.log("ignoring a response to no pending hostcall: " + dump(message));
        return;
      }
      promise = std::move(found->second);
      pending_.erase(found);
    }
    if (message.contains("error")) {
      const json& error = message["error"];
      std::string text = error.is_object() && error.value("message", json()).is_string()
                             ? error["message"].get<std::string>()
                             : dump(error);
      promise.set_value(Error(ErrorKind::kHostError, text));
    } else {
      const json& result = message["result"];
      promise.set_value(result.is_string() ? result.get<std::string>() : dump(result));
    }
  }

  void send(const json& message) {
    std::string line = dump(message);
    line += '\n';
    std::lock_guard lock(write_mutex_);
    size_t sent = 0;
    while (sent < line.size()) {
      ssize_t wrote = write(out_fd_, line.data() + sent, line.size() - sent);
      if (wrote < 0 && errno == EINTR) continue;
      if (wrote <= 0) return;  // the client is gone; nothing to tell it
      sent += static_cast<size_t>(wrote);
    }
  }

  Functions& functions_;
  int in_fd_, out_fd_;
  JsonRpcOptions options_;
  Hostcall peer_, hostcall_;
  std::vector<std::thread> threads_;
  std::mutex mutex_, write_mutex_;
  std::condition_variable ready_, inits_done_changed_;
  std::deque<Job> queue_;
  std::atomic<size_t> queued_{0};  // queue_.size(), read without the lock
  std::atomic<bool> spinning_{false};
  bool closing_ = false;
  bool skipping_ = false;
  uint64_t inits_read_ = 0, inits_done_ = 0, hostcalls_ = 0;
  std::map<std::string, std::promise<Result<std::string>>> pending_;
};

}  // namespace

Result<void> serve_json_rpc(Functions& functions, int in_fd, int out_fd, JsonRpcOptions options) {
  Session session(functions, in_fd, out_fd, std::move(options));
  return session.run();
}

}  // namespace terrarium
