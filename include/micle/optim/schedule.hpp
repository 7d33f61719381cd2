#pragma once
// Learning-rate schedules and batch-size scaling (SimCLR's conventions).
#include <cmath>
#include <cstdint>
#include <numbers>

#include "micle/core/error.hpp"

namespace micle::optim {

enum class lr_scaling : std::uint8_t {
    none,
    linear,  ///< base * batch / 256
    sqrt,    ///< base * sqrt(batch)  (SimCLR: 0.075 * sqrt(B) for small batches)
};

inline float scaled_lr(float base, std::int64_t batch_size, lr_scaling s) {
    check<value_error>(batch_size > 0, "scaled_lr: batch size must be positive, got ", batch_size);
    switch (s) {
        case lr_scaling::linear: return base * float(batch_size) / 256.0f;
        case lr_scaling::sqrt: return base * std::sqrt(float(batch_size));
        default: return base;
    }
}

/// Linear warmup from 0 over `warmup_steps`, then cosine decay to `final_lr` at
/// `total_steps` (and `final_lr` after it): lr(s) = peak * s / warmup for s < warmup, else
/// final + (peak - final) * (1 + cos(pi * (s - warmup) / (total - warmup))) / 2.
struct warmup_cosine {
    float peak_lr = 0.3f;
    std::int64_t warmup_steps = 0;
    std::int64_t total_steps = 1;
    float final_lr = 0.0f;

    float operator()(std::int64_t step) const {
        check<value_error>(total_steps > 0 && warmup_steps >= 0 && warmup_steps <= total_steps,
                           "warmup_cosine: need 0 <= warmup_steps <= total_steps and total_steps > 0");
        if (step < warmup_steps) return peak_lr * float(step) / float(warmup_steps);
        if (step >= total_steps) return final_lr;
        const double progress = double(step - warmup_steps) / double(total_steps - warmup_steps);
        return final_lr + (peak_lr - final_lr) * float(0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
    }
};

}  // namespace micle::optim
