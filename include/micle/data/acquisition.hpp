#pragma once
// SIMULATED PATIENTS WITHOUT LABELS, for datasets that have no patient ids (Fashion-MNIST,
// MedMNIST): a simulated patient is one source image, and its bag holds 2-4 simulated
// acquisitions of it - the same anatomy as different devices or visits would record it.
// MICLe's positive pair is then two distinct acquisitions of one image; no label is read
// to build a bag, so what MICLe learns over SimCLR here is invariance to acquisition, not
// class membership (data::simulate_bags, which groups images of one class, gives
// same-class positives: labels used in pretraining).
//
// An acquisition is the shifted-device transform of scripts/shifted_test_set.py - gamma,
// contrast, blur, resampling and noise, in that order - at an independent random severity
// per corruption, after a small geometric change (rotation, scale, shift) of the patient's
// position. Severity s in [0, 5] interpolates the shifted test set's table linearly from
// the identity at s = 0:
//   gamma     x ** g (or x ** (1/g), a brighter device)  g = 1.2 .. 2.0
//   contrast  (x - mean) * c + mean                      c = 0.8 .. 0.3
//   blur      Gaussian, sigma in pixels                  0.4 .. 1.2
//   resample  down by f then back up (bilinear)          f = 0.85 .. 0.45
//   noise     additive Gaussian                          sigma = 0.02 .. 0.10
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "micle/core/rng.hpp"
#include "micle/data/augment.hpp"
#include "micle/data/dataset.hpp"
#include "micle/data/image.hpp"

