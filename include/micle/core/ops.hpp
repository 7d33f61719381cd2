#pragma once
// Operation parameters and the primary op templates. Every op is a small stateful object:
// it caches whatever its backend builds per input shape (oneDNN primitive descriptors and
// primitives, cuDNN algorithm choices) and what the backward pass needs from the forward
// pass (batch statistics, pooling workspaces, saved outputs). The same object must see
// the forward and the matching backward call.
//
// Output tensors are passed by reference: a backend reuses their storage when shape and
// layout already fit, so a training loop allocates nothing after its first step.
//
// Each backend specialises these templates with the same member functions; see
// micle/backend/reference/ for the simplest implementation of each contract.
#include <cstdint>
#include <span>

#include "micle/core/backend.hpp"
#include "micle/core/shape.hpp"

namespace micle::ops {

// ---------------------------------------------------------------- convolution
struct conv2d_params {
    std::int64_t kernel_h = 3, kernel_w = 3;
    std::int64_t stride_h = 1, stride_w = 1;
    std::int64_t pad_h = 0, pad_w = 0;

    /// Output spatial size for an input of height/width `h`/`w` (floor mode, as PyTorch).
    std::int64_t out_h(std::int64_t h) const { return (h + 2 * pad_h - kernel_h) / stride_h + 1; }
    std::int64_t out_w(std::int64_t w) const { return (w + 2 * pad_w - kernel_w) / stride_w + 1; }
};

/// 2-D convolution, NCHW input [N,C,H,W], weights [O,C,kh,kw] (OIHW), optional bias [O].
///   void forward(ctx, x, w, const tensor* bias /*nullable*/, y);
///   void backward_data(ctx, dy, w, dx);
///   void backward_weights(ctx, x, dy, dw, tensor* dbias /*nullable*/);
template <class B>
class conv2d {
    MICLE_MISSING_SPECIALISATION("op conv2d");
};

// ---------------------------------------------------------------- batch norm
struct batch_norm_params {
    float eps = 1e-5f;
    /// PyTorch's convention: running = (1 - momentum) * running + momentum * batch_stat,
    /// with the *unbiased* batch variance (n / (n - 1)) in the running variance while the
    /// normalisation itself uses the biased variance.
    float momentum = 0.1f;
    /// y = relu(bn(x)) in one op (the backward then applies the ReLU mask as well).
    bool fuse_relu = false;
};

/// Batch normalisation over N,H,W per channel of [N,C,H,W] (or [N,C]), scale gamma [C],
/// shift beta [C], running statistics [C].
///   void forward_training(ctx, x, gamma, beta, running_mean, running_var, y);
///       uses batch statistics, updates the running statistics, remembers what backward needs
///   void forward_inference(ctx, x, gamma, beta, running_mean, running_var, y);
///   void backward(ctx, x, dy, gamma, beta, dx, dgamma, dbeta);   // after forward_training
template <class B>
class batch_norm {
    MICLE_MISSING_SPECIALISATION("op batch_norm");
};

// ---------------------------------------------------------------- elementwise
/// y = max(x, 0).  void forward(ctx, x, y);  void backward(ctx, x, dy, dx);
/// backward reads only the sign of x, so the output y may stand in for x.
template <class B>
class relu {
    MICLE_MISSING_SPECIALISATION("op relu");
};

/// y = a + b (same shape; the residual join). The gradient flows unchanged to both inputs,
/// so there is no backward. `y` may be `a` or `b` (acc += x is forward(ctx, acc, x, acc)).
/// forward_relu is y = max(a + b, 0) in one pass (the join and the ReLU after it, as in a
/// ResNet block): its gradient is relu's backward given y for x, as y > 0 exactly where
/// a + b > 0.
///   void forward(ctx, a, b, y);
///   void forward_relu(ctx, a, b, y);
template <class B>
class add {
    MICLE_MISSING_SPECIALISATION("op add");
};

// ---------------------------------------------------------------- pooling
enum class pool_kind : std::uint8_t {
    max,
    avg_include_pad,  ///< PyTorch's default for AvgPool2d (count_include_pad=True)
    avg_exclude_pad,
};

struct pool2d_params {
    pool_kind kind = pool_kind::max;
    std::int64_t kernel_h = 2, kernel_w = 2;
    std::int64_t stride_h = 2, stride_w = 2;
    std::int64_t pad_h = 0, pad_w = 0;

