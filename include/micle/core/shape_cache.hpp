#pragma once
// A few per-shape entries of an op (train and eval batch sizes, say), found by key: what a
// backend builds once per input shape (oneDNN primitives, cuDNN descriptors and algorithm
// choices) lives here. The least recently used entry goes when a ninth is needed; entries
// do not move in memory.
#include <algorithm>
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace micle::detail {

template <class Key, class Entry>
class shape_cache {
public:
    template <class Make>
    Entry& get(const Key& key, Make&& make) {
        for (auto it = items_.begin(); it != items_.end(); ++it)
            if (it->first == key) {
                std::rotate(it, it + 1, items_.end());
                return *items_.back().second;
            }
        if (items_.size() == capacity) items_.erase(items_.begin());
        items_.emplace_back(key, std::make_unique<Entry>(make()));
        return *items_.back().second;
    }

    bool empty() const noexcept { return items_.empty(); }

private:
    static constexpr std::size_t capacity = 8;
    std::vector<std::pair<Key, std::unique_ptr<Entry>>> items_;
};

}  // namespace micle::detail
