#pragma once
// Every policy interface of micle, in one place. Policies are checked with these concepts
// where they are used, so a type that does not fit fails with the concept's name.
//
// Backend (a tag type: micle::reference, micle::onednn, micle::cudnn)
//   - B::name                          a std::string_view
//   - micle::context<B>                execution context (engine/device, stream);
//                                      default-constructible, ctx.synchronize() waits for
//                                      all work enqueued on it. Ops may run asynchronously
//                                      with respect to the host until then.
//   - micle::tensor<B>                 move-only owner of backend memory with
//       tensor::empty(ctx, shape[, dtype]), tensor::zeros(...), tensor::from_host(ctx,
//       shape, span<const float>[, dtype]) (plain row-major host values in),
//       t.to_host(ctx) -> std::vector<float> (plain row-major f32 out, synchronises),
//       t.clone(ctx), t.fill(ctx, v), t.shape(), t.dtype(), t.numel(), t.defined().
//   - the ops of micle/core/ops.hpp specialised for B (conv2d, batch_norm, relu, add,
//     pool2d, global_avg_pool, linear, l2_normalize, softmax_cross_entropy, sigmoid_bce),
//     each with the member functions documented there.
//
// The model-side policies (Backbone, Head, PairStrategy, Loss, Optimizer) are declared
// next to their first implementations under models/, heads/, contrastive/ and optim/, and
// listed here as they land.
#include <concepts>
#include <span>
#include <string_view>
#include <vector>

#include "micle/core/backend.hpp"
#include "micle/core/dtype.hpp"
#include "micle/core/shape.hpp"

namespace micle {

template <class B>
concept Backend = requires(context<B>& ctx, const tensor<B>& ct, tensor<B>& t, const shape& s,
                           std::span<const float> host, float v) {
    { B::name } -> std::convertible_to<std::string_view>;
    { ctx.synchronize() };
    { tensor<B>::empty(ctx, s, dtype::f32) } -> std::same_as<tensor<B>>;
    { tensor<B>::zeros(ctx, s, dtype::f32) } -> std::same_as<tensor<B>>;
    { tensor<B>::from_host(ctx, s, host, dtype::f32) } -> std::same_as<tensor<B>>;
    { ct.to_host(ctx) } -> std::same_as<std::vector<float>>;
    { ct.clone(ctx) } -> std::same_as<tensor<B>>;
    { t.fill(ctx, v) };
    { ct.shape() } -> std::convertible_to<const shape&>;
    { ct.dtype() } -> std::same_as<dtype>;
    { ct.numel() } -> std::convertible_to<std::int64_t>;
    { ct.defined() } -> std::convertible_to<bool>;
} && std::default_initializable<context<B>> && std::movable<tensor<B>>;

}  // namespace micle