    std::int64_t out_h(std::int64_t h) const { return (h + 2 * pad_h - kernel_h) / stride_h + 1; }
    std::int64_t out_w(std::int64_t w) const { return (w + 2 * pad_w - kernel_w) / stride_w + 1; }
};

/// Max or average pooling of [N,C,H,W] (floor mode; max pooling pads with -inf).
///   void forward(ctx, x, y);  void backward(ctx, dy, dx);   // backward after forward
template <class B>
class pool2d {
    MICLE_MISSING_SPECIALISATION("op pool2d");
};

/// [N,C,H,W] -> [N,C], the mean over H and W.
///   void forward(ctx, x, y);  void backward(ctx, dy, dx);   // backward after forward
template <class B>
class global_avg_pool {
    MICLE_MISSING_SPECIALISATION("op global_avg_pool");
};

// ---------------------------------------------------------------- fully connected
/// y = x w^T + b with x [N,K], w [O,K] (PyTorch's Linear layout), b [O].
///   void forward(ctx, x, w, const tensor* bias, y);
///   void backward_data(ctx, dy, w, dx);
///   void backward_weights(ctx, x, dy, dw, tensor* dbias);
template <class B>
class linear {
    MICLE_MISSING_SPECIALISATION("op linear");
};

// ---------------------------------------------------------------- rows and losses
/// Row-wise L2 normalisation of [N,D]: y = x / max(||x||, eps) (as F.normalize).
///   void forward(ctx, x, y);  void backward(ctx, dy, dx);   // backward after forward
struct l2_normalize_params {
    float eps = 1e-12f;
};
template <class B>
class l2_normalize {
    MICLE_MISSING_SPECIALISATION("op l2_normalize");
};

/// Mean softmax cross-entropy of logits [N,K] against class indices (host span of N ints).
///   float forward(ctx, logits, labels);   // synchronises: returns the loss value
///   void backward(ctx, dlogits);          // gradient of the mean loss
template <class B>
class softmax_cross_entropy {
    MICLE_MISSING_SPECIALISATION("op softmax_cross_entropy");
};

/// Mean sigmoid binary cross-entropy of logits [N,K] against 0/1 targets [N,K] (a tensor,
/// soft targets allowed), averaged over all N*K entries (as BCEWithLogitsLoss).
///   float forward(ctx, logits, targets);  void backward(ctx, dlogits);
/// Masked: a 0/1 mask [N,K] leaves out the entries where it is 0 (an uncertain or
/// unmentioned label): they add nothing to the loss or its gradient, and the mean is over
/// the entries kept (sum of the mask). With none kept the loss is 0 and so is the gradient.
/// A masked-out entry's target is not read (any finite value in [0, 1]).
///   float forward(ctx, logits, targets, mask);
template <class B>
class sigmoid_bce {
    MICLE_MISSING_SPECIALISATION("op sigmoid_bce");
};

/// NT-Xent (SimCLR's contrastive loss) over 2N L2-normalised embeddings z [2N, D]: logits
/// z z^T / temperature with self-similarity excluded, the positive of row i is row
/// (i + N) mod 2N, loss = mean over the 2N rows of -log softmax(positive). With `groups`
/// (2N ids, e.g. patient ids), rows of the anchor's own group other than its positive are
/// excluded from the negatives as well.
///   float forward(ctx, z, std::span<const std::int64_t> groups /*empty: none*/);
///   void backward(ctx, dz);   // gradient of the mean loss with respect to z
///
/// Data-parallel runs compute one share of the loss on each rank: z is then every rank's
/// [2n, D] block gathered rank-major ([M, D], M = 2n x ranks), and only the rows of this
/// rank's block are anchors (nt_xent_anchors): the positive of block row i is block row
/// (i + n) mod 2n, every row of z is a candidate negative, and the share is the sum of the
/// anchors' losses divided by the total anchor count M. backward then gives the share's
/// gradient with respect to *every* row of z; summing it over the ranks (a reduce-scatter)
/// gives each rank the full gradient of its own rows.
///   float forward(ctx, z, groups, nt_xent_anchors);
struct nt_xent_params {
    float temperature = 0.1f;
};
/// The anchor rows [row0, row0 + rows) of z and the count the loss is divided by.
struct nt_xent_anchors {
    std::int64_t row0 = 0, rows = 0, total = 0;
    /// The block row `i`'s positive, as a row of z.
    std::int64_t positive(std::int64_t i) const { return row0 + (i + rows / 2) % rows; }
    /// Every row an anchor: the single-process loss.
    static nt_xent_anchors all(std::int64_t m) { return {0, m, m}; }
    bool is_all(std::int64_t m) const { return row0 == 0 && rows == m && total == m; }
};
template <class B>
class nt_xent {
    MICLE_MISSING_SPECIALISATION("op nt_xent");
};

}  // namespace micle::ops

