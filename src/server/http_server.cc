// The HTTP/1.1 server (include/terrarium/http.h): Boost.Beast's request
// parser on an Asio event loop, one I/O thread, and worker threads behind a
// bounded queue for the handler's slow part.
//
// A connection is a Session. It reads one request at a time (a pipelining
// client waits for each response), answers malformed and slow clients
// itself, and hands a complete request to the handler. Responses are written
// through an output queue that workers fill and the I/O thread drains, so a
// worker never touches the socket and a slow reader only ever holds one
// worker for as long as the write timeout allows.
#include <sys/socket.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <deque>
#include <list>
#include <mutex>
#include <thread>

#include "server/work_queue.h"
#include "terrarium/http.h"

namespace terrarium::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using boost::system::error_code;

namespace {

// Output a worker may queue before it waits for the client to read.
constexpr size_t kHighWaterBytes = 1 << 20;

class Session;

}  // namespace

struct Server::Impl {
  // Declared before the io_context: sessions still queued there unregister
  // from these while it is destroyed.
  Options options;
  std::list<Session*> sessions;  // I/O thread only
  bool stopping = false;         // I/O thread only
  bool destroying = false;
  std::atomic<bool> stop_requested{false};
  mutable std::mutex handler_mutex;
  std::shared_ptr<Handler> handler;
  server::WorkQueue queue;
  std::vector<std::thread> workers;
  net::io_context io{1};
  tcp::acceptor acceptor{io};
  net::steady_timer drain_timer{io};
  std::atomic<uint64_t> next_request_id{1};
  std::atomic<uint64_t> connections_open{0}, connections_total{0}, rejected_overload{0},
      rejected_connections{0};

  std::shared_ptr<Handler> current_handler() const {
    std::lock_guard lock(handler_mutex);
    return handler;
  }
  void accept();
  void begin_stop();
  void session_closed();
};

namespace {

std::string status_line(int version, int status) {
  std::string line = version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  line += std::to_string(status);
  line += ' ';
  std::string_view reason = reason_phrase(status);
  line += reason.empty() ? "Unknown" : reason;
  line += "\r\n";
  return line;
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Server::Impl& server, tcp::socket socket) : server_(server), stream_(std::move(socket)) {}

  void start() {
    position_ = server_.sessions.insert(server_.sessions.end(), this);
    registered_ = true;
    error_code ignored;
    stream_.socket().set_option(tcp::no_delay(true), ignored);
    auto endpoint = stream_.socket().remote_endpoint(ignored);
    if (!ignored) {
      remote_address_ = endpoint.address().to_string();
      remote_port_ = endpoint.port();
    }
    local_port_ = stream_.socket().local_endpoint(ignored).port();
    wait_for_request();
  }

  ~Session() {
    if (registered_) {
      server_.sessions.erase(position_);
      server_.session_closed();
    }
  }

  // Called by stop(): an idle connection closes now, a busy one after its
  // response.
  void close_if_idle() {
    if (!busy_) close();
  }

  // --- output, from any thread ---------------------------------------------

  // Queues bytes to send; with `wait`, blocks while too much is queued.
  bool enqueue(std::string data, bool wait) {
    std::unique_lock lock(out_mutex_);
    if (out_failed_) return false;
    out_bytes_ += data.size();
    out_queue_.push_back(std::move(data));
    if (!out_writing_) {
      out_writing_ = true;
      net::post(stream_.get_executor(), [self = shared_from_this()] { self->flush(); });
    }
    if (wait) {
      auto deadline = std::chrono::steady_clock::now() + server_.options.write_timeout;
      out_cv_.wait_until(lock, deadline,
                         [this] { return out_failed_ || out_bytes_ <= kHighWaterBytes; });
      if (!out_failed_ && out_bytes_ > kHighWaterBytes) return false;
    }
    return !out_failed_;
  }

