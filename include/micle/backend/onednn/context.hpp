#pragma once
// The oneDNN backend's context: its options (bf16 mixed precision, Winograd), what the CPU
// oneDNN runs on offers (the ISA and the rules that follow from it: bf16_pays, AVX2,
// AVX-512, AMX), and the engine and stream every op enqueues on.
#include <dnnl.hpp>

#include <cstdint>
#include <string>

#include "micle/backend/onednn/compat.hpp"
#include "micle/core/backend.hpp"
#include "micle/core/error.hpp"

namespace micle {

/// Settings of a CPU context.
struct onednn_options {
    /// Mixed precision: the backbone's activations and their gradients are bf16
    /// (convolutions, batch norm, pooling, ReLU and residual adds read and write bf16;
    /// convolutions accumulate in fp32), weights stay fp32 master copies (convolutions
    /// convert them per call), and weight gradients, batch-norm statistics, the head, the
    /// loss and the optimizer stay fp32 - the GPU backend's cudnn_options::bf16 on the CPU.
    /// Needs a CPU with AVX512-BF16 or AMX (Cooper Lake, Sapphire Rapids, Zen 4 and later):
    /// a context refuses it elsewhere, where oneDNN has no bf16 convolutions. It is faster
    /// than fp32 only with AMX (onednn_detail::bf16_pays; the description says so elsewhere).
    bool bf16 = false;
    /// fp32 3x3 stride-1 convolutions over 32 channels or more onto maps of 4x4 and more
    /// (ResNet's stages at 32-64 px inputs: most of ResNet-18's multiply-adds, half of
    /// ResNet-50's) run oneDNN's Winograd F(4x4, 3x3) kernels, which oneDNN 2.6 has on
    /// AVX-512 CPUs: each pass 1.2-3.0x faster than with its direct kernels. Their results
    /// differ from the direct form's by rounding (1e-6 to 2e-5 of the largest value).
    /// false keeps the direct kernels everywhere. ops::conv2d<onednn>::winograd_pays.
    bool winograd = true;
};

/// The options a default-constructed context<onednn> takes: set them once at start-up,
/// before contexts are made.
inline onednn_options& onednn_defaults() {
    static onednn_options o;
    return o;
}

namespace onednn_detail {
/// oneDNN's name for the instruction set its kernels use on this CPU (after
/// ONEDNN_MAX_CPU_ISA), e.g. "AVX512_CORE_AMX".
inline const char* isa_name(dnnl::cpu_isa isa) {
    switch (isa) {
        case dnnl::cpu_isa::sse41: return "SSE41";
        case dnnl::cpu_isa::avx: return "AVX";
        case dnnl::cpu_isa::avx2: return "AVX2";
        case dnnl::cpu_isa::avx2_vnni: return "AVX2_VNNI";
        case dnnl::cpu_isa::avx512_mic: return "AVX512_MIC";
        case dnnl::cpu_isa::avx512_mic_4ops: return "AVX512_MIC_4OPS";
        case dnnl::cpu_isa::avx512_core: return "AVX512_CORE";
        case dnnl::cpu_isa::avx512_core_vnni: return "AVX512_CORE_VNNI";
        case dnnl::cpu_isa::avx512_core_bf16: return "AVX512_CORE_BF16";
        case dnnl::cpu_isa::avx512_core_amx: return "AVX512_CORE_AMX";
        default: return "unknown";
    }
}
/// Whether ISA `isa` includes `want` (oneDNN's ISA values are nested bit masks, AMX's
/// containing AVX512-BF16's, which contains AVX-512's).
inline bool cpu_isa_includes(dnnl::cpu_isa isa, dnnl::cpu_isa want) {
    const auto bits = static_cast<unsigned>(isa), w = static_cast<unsigned>(want);
    return (bits & w) == w;
}
/// Whether oneDNN runs bf16 kernels here: its effective ISA includes AVX512-BF16.
inline bool cpu_has_bf16(dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa()) {
    return cpu_isa_includes(isa, dnnl::cpu_isa::avx512_core_bf16);
}
/// Whether oneDNN runs AVX2 kernels (or wider) here.
inline bool cpu_has_avx2(dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa()) {
    return cpu_isa_includes(isa, dnnl::cpu_isa::avx2);
}
/// Whether oneDNN runs AVX-512 kernels here (Skylake-SP and later, Zen 4).
inline bool cpu_has_avx512(dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa()) {
    return cpu_isa_includes(isa, dnnl::cpu_isa::avx512_core);
}
/// Whether oneDNN runs AMX kernels here (bf16 tile matrix multiplies).
inline bool cpu_has_amx(dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa()) {
    return cpu_isa_includes(isa, dnnl::cpu_isa::avx512_core_amx);
}
/// Whether bf16 mixed precision trains faster than fp32 here: on AMX only. With
/// AVX512-BF16 but no AMX, oneDNN 2.6's bf16 convolutions and their conversions are slower
/// than its fp32 (Winograd and direct) kernels: a ResNet-18 SimCLR step at 0.38-0.52x the
/// fp32 rate, measured on a Sapphire Rapids Xeon held to AVX512_CORE_BF16 and on one
/// without AMX (docs/performance.md). The trainer's `--precision auto` follows this.
inline bool bf16_pays(dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa()) { return cpu_has_amx(isa); }
}  // namespace onednn_detail

/// One CPU engine and one in-order stream. With Debian's OpenMP build of oneDNN the
/// stream executes synchronously; code that reads tensor memory on the host still calls
/// `synchronize()` first so that asynchronous runtimes stay correct.
template <>
class context<onednn> {
public:
    context() : context(onednn_defaults()) {}
    explicit context(const onednn_options& o) : opts_(o), engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
        if (o.bf16) {
            const auto isa = dnnl::get_effective_cpu_isa();
            check<value_error>(onednn_detail::cpu_has_bf16(isa),
                               "bf16 mixed precision needs a CPU with AVX512-BF16 or AMX, but oneDNN runs ",
                               onednn_detail::isa_name(isa),
                               " kernels here (no bf16 convolutions); use fp32 (and check ONEDNN_MAX_CPU_ISA)");
        }
    }
    const onednn_options& options() const noexcept { return opts_; }
    const dnnl::engine& engine() const noexcept { return engine_; }
    dnnl::stream& stream() noexcept { return stream_; }
    void synchronize() { stream_.wait(); }

