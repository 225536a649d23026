// Terrarium's HTTP/1.1 server library: the network side of `terrarium serve`
// and `terrarium functions serve`. Connections are handled by an event loop
// (Boost.Beast on Asio); requests that need a guest run on a fixed set of
// worker threads, apart from the I/O, behind a bounded queue. The library
// knows nothing of sandboxes: a front end gives it a Handler.
//
// What it guarantees a handler: a complete, well-formed request (the body
// read, chunked encoding decoded, within the size limits); malformed or slow
// clients are answered here (400, 408, 413, 431) and never reach a handler.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "terrarium/error.h"

namespace terrarium::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Request {
  uint64_t id = 0;             // unique within the server's life, for logs
  std::string method;          // as received ("GET", "PURGE", ...)
  std::string target;          // the raw request target ("/a%20b?x=1")
  std::string path;            // the target before '?', still percent-encoded
  std::string query;           // after '?', raw; empty if none
  bool has_query = false;      // a '?' was present (even with nothing after it)
  int version = 11;            // 10 or 11
  Headers headers;             // in order received, names as sent
  std::string body;            // complete, de-chunked
  std::string remote_address;  // "127.0.0.1", "::1"
  uint16_t remote_port = 0;
  uint16_t local_port = 0;
  std::chrono::steady_clock::time_point received;  // when the headers were complete

  // The last value of a header (names compare case-insensitively).
  const std::string* header(std::string_view name) const;
  // Sets target and splits it at the first '?' into path, query, has_query.
  void set_target(std::string raw_target);
};

// A complete response, for handlers that have it all at once.
struct Response {
  int status = 200;
  Headers headers;  // Content-Length and Date are added by the server
  std::string body;
};

// Writes one response, possibly in pieces (a streamed WSGI body). Used on the
// worker thread that handles the request. Without a Content-Length header the
// body is sent chunked (HTTP/1.1) or delimited by closing (HTTP/1.0). The
// server adds Date (and Content-Length for send()); HEAD requests get the
// headers only. write() blocks while the client is slow to read (bounded by
// the server's write timeout) and returns false once the client is gone.
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  // Header names and values must be valid (token / no CR, LF or NUL): a bad
  // one is an internal error and the client gets 500 instead.
  virtual bool start(int status, const Headers& headers) = 0;
  virtual bool write(std::string_view data) = 0;
  virtual void finish() = 0;
  virtual bool started() const = 0;
  // Ends a started response early: the connection is closed without ending
  // the body, so the client sees the response is incomplete.
  virtual void abort() = 0;
  // start + write + finish, with Content-Length.
  bool send(const Response& response);
};

// What a front end plugs in.
class Handler {
 public:
  virtual ~Handler() = default;
  // Runs on the I/O thread, first: answers requests that need no worker
  // (health checks, metrics, 404s) by returning a Response. nullopt sends the
  // request to a worker.
  virtual std::optional<Response> answer_inline(const Request& request) = 0;
  // Runs on worker thread `worker` (0 .. workers-1). Must respond through
  // `writer` (if it returns without starting a response, the client gets
  // 500). May block for as long as the guest runs.
  virtual void handle(const Request& request, size_t worker, ResponseWriter& writer) = 0;
  // A finished request, for access logs and metrics: status sent, body bytes
  // sent, and the route or label the handler gave it (see label_request).
  struct Completed {
    const Request* request;  // null when the request never parsed (a 400)
    int status;
    uint64_t body_bytes;
    std::chrono::nanoseconds duration;  // headers received -> response written
    std::string_view reason;            // why the server answered by itself, if it did
  };
  virtual void completed(const Completed& completed) { (void)completed; }
};

struct Options {
  std::string listen = "127.0.0.1:3000";       // IP:PORT ("[::1]:3000" for IPv6); port 0: any
  size_t workers = 0;                          // 0: the number of cores
  size_t queue_capacity = 0;                   // requests waiting for a worker; 0: 64 per worker
  size_t max_connections = 1024;               // open at once; beyond: 503 and close
  size_t max_header_bytes = 16 * 1024;         // request line + headers; beyond: 431
  uint64_t max_body_bytes = 16 * 1024 * 1024;  // beyond: 413
  std::chrono::milliseconds header_timeout{10'000};  // to receive the headers; then 408
  std::chrono::milliseconds body_timeout{30'000};    // to receive the body; then 408
  std::chrono::milliseconds idle_timeout{60'000};    // keep-alive between requests
  std::chrono::milliseconds write_timeout{30'000};   // a client that stops reading
  std::chrono::milliseconds drain_timeout{30'000};   // stop(): in-flight requests get this long
  bool reuse_port = true;  // SO_REUSEPORT: several processes may share the port
  // The body of the responses the server gives by itself (400, 408, 413,
  // 431, 503, 505): {content type, text} for a status and the reason.
  // Default (or an empty text): no body.
  std::function<std::pair<std::string, std::string>(int status, std::string_view reason)>
      rejection_body;
};

// Counters the server keeps itself (for /metrics).
struct Stats {
  uint64_t connections_open = 0;
  uint64_t connections_total = 0;
  uint64_t queue_depth = 0;  // requests waiting for a worker now
  uint64_t busy_workers = 0;
  uint64_t rejected_overload = 0;     // 503: every worker busy and the queue full
  uint64_t rejected_connections = 0;  // 503: too many connections
};

class Server {
 public:
  // Binds the listening socket (errors name the address). The handler may be
  // swapped later (set_handler), e.g. on a configuration reload.
  static Result<std::unique_ptr<Server>> create(Options options, std::shared_ptr<Handler> handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound port (useful with port 0) and address as "IP:PORT".
  uint16_t port() const;
  std::string address() const;

  // Serves until stop(). Runs the I/O on the calling thread.
  void run();
  // Stops accepting, lets in-flight requests finish (up to drain_timeout),
  // closes idle connections, then makes run() return. Thread-safe, and safe
  // from a signal-watching thread; repeated calls are harmless.
  void stop();
  // Requests that arrive after this go to `handler`; those in flight finish
  // with the one they started with.
  void set_handler(std::shared_ptr<Handler> handler);
  std::shared_ptr<Handler> handler() const;
  Stats stats() const;
  size_t workers() const;

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The reason phrase of a status code ("Not Found"); "" for unknown codes.
std::string_view reason_phrase(int status);
// RFC 7231 IMF-fixdate of now ("Tue, 01 Dec 2026 22:42:44 GMT"), cached per second.
std::string http_date();
// Percent-decoding (UTF-8, lossy: invalid sequences become U+FFFD); '+' stays.
std::string percent_decode(std::string_view text);
// Percent-decoding to the raw bytes (no UTF-8 check); '+' stays.
std::string percent_decode_bytes(std::string_view text);
// True if `name` is an RFC 7230 token (a valid header name).
bool is_token(std::string_view name);
// True if `value` may be sent as a header value (no CR, LF, NUL or other
// control characters except tab).
bool is_field_value(std::string_view value);

}  // namespace terrarium::http
