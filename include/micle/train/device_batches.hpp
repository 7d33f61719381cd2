#pragma once
// The batches of a prefetch loader, each also handed to the backend one step ahead
// (micle::upload_queue): while the caller computes with one batch, the next one is being
// copied (on the GPU backend, on a copy stream of its own).
#include <optional>
#include <utility>

#include "micle/core/upload.hpp"
#include "micle/data/loader.hpp"

namespace micle::train {

template <class B, class Batch>
class device_batches {
public:
    device_batches(context<B>& ctx, data::prefetch_loader<Batch>& loader) : ctx_(ctx), loader_(loader) { advance(); }
    /// The next batch (its host data) and its pixels on the backend, valid until the call
    /// after next; false at the end.
    bool next(Batch& batch, const tensor<B>*& pixels) {
        if (!pending_) return false;
        batch = std::move(*pending_);
        pixels = &uploads_.next(ctx_);
        advance();
        return true;
    }

private:
    void advance() {
        pending_ = loader_.next();
        if (pending_) uploads_.stage(ctx_, pending_->dims, pending_->pixels);
    }
    context<B>& ctx_;
    data::prefetch_loader<Batch>& loader_;
    std::optional<Batch> pending_;
    upload_queue<B> uploads_;
};

}  // namespace micle::train
