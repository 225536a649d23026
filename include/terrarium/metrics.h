// Metrics in Prometheus' text exposition format (version 0.0.4): counters
// and histograms with labels, gauges read when scraped. Thread-safe. Part of
// the HTTP server library: what /metrics of `terrarium serve` and
// `terrarium functions serve` render.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace terrarium::http {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
 public:
  class Counter {
   public:
    void add(const Labels& labels, double amount = 1);

   private:
    friend class Metrics;
    std::mutex mutex_;
    std::map<std::string, double> values_;  // rendered labels -> value
  };

  class Histogram {
   public:
    void observe(const Labels& labels, double value);

   private:
    friend class Metrics;
    struct Series {
      std::vector<uint64_t> buckets;  // cumulative counts are made when rendering
      double sum = 0;
      uint64_t count = 0;
    };
    std::vector<double> bounds_;
    std::mutex mutex_;
    std::map<std::string, Series> series_;
  };

  // Families are created once (at start) and live as long as the Metrics.
  Counter& counter(const std::string& name, const std::string& help);
  Histogram& histogram(const std::string& name, const std::string& help,
                       std::vector<double> bounds);
  // A gauge whose value is read at each scrape.
  void gauge(const std::string& name, const std::string& help, std::function<double()> read);

  // The whole exposition, families in the order they were created.
  std::string render() const;

  // Prometheus' escaping of a label value (\\, \", \n).
  static std::string escape(const std::string& value);

 private:
  struct Family {
    std::string name, help, type;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Histogram> histogram;
    std::function<double()> gauge;
  };
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Family>> families_;
};

}  // namespace terrarium::http