  // The response is complete: when the queue drains, the next request.
  void finish_response(int status, uint64_t body_bytes, bool keep_alive, std::string reason) {
    std::lock_guard lock(out_mutex_);
    response_done_ = true;
    response_status_ = status;
    response_body_bytes_ = body_bytes;
    response_keep_alive_ = keep_alive;
    response_reason_ = std::move(reason);
    if (!out_writing_) {
      out_writing_ = true;
      net::post(stream_.get_executor(), [self = shared_from_this()] { self->flush(); });
    }
  }

  const Request& request() const { return request_; }
  bool head_request() const { return request_.method == "HEAD"; }
  bool must_close() const { return !keep_alive_ || server_.stop_requested.load(); }

 private:
  // --- timeouts ---------------------------------------------------------------
  // One timer per connection: when it fires, the pending read or write is
  // cancelled and its handler sees timed_out_. (beast::tcp_stream's own
  // expiry closes the socket, which would leave no way to answer 408.)

  void arm(std::chrono::milliseconds timeout) {
    timed_out_ = false;
    timer_.expires_after(timeout);
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec) return;  // cancelled or re-armed
      self->timed_out_ = true;
      error_code ignored;
      self->stream_.socket().cancel(ignored);
    });
  }
  void disarm() { timer_.cancel(); }

  // --- reading, on the I/O thread -------------------------------------------

  void wait_for_request() {
    if (server_.stopping) return close();
    busy_ = false;
    if (buffer_.size() > 0) return read_header();
    // Idle until the first byte: the keep-alive timeout. The headers then
    // get their own.
    arm(server_.options.idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](error_code ec, size_t received) {
                              if (ec || self->server_.stopping) return self->close();
                              self->buffer_.commit(received);
                              self->read_header();
                            });
  }

  void read_header() {
    busy_ = true;
    parser_.emplace();
    parser_->header_limit(
        static_cast<uint32_t>(std::min<size_t>(server_.options.max_header_bytes, UINT32_MAX)));
    parser_->body_limit(server_.options.max_body_bytes);
    arm(server_.options.header_timeout);
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(error_code ec) {
    if (ec) return read_failed(ec, /*in_headers=*/true);
    received_ = std::chrono::steady_clock::now();
    auto& message = parser_->get();
    if (message.version() != 10 && message.version() != 11) {
      return reject(505, "unsupported HTTP version");
    }
    if (parser_->content_length() && *parser_->content_length() > server_.options.max_body_bytes) {
      return reject(413, "body larger than the limit");
    }
    if (parser_->is_done()) return dispatch();
    auto expect = message.find(bhttp::field::expect);
    if (expect != message.end() && beast::iequals(expect->value(), "100-continue")) {
      // The client waits for this before it sends the body.
      auto continue_line = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
      arm(server_.options.write_timeout);
      net::async_write(stream_, net::buffer(*continue_line),
                       [self = shared_from_this(), continue_line](error_code ec, size_t) {
                         if (ec) return self->close();
                         self->read_body();
                       });
      return;
    }
    read_body();
  }

  void read_body() {
    arm(server_.options.body_timeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this()](error_code ec, size_t) {
                        if (ec) return self->read_failed(ec, /*in_headers=*/false);
                        self->dispatch();
                      });
  }

  void read_failed(error_code ec, bool in_headers) {
    if (ec == net::error::operation_aborted && timed_out_) {
      // Nothing at all received: an idle connection; else a slow client.
      if (in_headers && buffer_.size() == 0 && !parser_->got_some()) return close();
      return reject(408, in_headers ? "headers not received in time" : "body not received in time");
    }
    if (ec == bhttp::error::header_limit) return reject(431, "request headers too large");
    if (ec == bhttp::error::body_limit) return reject(413, "body larger than the limit");
    if (ec == bhttp::error::end_of_stream || ec == net::error::eof ||
        ec == net::error::connection_reset || ec == net::error::operation_aborted ||
        ec == bhttp::error::partial_message) {
      return close();
    }
    return reject(400, ec.message());
  }

  // Answers a request the server refuses by itself, then closes.
  void reject(int status, std::string reason) {
    keep_alive_ = false;
    busy_ = true;
    std::string head = status_line(11, status);
    head += "Date: " + http_date() + "\r\n";
    std::string body;
    if (server_.options.rejection_body) {
      auto [type, text] = server_.options.rejection_body(status, reason);
      if (!text.empty() && is_field_value(type)) {
        head += "Content-Type: " + type + "\r\n";
        body = std::move(text);
      }
    }
    head += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    head += body;
    request_parsed_ = false;
    enqueue(std::move(head), false);
    finish_response(status, body.size(), false, std::move(reason));
  }

  void dispatch() {
    auto& message = parser_->get();
    request_ = Request{};
    request_.id = server_.next_request_id++;
    request_.method = std::string(message.method_string());
    request_.set_target(std::string(message.target()));
    request_.version = static_cast<int>(message.version());
    request_.headers.reserve(std::distance(message.begin(), message.end()));
    for (const auto& field : message) {
      request_.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    request_.body = std::move(message.body());
    request_.remote_address = remote_address_;
    request_.remote_port = remote_port_;
    request_.local_port = local_port_;
    request_.received = received_;
    keep_alive_ = message.keep_alive();
    request_parsed_ = true;
    parser_.reset();
    disarm();

    handler_ = server_.current_handler();
    std::optional<Response> inline_response;
    if (handler_)
      inline_response = handler_->answer_inline(request_);
    else
      inline_response = Response{503, {}, ""};
    if (inline_response) return respond_inline(*inline_response);
    // The session is released on the I/O thread, where it registered.
    bool queued = server_.queue.push([self = shared_from_this()](size_t worker) mutable {
      auto session = std::move(self);
      session->run_on_worker(worker);
      auto executor = session->stream_.get_executor();
      net::post(executor, [session = std::move(session)] {});
    });
    if (!queued) {
      ++server_.rejected_overload;
      Response busy{503, {{"Retry-After", "1"}}, ""};
      const char* why = "every worker busy and the queue full";
      if (server_.options.rejection_body) {
        auto [type, text] = server_.options.rejection_body(503, why);
        if (!text.empty() && is_field_value(type)) {
          busy.headers.emplace_back("Content-Type", std::move(type));
          busy.body = std::move(text);
        }
      }
      return respond_inline(busy, why);
    }
  }

  void respond_inline(const Response& response, std::string reason = {});
  void run_on_worker(size_t worker);

  // --- writing, on the I/O thread -------------------------------------------

  void flush() {
    std::vector<std::string> batch;
    {
      std::lock_guard lock(out_mutex_);
      if (out_failed_ || out_queue_.empty()) {
        out_writing_ = false;
        disarm();
        if (response_done_) {
          response_done_ = false;
          net::post(stream_.get_executor(), [self = shared_from_this()] { self->response_sent(); });
        }
        return;
      }
      batch.assign(std::make_move_iterator(out_queue_.begin()),
                   std::make_move_iterator(out_queue_.end()));
      out_queue_.clear();
    }
    auto owned = std::make_shared<std::vector<std::string>>(std::move(batch));
    std::vector<net::const_buffer> buffers;
    buffers.reserve(owned->size());
    for (const auto& piece : *owned) buffers.push_back(net::buffer(piece));
    arm(server_.options.write_timeout);
    net::async_write(stream_, buffers,
                     [self = shared_from_this(), owned](error_code ec, size_t written) {
                       self->on_written(ec, written);
                     });
  }

  void on_written(error_code ec, size_t written) {
    {
      std::lock_guard lock(out_mutex_);
      out_bytes_ -= std::min(out_bytes_, written);
      if (ec) {
        out_failed_ = true;
        out_queue_.clear();
        out_bytes_ = 0;
      }
    }
    out_cv_.notify_all();
    if (ec) {
      // A worker may still be producing: it sees out_failed_ and stops; the
      // completion is reported once it finishes (flush() below, or later).
      write_failed_ = true;
      close();
    }
    flush();
  }

  void response_sent() {
    int status;
    uint64_t body_bytes;
    bool keep_alive;
    std::string reason;
    {
      std::lock_guard lock(out_mutex_);
      status = response_status_;
      body_bytes = response_body_bytes_;
      keep_alive = response_keep_alive_;
      reason = std::move(response_reason_);
    }
    if (handler_ || !request_parsed_) {
      auto handler = handler_ ? handler_ : server_.current_handler();
      if (handler) {
        Handler::Completed done{request_parsed_ ? &request_ : nullptr, status, body_bytes,
                                std::chrono::steady_clock::now() - received_, reason};
        handler->completed(done);
      }
    }
    handler_.reset();
    request_ = Request{};
    if (write_failed_ || !keep_alive || server_.stopping) return close();
    wait_for_request();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    disarm();
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
    {
      std::lock_guard lock(out_mutex_);
      out_failed_ = true;
    }
    out_cv_.notify_all();
  }

  Server::Impl& server_;
  beast::tcp_stream stream_;
  net::steady_timer timer_{stream_.get_executor()};
  bool timed_out_ = false;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::list<Session*>::iterator position_;
  bool registered_ = false;
  bool busy_ = false;
  bool closed_ = false;
  bool keep_alive_ = true;
  bool request_parsed_ = false;
  bool write_failed_ = false;
  std::string remote_address_;
  uint16_t remote_port_ = 0, local_port_ = 0;
  std::chrono::steady_clock::time_point received_ = std::chrono::steady_clock::now();
  Request request_;
  std::shared_ptr<Handler> handler_;

  std::mutex out_mutex_;
  std::condition_variable out_cv_;
  std::deque<std::string> out_queue_;
  size_t out_bytes_ = 0;
  bool out_writing_ = false;
  bool out_failed_ = false;
  bool response_done_ = false;
  int response_status_ = 0;
  uint64_t response_body_bytes_ = 0;
  bool response_keep_alive_ = false;
  std::string response_reason_;
};

