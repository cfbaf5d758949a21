// A small map that keeps its most recently used entries: Find moves an entry to the
// front, Insert evicts from the back beyond `capacity`. For tables of open chunks and
// per-chunk metadata.
//
// Thread-safety: none; callers lock.
#pragma once

#include <cstddef>
#include <list>
#include <unordered_map>
#include <utility>

namespace chute {

template <typename K, typename V>
class LruMap {
 public:
  explicit LruMap(size_t capacity) : capacity_(capacity ? capacity : 1) {}

  // The value of `key` (now the most recent), or null.
  V* Find(const K& key) {
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second.second);
    return &it->second.first;
  }
  // Inserts `key` (if absent) as the most recent entry; returns its value.
  V& Insert(const K& key, V value) {
    if (V* v = Find(key)) return *v;
    order_.push_front(key);
    map_.emplace(key, std::make_pair(std::move(value), order_.begin()));
    while (map_.size() > capacity_) {  // the new entry is at the front: never evicted
      map_.erase(order_.back());
      order_.pop_back();
    }
    return map_.find(key)->second.first;
  }
  void Erase(const K& key) {
    auto it = map_.find(key);
    if (it == map_.end()) return;
    order_.erase(it->second.second);
    map_.erase(it);
  }
  size_t size() const { return map_.size(); }

 private:
  size_t capacity_;
  std::list<K> order_;  // most recent first
  std::unordered_map<K, std::pair<V, typename std::list<K>::iterator>> map_;
};

}  // namespace chute
