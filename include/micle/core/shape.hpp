#pragma once
// A tensor's logical shape: up to 6 dimensions, stored inline (no allocation).
// Image tensors are logically NCHW whatever their physical layout.
#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <span>
#include <sstream>
#include <string>

#include "micle/core/error.hpp"

namespace micle {

class shape {
public:
    static constexpr int max_rank = 6;

    constexpr shape() = default;
    shape(std::initializer_list<std::int64_t> dims) { assign(dims.begin(), dims.end()); }
    explicit shape(std::span<const std::int64_t> dims) { assign(dims.begin(), dims.end()); }

    int rank() const noexcept { return rank_; }
    std::int64_t operator[](int i) const noexcept { return dims_[static_cast<std::size_t>(i)]; }
    std::int64_t& operator[](int i) noexcept { return dims_[static_cast<std::size_t>(i)]; }
    const std::int64_t* begin() const noexcept { return dims_.data(); }
    const std::int64_t* end() const noexcept { return dims_.data() + rank_; }
    std::span<const std::int64_t> dims() const noexcept { return {dims_.data(), static_cast<std::size_t>(rank_)}; }

    std::int64_t numel() const noexcept {
        std::int64_t n = 1;
        for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<std::size_t>(i)];
        return n;
    }
    bool has_zero() const noexcept { return std::any_of(begin(), end(), [](std::int64_t d) { return d == 0; }); }

    friend bool operator==(const shape& a, const shape& b) noexcept {
        return a.rank_ == b.rank_ && std::equal(a.begin(), a.end(), b.begin());
    }

    std::string str() const {
        std::ostringstream os;
        os << *this;
        return os.str();
    }
    friend std::ostream& operator<<(std::ostream& os, const shape& s) {
        os << '[';
        for (int i = 0; i < s.rank_; ++i) os << (i ? ", " : "") << s[i];
        return os << ']';
    }

private:
    template <class It>
    void assign(It first, It last) {
        const auto n = std::distance(first, last);
        check(n <= max_rank, "shape: rank ", n, " exceeds the maximum of ", max_rank);
        rank_ = static_cast<int>(n);
        int i = 0;
        for (; first != last; ++first, ++i) {
            check(*first >= 0, "shape: negative dimension ", *first, " at index ", i);
            dims_[static_cast<std::size_t>(i)] = *first;
        }
    }

    std::array<std::int64_t, max_rank> dims_{};
    int rank_ = 0;
};

/// Checks that `s` has rank `r` and no zero-sized dimension; `op` and `what` name the
/// operation and the argument in the message.
inline void expect_rank(const shape& s, int r, const char* op, const char* what) {
    check(s.rank() == r, op, ": ", what, " must have rank ", r, ", got shape ", s);
    check(!s.has_zero(), op, ": ", what, " has a zero-sized dimension: ", s);
}

}  // namespace micle
