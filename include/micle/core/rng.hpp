#pragma once
// Counter-based randomness. Every random draw in micle is a pure function of a seed and a
// few integers (epoch, sample index, parameter index, ...), so results do not depend on
// thread counts, ranks or the order in which work is scheduled.
#include <array>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <numbers>

namespace micle {

/// SplitMix64 finaliser: a bijective 64-bit mixer.
constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/// A seed derived from a parent seed and a path of integers: derive(seed, {epoch, index}).
constexpr std::uint64_t derive_seed(std::uint64_t seed, std::initializer_list<std::uint64_t> path) noexcept {
    std::uint64_t s = mix64(seed);
    for (auto p : path) s = mix64(s ^ mix64(p + 0x632be59bd9b4e019ull));
    return s;
}

/// xoshiro256** seeded through SplitMix64; satisfies UniformRandomBitGenerator.
class rng {
public:
    using result_type = std::uint64_t;
    explicit rng(std::uint64_t seed = 0) noexcept {
        for (auto& w : s_) w = seed = mix64(seed);
    }
    static constexpr result_type min() noexcept { return 0; }
    static constexpr result_type max() noexcept { return ~result_type{0}; }

    result_type operator()() noexcept {
        const auto result = rotl(s_[1] * 5, 7) * 9;
        const auto t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

    /// Uniform in [0, 1) with 24 bits (exactly representable floats).
    float uniform() noexcept { return float((*this)() >> 40) * 0x1p-24f; }
    float uniform(float lo, float hi) noexcept { return lo + (hi - lo) * uniform(); }
    /// Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; bias below 2^-32 for n < 2^32).
    std::uint64_t below(std::uint64_t n) noexcept {
        return static_cast<std::uint64_t>((static_cast<unsigned __int128>((*this)()) * n) >> 64);
    }
    /// Standard normal (Box-Muller, double internally).
    float normal() noexcept {
        const double u1 = (double((*this)() >> 11) + 1.0) * 0x1p-53;  // (0, 1]
        const double u2 = double((*this)() >> 11) * 0x1p-53;
        return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2));
    }
    bool bernoulli(float p) noexcept { return uniform() < p; }

    /// The raw state, for checkpoints.
    std::array<std::uint64_t, 4> state() const noexcept { return {s_[0], s_[1], s_[2], s_[3]}; }
    void set_state(const std::array<std::uint64_t, 4>& s) noexcept {
        for (int i = 0; i < 4; ++i) s_[i] = s[static_cast<std::size_t>(i)];
    }

private:
    static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
    std::uint64_t s_[4];
};

}  // namespace micle
