#pragma once
// oneDNN backend storage: a dnnl::memory whose memory descriptor carries the logical dims
// (NCHW order) and the physical layout, which may be blocked (nChw16c, OIhw16i16o...).
// Plain row-major is the layout of tensors made from host data; ops choose theirs. The
// context, its options and the CPU detection are in onednn/context.hpp.
#include <dnnl.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>
#include <span>
#include <string>
#include <vector>

#include "micle/backend/onednn/compat.hpp"
#include "micle/backend/onednn/context.hpp"
#include "micle/core/backend.hpp"
#include "micle/core/dtype.hpp"
#include "micle/core/shape_cache.hpp"
#include "micle/core/shape.hpp"

namespace micle {

namespace onednn_detail {
using md = dnnl::memory::desc;

inline dnnl::memory::data_type to_dnnl(dtype t) {
    return t == dtype::f32 ? dnnl::memory::data_type::f32 : dnnl::memory::data_type::bf16;
}
/// micle's element type of a oneDNN data type (f32 or bf16; anything else is refused).
inline dtype from_dnnl(dnnl::memory::data_type t) {
    check(t == dnnl::memory::data_type::f32 || t == dnnl::memory::data_type::bf16, "tensor: unsupported oneDNN data type");
    return t == dnnl::memory::data_type::f32 ? dtype::f32 : dtype::bf16;
}
inline dnnl::memory::dims to_dims(const shape& s) { return {s.begin(), s.end()}; }

inline dnnl::memory::format_tag plain_tag(int rank) {
    using tag = dnnl::memory::format_tag;
    switch (rank) {
        case 1: return tag::a;
        case 2: return tag::ab;
        case 3: return tag::abc;
        case 4: return tag::abcd;
        case 5: return tag::abcde;
        default: return tag::abcdef;
    }
}
/// Row-major descriptor of the given shape.
inline md plain_md(const shape& s, dtype t = dtype::f32) { return md(to_dims(s), to_dnnl(t), plain_tag(s.rank())); }
/// Descriptor with the dims of `s` and the layout left to the primitive.
inline md any_md(const shape& s, dtype t = dtype::f32) {
    return md(to_dims(s), to_dnnl(t), dnnl::memory::format_tag::any);
}
/// `d`'s layout with elements of type `t` (a blocked bf16 layout holding f32, say).
inline md with_dtype(const md& d, dtype t) {
    md r = d;
    r.data.data_type = static_cast<dnnl_data_type_t>(to_dnnl(t));
    return r;
}
}  // namespace onednn_detail

template <>
class tensor<onednn> {
    using md = dnnl::memory::desc;

public:
    tensor() = default;
    tensor(tensor&&) noexcept = default;
    tensor& operator=(tensor&&) noexcept = default;
    tensor(const tensor&) = delete;
    tensor& operator=(const tensor&) = delete;

