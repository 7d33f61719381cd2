#pragma once
// Compile-time backend tags and the primary templates every backend specialises.
//
// A backend is an empty tag type. Everything that depends on the backend (the tensor's
// storage, the execution context, each op) is a class template keyed on the tag and
// specialised in include/micle/backend/<name>/. Using an op with a backend that does not
// implement it stops compilation with a static_assert naming the op; the instantiation
// note that follows names the backend.
#include <string_view>

namespace micle {

/// Plain C++ loops, double accumulation where it matters. The oracle for tests.
struct reference {
    static constexpr std::string_view name = "reference";
};
/// CPU backend on oneDNN 2.x primitives (blocked layouts between layers).
struct onednn {
    static constexpr std::string_view name = "onednn";
};
/// GPU backend on cuDNN/cuBLAS/CUDA (NHWC, one stream per context); its specialisations
/// live in backend/cudnn/ and are compiled by nvcc.
struct cudnn {
    static constexpr std::string_view name = "cudnn";
};

namespace detail {
template <class>
inline constexpr bool always_false = false;
}  // namespace detail

#define MICLE_MISSING_SPECIALISATION(WHAT)                                                       \
    static_assert(::micle::detail::always_false<B>,                                              \
                  "micle: " WHAT " is not implemented for this backend (see the instantiation " \
                  "below for which one). Include micle/backend/<name>.hpp for a built backend, " \
                  "or specialise it in include/micle/backend/<name>/.")

/// Execution context of a backend: engine/device, stream, scratch. One per learner.
/// Ops enqueue work on the context's stream; `synchronize()` waits for it.
template <class B>
class context {
    MICLE_MISSING_SPECIALISATION("micle::context<Backend>");
};

/// An n-dimensional array whose memory the backend owns (host memory, oneDNN memory with a
/// possibly blocked layout, device memory). Logical shape is NCHW for images; the physical
/// layout is the backend's business, and conversion to plain host NCHW is explicit
/// (`to_host`/`from_host`).
template <class B>
class tensor {
    MICLE_MISSING_SPECIALISATION("micle::tensor<Backend>");
};

}  // namespace micle
