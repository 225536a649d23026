// A bounded queue of tasks and the loop of the threads that run them. push()
// never blocks: a full queue refuses (the server answers 503 at once rather
// than let a client wait behind a backlog it cannot see).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>

namespace terrarium::server {

class WorkQueue {
 public:
  using Task = std::function<void(size_t worker)>;

  void set_capacity(size_t capacity) {
    std::lock_guard lock(mutex_);
    capacity_ = capacity;
  }

  // False when the queue is full or closed (the task is dropped).
  bool push(Task task) {
    {
      std::lock_guard lock(mutex_);
      if (closed_ || queue_.size() >= capacity_) return false;
      queue_.push_back(std::move(task));
    }
    ready_.notify_one();
    return true;
  }

  // Runs tasks until close() and the queue is empty.
  void run_worker(size_t worker) {
    for (;;) {
      Task task;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [this] { return closed_ || !queue_.empty(); });
        if (queue_.empty()) return;
        task = std::move(queue_.front());
        queue_.pop_front();
        ++busy_;
      }
      task(worker);
      task = nullptr;
      std::lock_guard lock(mutex_);
      --busy_;
    }
  }

  // Workers finish what is queued, then return.
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    ready_.notify_all();
  }

  size_t depth() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
  }
  size_t busy() const {
    std::lock_guard lock(mutex_);
    return busy_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Task> queue_;
  size_t capacity_ = 64;
  size_t busy_ = 0;
  bool closed_ = false;
};

}  // namespace terrarium::server
