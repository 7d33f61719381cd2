#pragma once
// Error types. Every check that can fail on user input throws one of these with a message
// that names the operation and the shapes or values involved.
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace micle {

/// Base of every exception micle throws.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Tensor shapes or dtypes that do not fit an operation.
class shape_error : public error {
public:
    using error::error;
};

/// A value that is not allowed (NaN, a negative size, an unknown option...).
class value_error : public error {
public:
    using error::error;
};

/// A NaN or infinite training loss: training diverged. The step that saw it changed no
/// parameter; the trainer (micle::train::fit) stops and names the last good checkpoint.
/// Not a value_error: a bad argument to an op is a different mistake.
class nonfinite_loss_error : public error {
public:
    using error::error;
};

/// A failure inside a compute backend (oneDNN, CUDA...) that is not the caller's fault.
class backend_error : public error {
public:
    using error::error;
};

namespace detail {
template <class... Parts>
std::string cat(Parts&&... parts) {
    std::ostringstream os;
    (os << ... << std::forward<Parts>(parts));
    return os.str();
}
}  // namespace detail

/// Throws E with the concatenation of `parts` when `cond` is false.
template <class E = shape_error, class... Parts>
inline void check(bool cond, Parts&&... parts) {
    if (!cond) throw E(detail::cat(std::forward<Parts>(parts)...));
}

}  // namespace micle
