// `terrarium functions serve`: POST /ops/NAME over the HTTP server library.
#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "terrarium/functions.h"
#include "terrarium/metrics.h"

namespace terrarium {

namespace {

using json = nlohmann::json;

int status_of(const FunctionError& error) {
  switch (error.kind) {
    case FunctionErrorKind::kNoHandler:
      return 404;
    case FunctionErrorKind::kInJsonErr:
      return 400;
    default:
      return error.cause == ErrorKind::kTimeout ? 504 : 500;
  }
}

http::Response json_response(int status, std::string body) {
  return {status, {{"Content-Type", "application/json"}}, std::move(body)};
}

http::Response error_response(int status, const std::string& kind, const std::string& message,
                              const std::string& type = {}, const std::string& traceback = {}) {
  json body = {
      {"error", {{"kind", kind}, {"message", message}, {"type", type}, {"traceback", traceback}}}};
  return json_response(status, body.dump(-1, ' ', false, json::error_handler_t::replace));
}

class FunctionsHandler : public http::Handler {
 public:
  FunctionsHandler(const Functions& functions, FunctionsHttpOptions options)
      : functions_(functions), options_(std::move(options)) {
    hostcall_ = options_.manifest
                    ? manifest_hostcall(*options_.manifest, functions_, options_.hostcall)
                    : options_.hostcall;
    calls_ = &metrics_.counter("terrarium_function_calls_total",
                               "Calls of each op, by outcome (ok or the error kind).");
    duration_ = &metrics_.histogram("terrarium_function_duration_seconds",
                                    "Time from request to result, by op.",
                                    {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                     0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
    const Functions* target = &functions_;
    metrics_.gauge("terrarium_function_calls", "Calls since the start (all ops).",
                   [target] { return static_cast<double>(target->stats().calls); });
    metrics_.gauge("terrarium_function_errors", "Failed calls since the start (all ops).",
                   [target] { return static_cast<double>(target->stats().errors); });
  }

  std::optional<http::Response> answer_inline(const http::Request& request) override {
    if (request.path == "/healthz") {
      if (request.method != "GET" && request.method != "HEAD") return method_not_allowed("GET");
      return http::Response{200, {{"Content-Type", "text/plain"}}, "ok\n"};
    }
    if (!options_.metrics_path.empty() && request.path == options_.metrics_path) {
      if (request.method != "GET" && request.method != "HEAD") return method_not_allowed("GET");
      return http::Response{
          200, {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}}, metrics_.render()};
    }
    if (request.path == "/init") {
      if (!options_.init_target) {
        return error_response(404, "no-handler",
                              "POST /init is off (terrarium functions serve --allow-init)");
      }
      if (request.method != "POST") return method_not_allowed("POST");
      return std::nullopt;  // compiles ops: a worker's job
    }
    if (request.path.rfind("/ops/", 0) != 0) {
      return error_response(404, "no-handler",
                            "no such path: " + request.path + " (ops are at POST /ops/NAME)");
    }
    std::string name = http::percent_decode(std::string_view(request.path).substr(5));
    if (request.method != "POST") return method_not_allowed("POST");
    if (!functions_.has_op(name)) {
      std::vector<std::string> names = functions_.op_names();
      std::string known;
      for (const std::string& op : names) known += (known.empty() ? "" : ", ") + op;
      // Not the name: every random path would become a series of its own.
      calls_->add({{"op", "(unknown)"}, {"outcome", "no-handler"}});
      return error_response(
          404, "no-handler",
          "no op named '" + name + "' (ops: " + (known.empty() ? "none" : known) + ")");
    }
    return std::nullopt;
  }

  void handle(const http::Request& request, size_t, http::ResponseWriter& writer) override {
    if (request.path == "/init") {
      auto parsed = parse_init_request(request.body);
      if (!parsed) {
        writer.send(error_response(400, "other", parsed.error().message()));
        return;
      }
      FunctionResult<bool> done =
          options_.init_target->init(parsed->metatype_version, std::move(parsed->ops));
      if (!done) {
        const FunctionError& error = done.error();
        json body = {{"error",
                      {{"kind", function_error_kind_name(error.kind)},
                       {"message", error.message},
                       {"type", error.type},
                       {"traceback", error.traceback},
                       {"op_name", error.op_name}}}};
        writer.send(json_response(error.kind == FunctionErrorKind::kVersionMismatch ? 409 : 400,
                                  body.dump(-1, ' ', false, json::error_handler_t::replace)));
        return;
      }
      if (options_.log) options_.log("init: ops replaced by request " + std::to_string(request.id));
      writer.send(json_response(200, R"({"ok":true})"));
      return;
    }
    std::string name = http::percent_decode(std::string_view(request.path).substr(5));
    std::string_view body = request.body;
    if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) body = "null";
    auto started = std::chrono::steady_clock::now();
    FunctionResult<std::string> result = functions_.handle(name, body, hostcall_);
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    duration_->observe({{"op", name}}, seconds);
    if (result) {
      calls_->add({{"op", name}, {"outcome", "ok"}});
      writer.send(json_response(200, std::move(*result)));
      return;
    }
    const FunctionError& error = result.error();
    std::string kind = function_error_kind_name(error.kind);
    calls_->add({{"op", name}, {"outcome", error.cause == ErrorKind::kTimeout ? "timeout" : kind}});
    if (options_.log) {
      options_.log("op '" + name + "' request " + std::to_string(request.id) + ": " + kind + ": " +
                   error.message);
    }
    writer.send(error_response(status_of(error), kind, error.message, error.type, error.traceback));
  }

 private:
  static http::Response method_not_allowed(const char* allowed) {
    http::Response response =
        error_response(405, "method-not-allowed", std::string("use ") + allowed + " for this path");
    response.headers.emplace_back("Allow", allowed);
    return response;
  }

  const Functions& functions_;
  FunctionsHttpOptions options_;
  Hostcall hostcall_;
  http::Metrics metrics_;
  http::Metrics::Counter* calls_ = nullptr;
  http::Metrics::Histogram* duration_ = nullptr;
};

}  // namespace

std::shared_ptr<http::Handler> functions_http_handler(const Functions& functions,
                                                      FunctionsHttpOptions options) {
  return std::make_shared<FunctionsHandler>(functions, std::move(options));
}

std::pair<std::string, std::string> functions_http_rejection(int status, std::string_view reason) {
  std::string kind = status == 413   ? "body-too-large"
                     : status == 503 ? "overloaded"
                                     : "bad-request";
  return {"application/json", error_response(status, kind, std::string(reason)).body};
}

}  // namespace terrarium