    /// Uninitialised tensor in plain row-major layout.
    static tensor empty(context<onednn>& ctx, const micle::shape& s, micle::dtype t = dtype::f32) {
        check(s.rank() > 0, "tensor::empty: a tensor needs at least one dimension");
        return empty(ctx, onednn_detail::plain_md(s, t));
    }
    /// Uninitialised tensor with the given descriptor (any layout oneDNN describes).
    static tensor empty(context<onednn>& ctx, const md& desc) {
        tensor r;
        r.mem_ = dnnl::memory(desc, ctx.engine());
        r.refresh_meta();
        return r;
    }
    static tensor zeros(context<onednn>& ctx, const micle::shape& s, micle::dtype t = dtype::f32) {
        auto r = empty(ctx, s, t);
        r.fill(ctx, 0.0f);
        return r;
    }
    /// Copies plain row-major host floats into a new plain tensor (converted to `t`).
    static tensor from_host(context<onednn>& ctx, const micle::shape& s, std::span<const float> values,
                            micle::dtype t = dtype::f32) {
        check(static_cast<std::int64_t>(values.size()) == s.numel(), "tensor::from_host: ", values.size(),
              " values for shape ", s, " (", s.numel(), " elements)");
        auto r = empty(ctx, s, t);
        const auto src_md = onednn_detail::plain_md(s, dtype::f32);
        dnnl::memory src(src_md, ctx.engine(), const_cast<float*>(values.data()));
        onednn_compat::make_reorder(ctx.engine(), src_md, r.desc()).execute(ctx.stream(), src, r.mem_);
        ctx.synchronize();
        return r;
    }
    /// Plain row-major f32 copy of the values, whatever the layout and dtype.
    std::vector<float> to_host(context<onednn>& ctx) const {
        check(defined(), "tensor::to_host: undefined tensor");
        std::vector<float> out(static_cast<std::size_t>(numel()));
        const auto dst_md = onednn_detail::plain_md(shape_, dtype::f32);
        dnnl::memory dst(dst_md, ctx.engine(), out.data());
        dnnl::memory src = mem_;  // reorder::execute takes non-const handles
        onednn_compat::make_reorder(ctx.engine(), desc(), dst_md).execute(ctx.stream(), src, dst);
        ctx.synchronize();
        return out;
    }
    /// Overwrites the values from plain row-major host floats, keeping this tensor's layout.
    void assign(context<onednn>& ctx, std::span<const float> values) {
        check(defined() && static_cast<std::int64_t>(values.size()) == numel(), "tensor::assign: ", values.size(),
              " values for shape ", shape_);
        const auto src_md = onednn_detail::plain_md(shape_, dtype::f32);
        dnnl::memory src(src_md, ctx.engine(), const_cast<float*>(values.data()));
        onednn_compat::make_reorder(ctx.engine(), src_md, desc()).execute(ctx.stream(), src, mem_);
        ctx.synchronize();
    }
    /// A copy of this tensor in the layout (and data type) of `want`; dims must agree. The
    /// padding of a blocked `want` is zero.
    tensor to_layout(context<onednn>& ctx, const md& want) const {
        check(defined() && want.dims() == onednn_detail::to_dims(shape_), "tensor::to_layout: descriptor dims ",
              onednn_compat::describe(want), " do not match shape ", shape_);
        auto r = empty(ctx, want);
        if (want.get_size() > 0) std::memset(r.mem_.get_data_handle(), 0, want.get_size());
        dnnl::memory src = mem_;
        onednn_compat::make_reorder(ctx.engine(), desc(), want).execute(ctx.stream(), src, r.mem_);
        return r;
    }
    tensor clone(context<onednn>& ctx) const { return to_layout(ctx, desc()); }

    /// The row-major f32 descriptor of shape `s`: what to_host and assign exchange.
    static md plain_layout(const micle::shape& s) { return onednn_detail::plain_md(s, dtype::f32); }
    /// The fingerprint of a layout (onednn_compat::layout_id): data-parallel ranks compare
    /// their gradients' layouts with it before summing the buffers as they lie.
    static std::uint64_t layout_id(const md& d) { return onednn_compat::layout_id(d); }
    /// Copies f32 host values `in`, laid out as `from`, into `out`, laid out as `to` (same
    /// dims): optimizer state following its parameter into another layout, read or written
    /// in plain order for checkpoints, gradients packed for an all-reduce. One layout: a
    /// copy. Else a reorder on a CPU engine of its own (no context needed); the padding of
    /// a blocked `to` comes out zero.
    static void relayout_host(const md& from, std::span<const float> in, const md& to, std::span<float> out) {
        check(from.dims() == to.dims() && from.data_type() == dnnl::memory::data_type::f32 &&
                  to.data_type() == dnnl::memory::data_type::f32,
              "tensor::relayout_host: ", onednn_compat::describe(from), " and ", onednn_compat::describe(to),
              " are not two f32 layouts of one shape");
        check(in.size() * sizeof(float) == from.get_size() && out.size() * sizeof(float) == to.get_size(),
              "tensor::relayout_host: ", in.size(), " and ", out.size(), " values for layouts of ", from.get_size(),
              " and ", to.get_size(), " bytes");
        if (out.empty()) return;
        if (from == to) {
            std::copy(in.begin(), in.end(), out.begin());
            return;
        }
        std::int64_t n = 1;
        for (auto d : to.dims()) n *= d;
        if (std::size_t(n) != out.size()) std::fill(out.begin(), out.end(), 0.0f);  // padded: zero it
        static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
        thread_local dnnl::stream s(eng);
        dnnl::memory a(from, eng, const_cast<float*>(in.data())), b(to, eng, out.data());
        onednn_compat::make_reorder(eng, from, to).execute(s, a, b);
        s.wait();
    }

