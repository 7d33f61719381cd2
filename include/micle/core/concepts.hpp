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
//       t.assign(ctx, span<const float>) (plain host values into the existing layout),
//       t.clone(ctx), t.fill(ctx, v), t.shape(), t.dtype(), t.numel(), t.defined().
//   - the ops of micle/core/ops.hpp specialised for B (conv2d, batch_norm, relu, add,
//     pool2d, global_avg_pool, linear, l2_normalize, softmax_cross_entropy, sigmoid_bce,
//     nt_xent),
//     each with the member functions documented there.
//
// Backbone<B> (models::resnet): configured at run time from `typename M::config`
//   - M(ctx, cfg, seed)                  built with its weights drawn from the seed
//   - m.forward(ctx, images, training) -> const tensor<B>& [N, output_dim()]
//   - m.backward(ctx, d_output)          parameter gradients (the image gets none)
//   - m.output_dim(), m.state()          (nn::state_list: parameters, buffers, counters)
//   The recipes and evaluation also need models::backbone_traits<M> (models/backbone.hpp):
//   its config to and from checkpoint metadata.
// Head<B> (heads::projection, heads::linear): the same, and backward returns the gradient
//   of its input: m.backward(ctx, dy) -> const tensor<B>&.
// Loss<B> (contrastive::nt_xent): l.forward(ctx, z, groups) -> float (synchronises),
//   l.backward(ctx) -> const tensor<B>& (gradient of the loss with respect to z).
// Optimizer<B> (optim::sgd, optim::lars, optim::adamw): constructed from (config,
//   parameters), o.step(ctx, lr) updates every parameter from its grad, o.state() names
//   its buffers for checkpoints.
// BatchSource (what train::fit takes) and PairStrategy (contrastive::augmented_views,
//   contrastive::multi_instance): a dataset turned into batches, for a pair strategy 2N
//   views with their group ids; defined below.
#include <concepts>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "micle/core/backend.hpp"
#include "micle/core/dtype.hpp"
#include "micle/core/ops.hpp"
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
    { t.assign(ctx, host) };
    { ct.clone(ctx) } -> std::same_as<tensor<B>>;
    { t.fill(ctx, v) };
    { ct.shape() } -> std::convertible_to<const shape&>;
    { ct.dtype() } -> std::same_as<dtype>;
    { ct.numel() } -> std::convertible_to<std::int64_t>;
    { ct.defined() } -> std::convertible_to<bool>;
} && std::default_initializable<context<B>> && std::movable<tensor<B>>;

template <class M, class B>
concept Backbone = requires(M& m, context<B>& ctx, const tensor<B>& x, const typename M::config& cfg, std::uint64_t seed) {
    typename M::config;
    M(ctx, cfg, seed);  // what the learners construct it with
    { m.forward(ctx, x, true) } -> std::same_as<const tensor<B>&>;
    { m.backward(ctx, x) };
    { m.output_dim() } -> std::convertible_to<std::int64_t>;
    { m.state() };
};

template <class M, class B>
concept Head = requires(M& m, context<B>& ctx, const tensor<B>& x) {
    typename M::config;
    { m.forward(ctx, x, true) } -> std::same_as<const tensor<B>&>;
    { m.backward(ctx, x) } -> std::same_as<const tensor<B>&>;
    { m.output_dim() } -> std::convertible_to<std::int64_t>;
    { m.state() };
};

template <class L, class B>
concept Loss = requires(L& l, context<B>& ctx, const tensor<B>& z, std::span<const std::int64_t> groups) {
    typename L::config;
    { l.forward(ctx, z, groups) } -> std::convertible_to<float>;
    { l.backward(ctx) } -> std::same_as<const tensor<B>&>;
};

template <class O, class B>
concept Optimizer = requires(O& o, context<B>& ctx, float lr) {
    typename O::config;
    { o.step(ctx, lr) };
    { o.state() };
};

/// What train::fit draws batches from (contrastive::augmented_views and multi_instance,
/// data::labeled_images and labeled_features): units per epoch, the batches of n units in
/// an epoch, and batch b of epoch e as host data. A data-parallel run also needs
/// make_batch(e, b, n, first, count): the units [first, first + count) of that batch.
template <class S>
concept BatchSource = requires(const S& s, std::int64_t e, std::int64_t b, std::int64_t n) {
    { s.units() } -> std::convertible_to<std::int64_t>;
    { s.batches(n) } -> std::convertible_to<std::int64_t>;
    s.make_batch(e, b, n);
};

/// A positive-pair strategy (augmented_views: SimCLR; multi_instance: MICLe): a batch
/// source whose batches are 2N views, rows i and i + N a positive pair, with the group
/// (patient) id and the dataset index of every row.
template <class S>
concept PairStrategy = BatchSource<S> && requires(const S& s, std::int64_t e, std::int64_t b, std::int64_t n) {
    s.make_batch(e, b, n).pixels;
    s.make_batch(e, b, n).groups;
    s.make_batch(e, b, n).samples;
    s.make_batch(e, b, n, b, n);
};

// ---------------------------------------------------------------- backend capabilities
// What some backends offer beyond the Backend concept, asked for with `if constexpr` by
// the layers above (optim, nn, dist), so that none of them names a backend.

/// Host tensors with layouts (oneDNN's blocked ones): a tensor's `desc()`, the plain layout
/// of a shape, a copy of host values from one layout to another, and a layout's fingerprint.
template <class B>
concept host_layouts = requires(const tensor<B>& t, std::span<const float> in, std::span<float> out) {
    tensor<B>::relayout_host(t.desc(), in, tensor<B>::plain_layout(t.shape()), out);
    { tensor<B>::layout_id(t.desc()) } -> std::convertible_to<std::uint64_t>;
};

/// Tensors in device memory, which a device-aware communicator (NCCL) takes as they are:
/// `t.f32()` is the device pointer of an fp32 tensor.
template <class B>
concept device_tensors = requires(tensor<B>& t) {
    { t.f32() } -> std::convertible_to<float*>;
};

/// Tensors whose storage is host memory, readable once the context is synchronised
/// (`t.host_buffer()`: the reference and oneDNN backends).
template <class B>
concept host_tensors = requires(tensor<B>& t) { t.host_buffer(); };

/// A batch-norm op that normalises with statistics it is given (oneDNN): cross-replica
/// batch norm (nn/cross_replica_batch_norm.hpp) then runs on the op's primitives, and only
/// per-channel values cross to the host.
template <class B>
concept normalises_with_given_statistics =
    requires(ops::batch_norm<B>& op, context<B>& c, const tensor<B>& t, tensor<B>& o, std::span<float> s) {
        op.local_statistics(c, t, s, s);
        op.forward_with_statistics(c, t, t, t, t, t, o);
        op.backward_with_statistics(c, t, t, t, t, t, t, o, o, o);
        op.subtract_affine(c, t, t, t, o);
    };

}  // namespace micle