// The ResponseWriter of one request: frames what the handler writes and
// queues it on the session.
class SessionWriter final : public ResponseWriter {
 public:
  explicit SessionWriter(std::shared_ptr<Session> session) : session_(std::move(session)) {}

  bool start(int status, const Headers& headers) override {
    if (started_) return false;
    for (const auto& [name, value] : headers) {
      if (!is_token(name) || !is_field_value(value)) {
        return start_error("invalid response header '" + name + "'");
      }
    }
    started_ = true;
    status_ = status;
    const Request& request = session_->request();
    head_ = session_->head_request();
    bool no_body = head_ || status == 204 || status == 304 || (status >= 100 && status < 200);
    bool has_length = false;
    for (const auto& [name, value] : headers) {
      if (beast::iequals(name, "Content-Length")) has_length = true;
    }
    keep_alive_ = !session_->must_close();
    std::string head = status_line(request.version, status);
    head += "Date: ";
    head += http_date();
    head += "\r\n";
    for (const auto& [name, value] : headers) {
      if (beast::iequals(name, "Transfer-Encoding") || beast::iequals(name, "Connection") ||
          beast::iequals(name, "Date") ||
          (no_body && status != 304 && !head_ && beast::iequals(name, "Content-Length"))) {
        continue;  // framing is the server's
      }
      head += name;
      head += ": ";
      head += value;
      head += "\r\n";
    }
    if (!no_body && !has_length) {
      if (request.version == 11) {
        chunked_ = true;
        head += "Transfer-Encoding: chunked\r\n";
      } else {
        keep_alive_ = false;  // the body ends when the connection closes
      }
    }
    discard_body_ = no_body;
    if (!keep_alive_) {
      head += "Connection: close\r\n";
    } else if (request.version == 10) {
      head += "Connection: keep-alive\r\n";
    }
    head += "\r\n";
    return session_->enqueue(std::move(head), false);
  }

