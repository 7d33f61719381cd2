#pragma once
// Augmented views of one sample from one decode: every view's parameters are drawn from
// its own stream and the sample's full-resolution header first, then the sample is
// decoded once - reduced and cropped as far as all the views allow - and each view is
// resampled from that buffer. A view is therefore a function of its stream and the
// sample, whatever else is decoded with it or on which thread.
#include <cstdint>
#include <span>
#include <vector>

#include "micle/data/augment.hpp"
#include "micle/data/dataset.hpp"

namespace micle::data {

/// Views of sample `i`, one per stream, each `channels` x c.size x c.size floats at dst[k].
inline void make_views(const dataset& d, std::int64_t i, std::span<const std::uint64_t> streams, const augment_config& c,
                       std::int64_t channels, std::span<float* const> dst) {
    check<value_error>(streams.size() == dst.size() && !streams.empty(), "make_views: ", streams.size(), " streams for ",
                       dst.size(), " views");
    std::vector<augment_params> params(streams.size());
    const source_image img = d.load_source(i, [&](const image_header& h) {
        check<data_error>(h.height > 0 && h.width > 0 && h.channels > 0, "dataset ", d.source, ": ", d.names[std::size_t(i)],
                          ": empty image (", h.height, " x ", h.width, " x ", h.channels, ")");
        decode_request r;
        for (std::size_t k = 0; k < streams.size(); ++k) {
            rng gen(streams[k]);
            params[k] = sample(c, h.height, h.width, gen);
            r = widen(r, view_request(params[k], c, h));
        }
        return r;
    });
    for (std::size_t k = 0; k < streams.size(); ++k) {
        const image out = apply(img, params[k], c, channels);
        std::copy(out.pixels.begin(), out.pixels.end(), dst[k]);
    }
}

}  // namespace micle::data
