#pragma once
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

}  // namespace micle