  bool write(std::string_view data) override {
    if (!started_ || finished_) return false;
    if (data.empty()) return true;
    body_bytes_ += data.size();
    if (discard_body_) return true;
    if (chunked_) {
      char size_line[24];
      int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
      std::string framed;
      framed.reserve(n + data.size() + 2);
      framed.append(size_line, n);
      framed.append(data);
      framed.append("\r\n");
      return session_->enqueue(std::move(framed), true);
    }
    return session_->enqueue(std::string(data), true);
  }

  void finish() override {
    if (!started_ || finished_) return;
    finished_ = true;
    if (chunked_ && !discard_body_) session_->enqueue("0\r\n\r\n", false);
    session_->finish_response(status_, body_bytes_, keep_alive_, reason_);
  }

  bool started() const override { return started_; }
  void abort() override {
    if (!started_ || finished_) return;
    finished_ = true;
    reason_ = reason_.empty() ? "response aborted" : reason_;
    session_->finish_response(status_, body_bytes_, /*keep_alive=*/false, reason_);
  }
  bool finished() const { return finished_; }
  void set_reason(std::string reason) { reason_ = std::move(reason); }

 private:
  bool start_error(const std::string& why) {
    reason_ = why;
    Response failure{500, {}, ""};
    return send(failure) && false;
  }

