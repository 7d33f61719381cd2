#pragma once
// Reference backend storage: a plain, contiguous, row-major (NCHW) host float array.
// bf16 tensors are stored rounded to bf16 precision (values kept in floats), which is
// exactly what converting to bf16 and back would give.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "micle/core/backend.hpp"
#include "micle/core/dtype.hpp"
#include "micle/core/shape.hpp"

namespace micle {

template <>
class context<reference> {
public:
    void synchronize() noexcept {}
};

template <>
class tensor<reference> {
public:
    tensor() = default;
    tensor(tensor&&) noexcept = default;
    tensor& operator=(tensor&&) noexcept = default;
    tensor(const tensor&) = delete;
    tensor& operator=(const tensor&) = delete;

    /// Uninitialised storage of the given shape.
    static tensor empty(context<reference>&, const micle::shape& s, micle::dtype t = dtype::f32) {
        tensor r;
        r.shape_ = s;
        r.dtype_ = t;
        r.data_.resize(static_cast<std::size_t>(s.numel()));
        return r;
    }
    static tensor zeros(context<reference>& ctx, const micle::shape& s, micle::dtype t = dtype::f32) {
        auto r = empty(ctx, s, t);
        std::fill(r.data_.begin(), r.data_.end(), 0.0f);
        return r;
    }
    static tensor from_host(context<reference>& ctx, const micle::shape& s, std::span<const float> values,
                            micle::dtype t = dtype::f32) {
        check(static_cast<std::int64_t>(values.size()) == s.numel(), "tensor::from_host: ", values.size(),
              " values for shape ", s, " (", s.numel(), " elements)");
        auto r = empty(ctx, s, t);
        if (t == dtype::bf16)
            std::transform(values.begin(), values.end(), r.data_.begin(), detail::round_to_bf16);
        else
            std::copy(values.begin(), values.end(), r.data_.begin());
        return r;
    }
    std::vector<float> to_host(context<reference>&) const { return data_; }
    /// Overwrites the values from plain row-major host floats (same element count).
    void assign(context<reference>&, std::span<const float> values) {
        check(static_cast<std::int64_t>(values.size()) == numel(), "tensor::assign: ", values.size(),
              " values for shape ", shape_);
        if (dtype_ == dtype::bf16)
            std::transform(values.begin(), values.end(), data_.begin(), detail::round_to_bf16);
        else
            std::copy(values.begin(), values.end(), data_.begin());
    }
    tensor clone(context<reference>&) const {
        tensor r;
        r.shape_ = shape_;
        r.dtype_ = dtype_;
        r.data_ = data_;
        return r;
    }
    void fill(context<reference>&, float v) { std::fill(data_.begin(), data_.end(), v); }

    const micle::shape& shape() const noexcept { return shape_; }
    micle::dtype dtype() const noexcept { return dtype_; }
    std::int64_t numel() const noexcept { return shape_.numel(); }
    bool defined() const noexcept { return shape_.rank() > 0; }

    /// (Re)allocates to `s` unless the tensor already has that shape and dtype f32; keeps
    /// the storage otherwise. Ops call this on their outputs.
    void ensure(const micle::shape& s) {
        if (shape_ == s && dtype_ == dtype::f32) return;
        shape_ = s;
        dtype_ = dtype::f32;
        data_.resize(static_cast<std::size_t>(s.numel()));
    }

    float* data() noexcept { return data_.data(); }
    const float* data() const noexcept { return data_.data(); }
    std::span<float> values() noexcept { return data_; }
    /// The whole storage as host floats (here: exactly the values), for host-side kernels
    /// such as optimizer updates.
    std::span<float> host_buffer() { return data_; }
    std::span<const float> host_buffer() const { return data_; }
    std::span<const float> values() const noexcept { return data_; }

private:
    micle::shape shape_;
    micle::dtype dtype_ = dtype::f32;
    std::vector<float> data_;
};

}  // namespace micle