    /// Sets every element, padding of blocked layouts included, to v.
    void fill(context<onednn>& ctx, float v) {
        ctx.synchronize();
        const std::size_t bytes = desc().get_size();
        if (bytes == 0) return;  // zero-sized tensor: no storage
        if (v == 0.0f) {
            std::memset(mem_.get_data_handle(), 0, bytes);
            return;
        }
        auto plain = from_host(ctx, shape_, std::vector<float>(static_cast<std::size_t>(numel()), v), dtype_);
        onednn_compat::make_reorder(ctx.engine(), plain.desc(), desc()).execute(ctx.stream(), plain.mem_, mem_);
    }

    const micle::shape& shape() const noexcept { return shape_; }
    micle::dtype dtype() const noexcept { return dtype_; }
    std::int64_t numel() const noexcept { return shape_.numel(); }
    bool defined() const noexcept { return static_cast<bool>(mem_); }

    const dnnl::memory& memory() const noexcept { return mem_; }
    md desc() const { return mem_.get_desc(); }
    bool is_plain() const { return defined() && desc() == onednn_detail::plain_md(shape_, dtype_); }

    /// Makes this tensor have descriptor `want`, reallocating only when it differs.
    void ensure(context<onednn>& ctx, const md& want) {
        if (defined() && desc() == want) return;
        mem_ = dnnl::memory(want, ctx.engine());
        refresh_meta();
    }

    /// The whole f32 storage, padding of blocked layouts included (oneDNN keeps it zero),
    /// for elementwise host kernels such as optimizer updates; call ctx.synchronize() first.
    std::span<float> host_buffer() {
        check(dtype_ == dtype::f32, "tensor::host_buffer: only f32 tensors, got ", dtype_);
        return {static_cast<float*>(mem_.get_data_handle()), desc().get_size() / sizeof(float)};
    }
    std::span<const float> host_buffer() const { return const_cast<tensor*>(this)->host_buffer(); }

    /// Host pointer of a plain f32 tensor (after ctx.synchronize()).
    float* data() {
        check(dtype_ == dtype::f32 && is_plain(), "tensor::data: only plain f32 tensors expose a host pointer; shape ",
              shape_, " is not");
        return static_cast<float*>(mem_.get_data_handle());
    }
    const float* data() const { return const_cast<tensor*>(this)->data(); }

private:
    void refresh_meta() {
        const md d = mem_.get_desc();
        const auto dims = d.dims();
        shape_ = micle::shape(std::span<const std::int64_t>(dims.data(), dims.size()));
        dtype_ = onednn_detail::from_dnnl(d.data_type());
    }

