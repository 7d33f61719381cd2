#pragma once
// All-gather with a gradient: the global negatives of a data-parallel NT-Xent. forward
// stacks every rank's rows, rank-major ([n, D] on each of R ranks -> [R n, D]); backward
// hands each rank the gradient of its own rows *summed over every rank's copy of the
// gathered rows* (a reduce-scatter), so the terms where this rank's embeddings are another
// rank's negatives reach it. Keeping only the local slice of this rank's own gradient (as
// lightly #1528 and mmselfsup's gather_layer once did) drops those terms: the gradient is
// then wrong, and tests/dist/test_dist.cpp shows that it is.
//
// The CPU backends and this staging share host memory; the NCCL communicator gathers on
// the device instead (micle/dist/nccl.hpp).
#include <cstdint>
#include <span>
#include <vector>

#include "micle/core/backend.hpp"
#include "micle/core/communicator.hpp"
#include "micle/core/shape.hpp"

namespace micle::contrastive {

template <class B>
class gather_rows {
public:
    /// y = every rank's x, rank-major. x has the same shape on every rank.
    void forward(context<B>& ctx, dist::communicator& comm, const tensor<B>& x, tensor<B>& y) {
        rows_ = x.shape()[0];
        cols_ = x.numel() / std::max<std::int64_t>(rows_, 1);
        const auto local = x.to_host(ctx);
        all_.resize(local.size() * std::size_t(comm.size()));
        comm.all_gather(std::span<const float>(local), std::span<float>(all_));
        y = tensor<B>::from_host(ctx, shape{rows_ * comm.size(), cols_}, all_);
    }
    /// dx = the sum over the ranks of their dy's rows that are this rank's.
    void backward(context<B>& ctx, dist::communicator& comm, const tensor<B>& dy, tensor<B>& dx) {
        check(dy.shape() == shape{rows_ * comm.size(), cols_}, "gather_rows: backward with ", dy.shape(), " after gathering [",
              rows_, ", ", cols_, "] rows from ", comm.size(), " ranks");
        const auto g = dy.to_host(ctx);
        mine_.resize(std::size_t(rows_ * cols_));
        comm.reduce_scatter_sum(std::span<const float>(g), std::span<float>(mine_));
        dx = tensor<B>::from_host(ctx, shape{rows_, cols_}, mine_);
    }

private:
    std::int64_t rows_ = 0, cols_ = 0;
    std::vector<float> all_, mine_;
};

/// Every rank's ids (one per row), rank-major: group ids travel with the embeddings, so a
/// patient whose images are on two ranks is still one group.
inline std::vector<std::int64_t> gather_ids(dist::communicator& comm, std::span<const std::int64_t> mine) {
    std::vector<std::int64_t> all(mine.size() * std::size_t(comm.size()));
    comm.all_gather(mine, std::span<std::int64_t>(all));
    return all;
}

}  // namespace micle::contrastive