namespace micle::data {

/// One simulated acquisition of an image.
struct acquisition {
    float gamma = 1, contrast = 1, blur_sigma = 0, resample = 1, noise_sigma = 0;
    float rotation_degrees = 0, scale = 1, shift_y = 0, shift_x = 0;  ///< shifts: fractions of the side
    std::uint64_t noise_seed = 0;
    bool identity() const noexcept {
        return gamma == 1 && contrast == 1 && blur_sigma == 0 && resample == 1 && noise_sigma == 0 && rotation_degrees == 0 &&
               scale == 1 && shift_y == 0 && shift_x == 0;
    }
};

/// How far acquisitions of one patient differ.
struct acquisition_config {
    float max_severity = 3;          ///< each corruption's severity is uniform in [0, max_severity] (of 5)
    float max_rotation_degrees = 5;  ///< uniform in +-this
    float max_scale_change = 0.05f;  ///< scale uniform in 1 +- this
    float max_shift = 0.04f;         ///< per axis, uniform in +-this fraction of the side
};

namespace acquisition_detail {
/// Piecewise-linear in severity s (0..5) through `identity` at 0 and table[k] at k + 1.
inline float at_severity(float s, float identity, const float (&table)[5]) {
    s = std::clamp(s, 0.0f, 5.0f);
    const int k = std::min(4, int(s));
    const float lo = k == 0 ? identity : table[k - 1], hi = table[k];
    return lo + (s - float(k)) * (hi - lo);
}
}  // namespace acquisition_detail

/// The acquisition drawn from `seed` alone.
inline acquisition draw_acquisition(std::uint64_t seed, const acquisition_config& c = {}) {
    using acquisition_detail::at_severity;
    check<value_error>(c.max_severity >= 0 && c.max_severity <= 5, "draw_acquisition: max_severity ", c.max_severity,
                       " is outside [0, 5]");
    rng g(seed);
    auto severity = [&] { return g.uniform(0.0f, c.max_severity); };
    acquisition a;
    a.gamma = at_severity(severity(), 1.0f, {1.2f, 1.4f, 1.6f, 1.8f, 2.0f});
    if (g.bernoulli(0.5f)) a.gamma = 1.0f / a.gamma;
    a.contrast = at_severity(severity(), 1.0f, {0.8f, 0.65f, 0.5f, 0.4f, 0.3f});
    a.blur_sigma = at_severity(severity(), 0.0f, {0.4f, 0.6f, 0.8f, 1.0f, 1.2f});
    a.resample = at_severity(severity(), 1.0f, {0.85f, 0.75f, 0.65f, 0.55f, 0.45f});
    a.noise_sigma = at_severity(severity(), 0.0f, {0.02f, 0.04f, 0.06f, 0.08f, 0.10f});
    a.rotation_degrees = g.uniform(-c.max_rotation_degrees, c.max_rotation_degrees);
    a.scale = 1.0f + g.uniform(-c.max_scale_change, c.max_scale_change);
    a.shift_y = g.uniform(-c.max_shift, c.max_shift);
    a.shift_x = g.uniform(-c.max_shift, c.max_shift);
    a.noise_seed = g();
    return a;
}

/// `a` applied to the whole of `src` (as planar floats in [0, 1]), at its size and
/// channels; the result is 16-bit, so the corruptions are not rounded to the source's
/// depth.
inline source_image acquire(const source_image& src, const acquisition& a) {
    image x = to_image(src);
    const std::int64_t h = x.height, w = x.width;
    if (a.rotation_degrees != 0 || a.scale != 1 || a.shift_y != 0 || a.shift_x != 0) {
        // the patient scaled by `scale` about the centre, shifted, rotated: the box the
        // output sees is 1/scale of the image
        const float bh = float(h) / a.scale, bw = float(w) / a.scale;
        const float top = (float(h) - bh) / 2 - a.shift_y * float(h), left = (float(w) - bw) / 2 - a.shift_x * float(w);
        x = crop_resize(x, top, left, bh, bw, h, w, interpolation::bilinear, a.rotation_degrees);
    }
    if (a.gamma != 1)
        for (auto& v : x.pixels) v = std::pow(std::max(v, 0.0f), a.gamma);
    if (a.contrast != 1) adjust_contrast(x, a.contrast);
    if (a.blur_sigma > 0) gaussian_blur(x, a.blur_sigma, std::max<std::int64_t>(1, std::int64_t(std::ceil(3 * a.blur_sigma))));
    if (a.resample < 1) {
        const auto sh = std::max<std::int64_t>(1, std::int64_t(std::lround(double(h) * a.resample)));
        const auto sw = std::max<std::int64_t>(1, std::int64_t(std::lround(double(w) * a.resample)));
        const image small = crop_resize(x, 0, 0, float(h), float(w), sh, sw, interpolation::bilinear);
        x = crop_resize(small, 0, 0, float(sh), float(sw), h, w, interpolation::bilinear);
    }
    if (a.noise_sigma > 0) {
        rng g(a.noise_seed);
        for (auto& v : x.pixels) v += a.noise_sigma * g.normal();
    }
    std::vector<std::uint8_t> bytes(std::size_t(x.channels * h * w * 2));
    for (std::int64_t c = 0; c < x.channels; ++c)
        for (std::int64_t y = 0; y < h; ++y)
            for (std::int64_t xx = 0; xx < w; ++xx) {
                const auto v = std::uint16_t(std::lround(std::clamp(x.at(c, y, xx), 0.0f, 1.0f) * 65535.0f));
                std::memcpy(bytes.data() + 2 * std::size_t((y * w + xx) * x.channels + c), &v, 2);
            }
    return source_image::adopt(std::move(bytes), x.channels, h, w, 16, 2);
}

/// The seed of acquisition k of image i's bag.
inline std::uint64_t acquisition_seed(std::uint64_t seed, std::int64_t i, int k) {
    return derive_seed(seed, {0x61637175ull, std::uint64_t(i), std::uint64_t(k)});
}

/// The instances of simulate_acquisitions: which source image, which acquisition.
struct acquisition_instance {
    std::int64_t source = 0;
    int index = 0, of = 0;  ///< acquisition `index` of `of` in its bag
    acquisition params;
};

/// A dataset of simulated patients: for each image i of `d`, a bag (patient id i) of
/// min_size..max_size (uniform, seeded) acquisitions of it, drawn from (seed, i, k) alone -
/// no label is read. Labels are carried along unchanged; `simulated_patients` is set.
/// Decoding an instance decodes its source whole and applies its acquisition.
inline dataset simulate_acquisitions(const dataset& d, std::uint64_t seed, int min_size = 2, int max_size = 4,
                                     const acquisition_config& config = {}) {
    check<value_error>(min_size >= 2 && max_size >= min_size,
                       "simulate_acquisitions: need 2 <= min_size <= max_size (a bag of one has no MICLe pair), got ", min_size,
                       "..", max_size);
    auto instances = std::make_shared<std::vector<acquisition_instance>>();
    dataset out;
    out.source = d.source;
    out.task = d.task;
    out.num_classes = d.num_classes;
    out.class_names = d.class_names;
    out.simulated_patients = true;
    out.simulated_bags = "acquisitions";
    for (std::int64_t i = 0; i < d.size(); ++i) {
        rng g(derive_seed(seed, {0x6163717569726564ull, std::uint64_t(i)}));
        const int size = min_size + int(g.below(std::uint64_t(max_size - min_size + 1)));
        for (int k = 0; k < size; ++k) {
            instances->push_back({i, k, size, draw_acquisition(acquisition_seed(seed, i, k), config)});
            out.patients.push_back(i);
            out.names.push_back(micle::detail::cat(d.names[std::size_t(i)], " (acquisition ", k + 1, " of ", size, ")"));
            if (!d.splits.empty()) out.splits.push_back(d.splits[std::size_t(i)]);
            if (d.task == task_kind::multiclass)
                out.labels.push_back(d.labels[std::size_t(i)]);
            else
                out.targets.insert(out.targets.end(), d.targets.begin() + i * d.num_classes, d.targets.begin() + (i + 1) * d.num_classes);
        }
    }
    out.decode = [parent = std::make_shared<const dataset>(d), instances](std::int64_t j, const decode_plan&) {
        const auto& inst = (*instances)[std::size_t(j)];
        return acquire(parent->load_source(inst.source), inst.params);  // decoding errors name the source image
    };
    out.validate();
    return out;
}

}  // namespace micle::data
