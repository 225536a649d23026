#include "terrarium/metrics.h"

#include <cmath>
#include <cstdio>

namespace terrarium::http {

namespace {

std::string render_labels(const Labels& labels) {
  std::string out;
  for (const auto& [name, value] : labels) {
    if (!out.empty()) out += ',';
    out += name;
    out += "=\"";
    out += Metrics::escape(value);
    out += '"';
  }
  return out;
}

std::string number(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::isnan(value)) return "NaN";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.0f", value);
    return buffer;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.9g", value);
  return buffer;
}

std::string series(const std::string& name, const std::string& labels,
                   const std::string& extra = {}) {
  std::string all = labels;
  if (!extra.empty()) all += (all.empty() ? "" : ",") + extra;
  return all.empty() ? name : name + "{" + all + "}";
}

}  // namespace

std::string Metrics::escape(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

void Metrics::Counter::add(const Labels& labels, double amount) {
  std::string key = render_labels(labels);
  std::lock_guard lock(mutex_);
  values_[key] += amount;
}

void Metrics::Histogram::observe(const Labels& labels, double value) {
  std::string key = render_labels(labels);
  std::lock_guard lock(mutex_);
  Series& s = series_[key];
  if (s.buckets.empty()) s.buckets.assign(bounds_.size(), 0);
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (value <= bounds_[i]) {
      ++s.buckets[i];
      break;
    }
  }
  s.sum += value;
  ++s.count;
}

Metrics::Counter& Metrics::counter(const std::string& name, const std::string& help) {
  auto family = std::make_unique<Family>();
  family->name = name;
  family->help = help;
  family->type = "counter";
  family->counter = std::make_unique<Counter>();
  Counter& counter = *family->counter;
  std::lock_guard lock(mutex_);
  families_.push_back(std::move(family));
  return counter;
}

Metrics::Histogram& Metrics::histogram(const std::string& name, const std::string& help,
                                       std::vector<double> bounds) {
  auto family = std::make_unique<Family>();
  family->name = name;
  family->help = help;
  family->type = "histogram";
  family->histogram = std::make_unique<Histogram>();
  family->histogram->bounds_ = std::move(bounds);
  Histogram& histogram = *family->histogram;
  std::lock_guard lock(mutex_);
  families_.push_back(std::move(family));
  return histogram;
}

void Metrics::gauge(const std::string& name, const std::string& help,
                    std::function<double()> read) {
  auto family = std::make_unique<Family>();
  family->name = name;
  family->help = help;
  family->type = "gauge";
  family->gauge = std::move(read);
  std::lock_guard lock(mutex_);
  families_.push_back(std::move(family));
}

std::string Metrics::render() const {
  std::string out;
  std::lock_guard lock(mutex_);
  for (const auto& family : families_) {
    out += "# HELP " + family->name + " " + family->help + "\n";
    out += "# TYPE " + family->name + " " + family->type + "\n";
    if (family->counter) {
      std::lock_guard values_lock(family->counter->mutex_);
      for (const auto& [labels, value] : family->counter->values_) {
        out += series(family->name, labels) + " " + number(value) + "\n";
      }
    } else if (family->histogram) {
      Histogram& h = *family->histogram;
      std::lock_guard series_lock(h.mutex_);
      for (const auto& [labels, s] : h.series_) {
        uint64_t cumulative = 0;
        for (size_t i = 0; i < h.bounds_.size(); ++i) {
          cumulative += s.buckets[i];
          out += series(family->name + "_bucket", labels, "le=\"" + number(h.bounds_[i]) + "\"") +
                 " " + std::to_string(cumulative) + "\n";
        }
        out += series(family->name + "_bucket", labels, "le=\"+Inf\"") + " " +
               std::to_string(s.count) + "\n";
        out += series(family->name + "_sum", labels) + " " + number(s.sum) + "\n";
        out += series(family->name + "_count", labels) + " " + std::to_string(s.count) + "\n";
      }
    } else if (family->gauge) {
      out += family->name + " " + number(family->gauge()) + "\n";
    }
  }
  return out;
}

}  // namespace terrarium::http
