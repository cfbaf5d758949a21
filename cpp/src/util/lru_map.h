// A small map that keeps its most recently used entries: Find moves an entry to the
// front, Insert evicts from the back beyond `max_entries` entries or `max_weight` total
// weight (the newest entry is always kept). For tables of open chunks and per-chunk
// metadata.
//
// Thread-safety: none; callers lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <unordered_map>
#include <utility>

namespace chute {

template <typename K, typename V>
class LruMap {
 public:
  explicit LruMap(size_t max_entries, uint64_t max_weight = UINT64_MAX)
      : max_entries_(max_entries ? max_entries : 1), max_weight_(max_weight) {}

  // The value of `key` (now the most recent), or null.
  V* Find(const K& key) {
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second.position);
    return &it->second.value;
  }
  // Inserts `key` (if absent) as the most recent entry; returns its value.
  V& Insert(const K& key, V value, uint64_t weight = 1) {
    if (V* v = Find(key)) return *v;
    order_.push_front(key);
    map_.emplace(key, Entry{std::move(value), weight, order_.begin()});
    weight_ += weight;
    while (map_.size() > 1 && (map_.size() > max_entries_ || weight_ > max_weight_)) Erase(order_.back());
    return map_.find(key)->second.value;
  }
  // Applies from the next Insert.
  void SetMaxWeight(uint64_t max_weight) { max_weight_ = max_weight; }
  void Erase(const K& key) {
    auto it = map_.find(key);
    if (it == map_.end()) return;
    weight_ -= it->second.weight;
    order_.erase(it->second.position);
    map_.erase(it);
  }
  size_t size() const { return map_.size(); }

 private:
  struct Entry {
    V value;
    uint64_t weight;
    typename std::list<K>::iterator position;
  };
  size_t max_entries_;
  uint64_t max_weight_;
  uint64_t weight_ = 0;
  std::list<K> order_;  // most recent first
  std::unordered_map<K, Entry> map_;
};

}  // namespace chute