// ---------------------------------------------------------------- shared argument checks
// Every backend validates its arguments with these, so the messages are the same
// whichever backend runs.
#include "micle/core/dtype.hpp"

namespace micle::ops::checks {

inline void f32(const char* op, const char* what, dtype t) {
    check(t == dtype::f32, op, ": ", what, " has dtype ", t, ", but this op computes in f32 only");
}

inline void same_shape(const char* op, const char* a_name, const shape& a, const char* b_name,
                       const shape& b) {
    check(a == b, op, ": ", a_name, " ", a, " and ", b_name, " ", b, " must have the same shape");
}

inline void same_dtype(const char* op, const char* a_name, dtype a, const char* b_name, dtype b) {
    check(a == b, op, ": ", a_name, " is ", a, " but ", b_name, " is ", b);
}

inline shape conv2d(const conv2d_params& p, const shape& x, const shape& w, const shape* b) {
    expect_rank(x, 4, "conv2d", "input");
    expect_rank(w, 4, "conv2d", "weight");
    check<value_error>(p.kernel_h > 0 && p.kernel_w > 0 && p.stride_h > 0 && p.stride_w > 0 &&
                           p.pad_h >= 0 && p.pad_w >= 0,
                       "conv2d: kernel and stride must be positive and padding non-negative");
    check(w[1] == x[1], "conv2d: input ", x, " has ", x[1], " channels but weight ", w, " expects ", w[1]);
    check(w[2] == p.kernel_h && w[3] == p.kernel_w, "conv2d: weight ", w, " does not match kernel ",
          p.kernel_h, "x", p.kernel_w);
    if (b) check(b->rank() == 1 && (*b)[0] == w[0], "conv2d: bias ", *b, " must be [", w[0], "]");
    const auto oh = p.out_h(x[2]), ow = p.out_w(x[3]);
    check(oh > 0 && ow > 0, "conv2d: input ", x, " is too small for kernel ", p.kernel_h, "x", p.kernel_w,
          " with padding ", p.pad_h, ",", p.pad_w);
    return shape{x[0], w[0], oh, ow};
}

inline shape pool2d(const pool2d_params& p, const shape& x) {
    expect_rank(x, 4, "pool2d", "input");
    check<value_error>(p.kernel_h > 0 && p.kernel_w > 0 && p.stride_h > 0 && p.stride_w > 0 &&
                           p.pad_h >= 0 && p.pad_w >= 0 && 2 * p.pad_h <= p.kernel_h &&
                           2 * p.pad_w <= p.kernel_w,
                       "pool2d: kernel and stride must be positive and padding at most half the kernel");
    const auto oh = p.out_h(x[2]), ow = p.out_w(x[3]);
    check(oh > 0 && ow > 0, "pool2d: input ", x, " is too small for kernel ", p.kernel_h, "x", p.kernel_w);
    return shape{x[0], x[1], oh, ow};
}

inline shape linear(const shape& x, const shape& w, const shape* b) {
    expect_rank(x, 2, "linear", "input");
    expect_rank(w, 2, "linear", "weight");
    check(x[1] == w[1], "linear: input ", x, " has ", x[1], " features but weight ", w, " expects ", w[1]);
    if (b) check(b->rank() == 1 && (*b)[0] == w[0], "linear: bias ", *b, " must be [", w[0], "]");
    return shape{x[0], w[0]};
}

/// x is [N,C,H,W] or [N,C]; every per-channel argument must be [C].
inline void batch_norm(const shape& x, bool training, std::initializer_list<const shape*> per_channel) {
    check(x.rank() == 2 || x.rank() == 4, "batch_norm: input must be [N,C] or [N,C,H,W], got ", x);
    check(!x.has_zero(), "batch_norm: input has a zero-sized dimension: ", x);
    if (training)
        check(x.numel() / x[1] > 1, "batch_norm: training needs more than one value per channel, got input ", x);
    for (const shape* s : per_channel)
        check(s->rank() == 1 && (*s)[0] == x[1], "batch_norm: per-channel parameter ", *s,
              " does not match the ", x[1], " channels of input ", x);
}

inline void rows(const char* op, const shape& x) { expect_rank(x, 2, op, "input"); }

/// logits [N,K] and N class indices in [0, K).
inline void class_labels(const char* op, const shape& logits, std::span<const int> labels) {
    rows(op, logits);
    check(static_cast<std::int64_t>(labels.size()) == logits[0], op, ": ", labels.size(),
          " labels for logits ", logits);
    for (std::size_t i = 0; i < labels.size(); ++i)
        check<value_error>(labels[i] >= 0 && labels[i] < logits[1], op, ": label ", labels[i], " of sample ", i,
                           " is outside [0, ", logits[1], ")");
}

/// z [2N, D] with an even number of rows, and either no groups or 2N of them whose
/// positive pairs (i, i + N) agree.
inline void nt_xent(const shape& z, std::span<const std::int64_t> groups, float temperature) {
    rows("nt_xent", z);
    check(z[0] % 2 == 0 && z[0] >= 2, "nt_xent: embeddings ", z, " must have 2N rows (two views of N samples)");
    check<value_error>(temperature > 0, "nt_xent: temperature must be positive, got ", temperature);
    if (groups.empty()) return;
    check(static_cast<std::int64_t>(groups.size()) == z[0], "nt_xent: ", groups.size(), " group ids for embeddings ", z);
    const auto n = static_cast<std::size_t>(z[0] / 2);
    for (std::size_t i = 0; i < n; ++i)
        check<value_error>(groups[i] == groups[i + n], "nt_xent: the views ", i, " and ", i + n,
                           " of a positive pair have different groups ", groups[i], " and ", groups[i + n]);
}

/// The anchors of a data-parallel share: an even block of z's rows, whose positive pairs
/// agree on their groups, and a total of at least that many rows.
inline void nt_xent(const shape& z, std::span<const std::int64_t> groups, float temperature, const nt_xent_anchors& a) {
    rows("nt_xent", z);
    check<value_error>(temperature > 0, "nt_xent: temperature must be positive, got ", temperature);
    check(a.rows >= 2 && a.rows % 2 == 0 && a.row0 >= 0 && a.row0 + a.rows <= z[0] && a.total >= a.rows,
          "nt_xent: anchor rows [", a.row0, ", ", a.row0 + a.rows, ") of ", a.total, " must be an even block of the rows of ", z);
    if (groups.empty()) return;
    check(static_cast<std::int64_t>(groups.size()) == z[0], "nt_xent: ", groups.size(), " group ids for embeddings ", z);
    for (std::int64_t i = 0; i < a.rows / 2; ++i) {
        const auto r = std::size_t(a.row0 + i), p = std::size_t(a.positive(i));
        check<value_error>(groups[r] == groups[p], "nt_xent: the views ", r, " and ", p, " of a positive pair have different groups ",
                           groups[r], " and ", groups[p]);
    }
}

/// The checks of an nt_xent forward (f32 embeddings; the whole batch, or `a`'s anchors)
/// and the anchors it computes: every backend's two forward overloads in one place.
inline nt_xent_anchors nt_xent_call(dtype t, const shape& z, std::span<const std::int64_t> groups, float temperature,
                                    const nt_xent_anchors* a = nullptr) {
    f32("nt_xent", "embeddings", t);
    if (!a) {
        nt_xent(z, groups, temperature);
        return nt_xent_anchors::all(z[0]);
    }
    nt_xent(z, groups, temperature, *a);
    return *a;
}

/// Every value finite and in [0, 1] (binary targets, soft targets allowed).
inline void unit_interval(const char* op, const char* what, std::span<const float> v) {
    for (std::size_t i = 0; i < v.size(); ++i)
        check<value_error>(v[i] >= 0.0f && v[i] <= 1.0f, op, ": ", what, " value ", v[i], " at flat index ", i,
                           " is not in [0, 1]");
}

/// Every value 0 or 1 (a loss mask); returns how many are 1.
inline std::int64_t binary_mask(const char* op, std::span<const float> v) {
    std::int64_t kept = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
        check<value_error>(v[i] == 0.0f || v[i] == 1.0f, op, ": mask value ", v[i], " at flat index ", i, " is not 0 or 1");
        kept += v[i] == 1.0f;
    }
    return kept;
}

}  // namespace micle::ops::checks