  std::shared_ptr<Session> session_;
  bool started_ = false, finished_ = false, chunked_ = false, head_ = false;
  bool discard_body_ = false, keep_alive_ = true;
  int status_ = 0;
  uint64_t body_bytes_ = 0;
  std::string reason_;
};

void Session::respond_inline(const Response& response, std::string reason) {
  SessionWriter writer(shared_from_this());
  writer.set_reason(std::move(reason));
  writer.send(response);
}

void Session::run_on_worker(size_t worker) {
  SessionWriter writer(shared_from_this());
  try {
    handler_->handle(request_, worker, writer);
  } catch (const std::exception& e) {
    writer.set_reason(std::string("handler failed: ") + e.what());
  } catch (...) {
    writer.set_reason("handler failed");
  }
  if (!writer.started()) {
    Response failure{500, {}, ""};
    writer.send(failure);
  } else {
    writer.finish();
  }
}

// The endpoint of "IP:PORT", "[IPv6]:PORT", "HOST:PORT" or ":PORT".
Result<tcp::endpoint> parse_listen(net::io_context& io, const std::string& listen) {
  std::string host, port;
  if (!listen.empty() && listen[0] == '[') {
    size_t close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return Error(ErrorKind::kConfig, "listen address '" + listen + "': expected [IPv6]:PORT");
    }
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
  } else {
    size_t colon = listen.rfind(':');
    if (colon == std::string::npos) {
      return Error(ErrorKind::kConfig,
                   "listen address '" + listen + "': expected IP:PORT (e.g. 127.0.0.1:3000)");
    }
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
  }
  char* end = nullptr;
  long number = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || number < 0 || number > 65535) {
    return Error(ErrorKind::kConfig, "listen address '" + listen + "': bad port '" + port + "'");
  }
  if (host.empty()) host = "0.0.0.0";
  error_code ec;
  auto address = net::ip::make_address(host, ec);
  if (!ec) return tcp::endpoint(address, static_cast<uint16_t>(number));
  // A host name ("localhost"): its first address.
  tcp::resolver resolver(io);
  auto results = resolver.resolve(host, port, ec);
  if (ec || results.empty()) {
    return Error(ErrorKind::kConfig,
                 "listen address '" + listen + "': cannot resolve '" + host + "': " + ec.message());
  }
  return results.begin()->endpoint();
}

}  // namespace

