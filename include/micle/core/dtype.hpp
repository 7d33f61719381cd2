#pragma once
#include <bit>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string_view>

namespace micle {

/// Element types a tensor can hold. All ops compute in f32 today; bf16 is storable and
/// convertible (for mixed precision later), and ops that do not support it say so.
enum class dtype : std::uint8_t { f32, bf16 };

constexpr std::size_t size_of(dtype t) noexcept { return t == dtype::f32 ? 4 : 2; }

constexpr std::string_view name_of(dtype t) noexcept { return t == dtype::f32 ? "f32" : "bf16"; }

inline std::ostream& operator<<(std::ostream& os, dtype t) { return os << name_of(t); }

namespace detail {
/// Round-to-nearest-even to bf16, returned as the float it represents (NaN stays NaN).
inline float round_to_bf16(float v) noexcept {
    auto u = std::bit_cast<std::uint32_t>(v);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return v;
    u += 0x7fffu + ((u >> 16) & 1u);
    return std::bit_cast<float>(u & 0xffff0000u);
}
}  // namespace detail

}  // namespace micle