    /// "onednn (AVX512_CORE_AMX), bf16 mixed precision", "onednn (AVX2), fp32", or, where
    /// fp32 3x3 convolutions may run Winograd kernels (onednn_options::winograd on an
    /// AVX-512 CPU), "onednn (AVX512_CORE), fp32, Winograd 3x3 convolutions", for logs.
    /// bf16 where it does not pay (onednn_detail::bf16_pays) says so.
    std::string description() const {
        const bool winograd = !opts_.bf16 && opts_.winograd && onednn_detail::cpu_has_avx512();
        const bool slow_bf16 = opts_.bf16 && !onednn_detail::bf16_pays();
        return detail::cat("onednn (", onednn_detail::isa_name(dnnl::get_effective_cpu_isa()), "), ",
                           opts_.bf16 ? "bf16 mixed precision" : "fp32", winograd ? ", Winograd 3x3 convolutions" : "",
                           slow_bf16 ? " (slower than fp32 on a CPU without AMX)" : "");
    }

    /// How many times ops converted a tensor between its layout and the one their primitive
    /// reads or writes (onednn_detail::stage's get and flush). Weights and activations kept
    /// in the layouts the primitives prefer need none in a step; for tests and profiling.
    std::uint64_t layout_reorders() const noexcept { return layout_reorders_; }
    void count_layout_reorder() noexcept { ++layout_reorders_; }

private:
    onednn_options opts_;
    dnnl::engine engine_;
    dnnl::stream stream_;
    std::uint64_t layout_reorders_ = 0;
};

}  // namespace micle