void Server::Impl::accept() {
  acceptor.async_accept(net::make_strand(io), [this](error_code ec, tcp::socket socket) {
    if (stopping) return;
    if (!ec) {
      ++connections_total;
      if (connections_open.load() >= options.max_connections) {
        ++rejected_connections;
        // Answered and closed without reading: the client learns why.
        auto refusal = std::make_shared<std::string>(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\n"
            "Connection: close\r\n\r\n");
        auto sock = std::make_shared<tcp::socket>(std::move(socket));
        net::async_write(*sock, net::buffer(*refusal), [sock, refusal](error_code, size_t) {
          error_code ignored;
          sock->shutdown(tcp::socket::shutdown_both, ignored);
          sock->close(ignored);
        });
      } else {
        ++connections_open;
        std::make_shared<Session>(*this, std::move(socket))->start();
      }
    }
    accept();
  });
}

void Server::Impl::session_closed() {
  --connections_open;
  if (stopping && !destroying && sessions.empty()) io.stop();
}

void Server::Impl::begin_stop() {
  if (stopping) return;
  stopping = true;
  error_code ignored;
  acceptor.close(ignored);
  // Sessions may close (and unregister) while we walk: copy first.
  std::vector<Session*> open(sessions.begin(), sessions.end());
  for (Session* session : open) session->close_if_idle();
  if (sessions.empty()) {
    io.stop();
    return;
  }
  drain_timer.expires_after(options.drain_timeout);
  drain_timer.async_wait([this](error_code ec) {
    if (!ec) io.stop();
  });
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  stop();
  impl_->queue.close();
  for (auto& worker : impl_->workers) {
    if (worker.joinable()) worker.join();
  }
  impl_->destroying = true;
}

Result<std::unique_ptr<Server>> Server::create(Options options, std::shared_ptr<Handler> handler) {
  auto impl = std::make_unique<Impl>();
  if (options.workers == 0) options.workers = std::max(1u, std::thread::hardware_concurrency());
  if (options.queue_capacity == 0) options.queue_capacity = 64 * options.workers;
  impl->options = options;
  impl->handler = std::move(handler);
  auto endpoint = parse_listen(impl->io, options.listen);
  if (!endpoint) return endpoint.error();
  error_code ec;
  impl->acceptor.open(endpoint->protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec && options.reuse_port) {
    impl->acceptor.set_option(net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true),
                              ec);
  }
  if (!ec) impl->acceptor.bind(*endpoint, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return Error(ErrorKind::kConfig, "cannot listen on " + options.listen + ": " + ec.message());
  }
  impl->queue.set_capacity(options.queue_capacity);
  Impl* raw = impl.get();
  for (size_t i = 0; i < options.workers; ++i) {
    raw->workers.emplace_back([raw, i] { raw->queue.run_worker(i); });
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

uint16_t Server::port() const {
  error_code ec;
  return impl_->acceptor.local_endpoint(ec).port();
}

std::string Server::address() const {
  error_code ec;
  auto endpoint = impl_->acceptor.local_endpoint(ec);
  if (ec) return impl_->options.listen;
  std::string host = endpoint.address().to_string();
  if (endpoint.address().is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(endpoint.port());
}

void Server::run() {
  if (impl_->stop_requested) return;
  impl_->accept();
  impl_->io.run();
  impl_->io.restart();
}

void Server::stop() {
  if (impl_->stop_requested.exchange(true)) return;
  net::post(impl_->io, [impl = impl_.get()] { impl->begin_stop(); });
}

void Server::set_handler(std::shared_ptr<Handler> handler) {
  std::lock_guard lock(impl_->handler_mutex);
  impl_->handler = std::move(handler);
}

std::shared_ptr<Handler> Server::handler() const { return impl_->current_handler(); }

Stats Server::stats() const {
  Stats stats;
  stats.connections_open = impl_->connections_open;
  stats.connections_total = impl_->connections_total;
  stats.queue_depth = impl_->queue.depth();
  stats.busy_workers = impl_->queue.busy();
  stats.rejected_overload = impl_->rejected_overload;
  stats.rejected_connections = impl_->rejected_connections;
  return stats;
}

size_t Server::workers() const { return impl_->options.workers; }

}  // namespace terrarium::http
