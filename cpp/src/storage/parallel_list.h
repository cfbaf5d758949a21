// Listing a large prefix with many requests at once. One ListObjectsV2 loop fetches 1,000
// keys per round trip, one after another: a million keys take a thousand round trips in
// a row. Here the key space is split into ranges listed concurrently (ListObjectsV2's
// start-after): whenever a range turns out to hold more than a page while a thread is
// idle, the rest of it is cut at a midpoint — computed over the characters seen in keys so
// far, so that "images/000123.jpg" keys split among digits, not across all of byte space —
// and the upper part is listed by another thread.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "chute/status.h"
#include "chute/storage.h"

namespace chute::storage {

// One page: the keys after `start_after` (all when empty) in ascending byte order, as
// ObjectInfo paths "<anything>/<key>" whose key part starts at `key_offset`; `truncated`
// when more follow.
using ListPageFn = std::function<Status(const std::string& start_after, std::vector<ObjectInfo>* page,
                                        bool* truncated)>;

// Every key starting with `prefix`, listed by `threads` threads at once; in no order.
// Unsupported if the store does not return keys in ascending order after start-after
// (list it one page after another instead); the first failing page's error otherwise.
Result<std::vector<ObjectInfo>> ListInParallel(const ListPageFn& page, const std::string& prefix, size_t key_offset,
                                               size_t threads);

// A string strictly between `a` and `b` (a < b), built from the characters of `alphabet`
// (sorted, ASCII), or "" if none was found near their midpoint.
std::string KeyMidpoint(const std::string& a, const std::string& b, const std::string& alphabet);

}  // namespace chute::storage