    micle::shape shape_;
    micle::dtype dtype_ = dtype::f32;
    dnnl::memory mem_;
};

namespace onednn_detail {

/// Hands out memory in a wanted layout. For an input: the caller's own memory when it
/// already has that layout, else a reorder into a buffer kept here. For an output: the
/// caller's memory, or a buffer here that `flush` reorders into the caller's memory.
/// Reorder primitive and buffer are rebuilt only when the pair of layouts changes.
class stage {
public:
    const dnnl::memory& get(context<onednn>& ctx, const dnnl::memory& mem, const md& want) {
        const md have = mem.get_desc();
        if (have == want) return mem;
        prepare(ctx, have, want, want);
        prim_.execute(ctx.stream(), const_cast<dnnl::memory&>(mem), buf_);
        ctx.count_layout_reorder();
        return buf_;
    }
    const dnnl::memory& target(context<onednn>& ctx, const dnnl::memory& dst, const md& want) {
        const md have = dst.get_desc();
        if (have == want) return dst;
        prepare(ctx, want, have, want);
        return buf_;
    }
    void flush(context<onednn>& ctx, const dnnl::memory& computed, const dnnl::memory& dst) {
        if (computed.get() == dst.get()) return;
        prim_.execute(ctx.stream(), const_cast<dnnl::memory&>(computed), const_cast<dnnl::memory&>(dst));
        ctx.count_layout_reorder();
    }

    /// Reorders `src` into `dst`, which may be a view into a larger buffer (a submemory).
    void copy(context<onednn>& ctx, const dnnl::memory& src, const dnnl::memory& dst) {
        const md from = src.get_desc(), to = dst.get_desc();
        if (!prim_ || from != from_ || to != to_) {
            from_ = from;
            to_ = to;
            prim_ = onednn_compat::make_reorder(ctx.engine(), from, to);
        }
        prim_.execute(ctx.stream(), const_cast<dnnl::memory&>(src), const_cast<dnnl::memory&>(dst));
    }

private:
    void prepare(context<onednn>& ctx, const md& from, const md& to, const md& buffer) {
        if (buf_ && from == from_ && to == to_) return;
        from_ = from;
        to_ = to;
        prim_ = onednn_compat::make_reorder(ctx.engine(), from, to);
        buf_ = dnnl::memory(buffer, ctx.engine());
    }

    md from_, to_;
    dnnl::reorder prim_;
    dnnl::memory buf_;
};

/// `mem`'s storage under another descriptor of the same size (a 4-D NHWC tensor as the
/// 2-D matrix of its rows, a transposed view, ...).
inline dnnl::memory view(context<onednn>& ctx, const md& as, const dnnl::memory& mem) {
    return dnnl::memory(as, ctx.engine(), mem.get_data_handle());
}

/// A strided view of part of a buffer: `dims` with `strides`, starting `offset` elements in
/// (a kernel tap's columns of an im2col matrix, a block of a larger matrix).
inline md strided_md(const dnnl::memory::dims& dims, dnnl::memory::data_type t, const dnnl::memory::dims& strides,
                     std::int64_t offset) {
    md m(dims, t, strides);
    m.data.offset0 = offset;
    return m;
}

/// Reorders between fixed views of fixed buffers, run one after another: the per-tap
/// copies of an im2col or col2im.
struct reorder_list {
    void add(const dnnl::engine& eng, const md& from, const dnnl::memory& from_buf, const md& to,
             const dnnl::memory& to_buf, dnnl::reorder prim) {
        from_.emplace_back(from, eng, from_buf.get_data_handle());
        to_.emplace_back(to, eng, to_buf.get_data_handle());
        prims_.push_back(std::move(prim));
    }
    void run(context<onednn>& ctx) {
        for (std::size_t i = 0; i < prims_.size(); ++i) prims_[i].execute(ctx.stream(), from_[i], to_[i]);
    }
    /// Makes every reorder read from (write to) `buffer` instead, a buffer of the same
    /// layout and size as the one given to `add`.
    void rebind_from(void* buffer) { rebind(from_, buffer); }
    void rebind_to(void* buffer) { rebind(to_, buffer); }

private:
    static void rebind(std::vector<dnnl::memory>& views, void* buffer) {
        for (auto& v : views)
            if (v.get_data_handle() != buffer) v.set_data_handle(buffer);
    }
    std::vector<dnnl::memory> from_, to_;
    std::vector<dnnl::reorder> prims_;
};

using micle::detail::shape_cache;

}  // namespace onednn_detail
}  // namespace micle
