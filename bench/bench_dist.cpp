// One data-parallel SimCLR pretraining step on the oneDNN backend, under mpirun: the same
// step as bench_step (ResNet, SimCLR v1 head, NT-Xent at 0.1, SGD) on a fixed global batch,
// split over the ranks, with global batch norm and the gradient all-reduce overlapping
// backward. Run it as 1 rank x 2 threads and as 2 ranks x 1 thread (bench/dist_step.sh):
//
//   OMP_NUM_THREADS=2 bench_dist
//   mpirun -np 2 --bind-to none -x OMP_NUM_THREADS=1 bench_dist
//
// Counters (rank 0's view; every rank runs the same steps):
//   img/s        both views of the global batch, per second
//   comm_frac    share of the step this rank spends blocked in collectives (waiting for
//                the gradient all-reduce after backward, the embedding gather and its
//                reduce-scatter, the batch-norm statistics, the loss sums)
//   allreduce_MB gradient values all-reduced per step; gather_MB embeddings all-gathered
//                plus their gradients reduce-scattered; bn_KB batch-norm statistics
//   collectives  calls per step; overlapped: buckets started while backward still ran;
//                as_laid_out: buckets summed in the gradients' own layouts (the ranks
//                agreed on them; the others go through plain order)
//
// The iteration count is fixed: every rank must run the same number of steps (a timing-
// based count could differ between ranks and leave one waiting in a collective).
#include <benchmark/benchmark.h>
#include <mpi.h>

#include <micle/micle.hpp>

#include <chrono>
#include <cstdio>
#include <vector>

#include "micle/dist/mpi.hpp"
#include "simclr_step.hpp"

namespace {

using B = micle::onednn;
using learner = micle::bench::simclr_step_learner<B>;
using micle::dist::dtype;

/// A communicator that forwards to another one and counts what goes through it: the
/// seconds spent blocked in collectives and the bytes of each kind of collective.
class timed_communicator final : public micle::dist::communicator {
public:
    explicit timed_communicator(micle::dist::communicator& inner) : inner_(inner) {}
    int rank() const override { return inner_.rank(); }
    int size() const override { return inner_.size(); }
    std::string description() const override { return inner_.description(); }
    void barrier() override {
        timed([&] { inner_.barrier(); });
    }
    void start_all_reduce_sum(std::span<float> data) override {
        allreduce_bytes += double(data.size_bytes());
        ++calls;
        timed([&] { inner_.start_all_reduce_sum(data); });
    }
    void progress() override {
        timed([&] { inner_.progress(); });
    }
    void finish_started() override {
        timed([&] { inner_.finish_started(); });
    }
    void reset() { seconds = allreduce_bytes = gather_bytes = small_bytes = 0, calls = 0; }

    double seconds = 0, allreduce_bytes = 0, gather_bytes = 0, small_bytes = 0;
    std::int64_t calls = 0;

protected:
    void all_reduce_sum_raw(void* data, std::size_t count, dtype t) override {
        small_bytes += double(count * micle::dist::size_of(t));
        ++calls;
        timed([&] { typed(t, data, count, [&](auto span) { inner_.all_reduce_sum(span); }); });
    }
    void all_gather_raw(const void* in, void* out, std::size_t count, dtype t) override {
        (t == dtype::f32 ? gather_bytes : small_bytes) += double(count * micle::dist::size_of(t)) * size();
        ++calls;
        timed([&] {
            typed(t, out, count * std::size_t(size()), [&](auto o) {
                using T = typename decltype(o)::element_type;
                inner_.all_gather(std::span<const T>(static_cast<const T*>(in), count), o);
            });
        });
    }
    void reduce_scatter_sum_raw(const void* in, void* out, std::size_t count, dtype t) override {
        gather_bytes += double(count * micle::dist::size_of(t)) * size();
        ++calls;
        timed([&] {
            typed(t, out, count, [&](auto o) {
                using T = typename decltype(o)::element_type;
                inner_.reduce_scatter_sum(std::span<const T>(static_cast<const T*>(in), count * std::size_t(size())), o);
            });
        });
    }
    void broadcast_raw(void* data, std::size_t count, dtype t, int root) override {
        ++calls;
        timed([&] { typed(t, data, count, [&](auto span) { inner_.broadcast(span, root); }); });
    }

private:
    template <class F>
    void timed(F&& f) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    template <class F>
    static void typed(dtype t, void* p, std::size_t n, F&& f) {
        if (t == dtype::f32) f(std::span<float>(static_cast<float*>(p), n));
        else if (t == dtype::f64) f(std::span<double>(static_cast<double*>(p), n));
        else f(std::span<std::int64_t>(static_cast<std::int64_t*>(p), n));
    }
    micle::dist::communicator& inner_;
};

micle::dist::communicator* world = nullptr;

void BM_dist_step(benchmark::State& state, int depth, micle::models::stem_kind stem, std::int64_t res, std::int64_t pairs,
                  bool global_bn) {
    timed_communicator comm(*world);
    const int ranks = comm.size();
    const auto mine = micle::dist::slice_of(pairs, comm.rank(), ranks);
    micle::context<B> ctx;
    learner l(ctx, micle::bench::simclr_step_config<B>(depth, stem));
    micle::dist::options opt;
    opt.global_batch_norm = global_bn;
    l.distribute(comm, opt);
    // This rank's pairs of the global batch: its first views, then its second views.
    const std::int64_t per = 3 * res * res, n = mine.count();
    const auto global = micle::bench::simclr_step_views(pairs, res);
    std::vector<float> local;
    for (std::int64_t half = 0; half < 2; ++half)
        local.insert(local.end(), global.begin() + (half * pairs + mine.begin) * per,
                     global.begin() + (half * pairs + mine.end) * per);
    const auto views = micle::tensor<B>::from_host(ctx, {2 * n, 3, res, res}, local);
    l.step(views, 0.01f);  // first step builds primitives and buffers
    comm.reset();
    std::size_t overlapped = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (auto _ : state) {
        benchmark::DoNotOptimize(l.step(views, 0.01f));
        if (const auto* g = l.gradient_sync()) overlapped += g->started_during_backward();
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double steps = double(state.iterations());
    state.counters["ranks"] = ranks;
    state.counters["img/s"] = steps * double(2 * pairs) / secs;
    state.counters["comm_frac"] = comm.seconds / secs;
    state.counters["allreduce_MB"] = comm.allreduce_bytes / steps / 1e6;
    state.counters["gather_MB"] = comm.gather_bytes / steps / 1e6;
    state.counters["bn_KB"] = comm.small_bytes / steps / 1e3;
    state.counters["collectives"] = double(comm.calls) / steps;
    state.counters["overlapped"] = double(overlapped) / steps;
    state.counters["buckets"] = l.gradient_sync() ? double(l.gradient_sync()->buckets()) : 0.0;
    state.counters["as_laid_out"] = l.gradient_sync() ? double(l.gradient_sync()->buckets_as_laid_out()) : 0.0;
}

using micle::models::stem_kind;
// bench_step's first two configurations, with global batch norm (the paper's setting) and
// with each rank normalising its own slice.
BENCHMARK_CAPTURE(BM_dist_step, resnet18_imagenet/64/64x2/global_bn, 18, stem_kind::imagenet, 64, 64, true)
    ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(12);
BENCHMARK_CAPTURE(BM_dist_step, resnet18_imagenet/64/64x2/local_bn, 18, stem_kind::imagenet, 64, 64, false)
    ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(12);
BENCHMARK_CAPTURE(BM_dist_step, resnet50_imagenet/64/32x2/global_bn, 50, stem_kind::imagenet, 64, 32, true)
    ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(8);
BENCHMARK_CAPTURE(BM_dist_step, resnet50_imagenet/64/32x2/local_bn, 50, stem_kind::imagenet, 64, 32, false)
    ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(8);

/// Ranks other than 0 run every benchmark (their collectives are needed) and print nothing.
class silent_reporter : public benchmark::BenchmarkReporter {
public:
    bool ReportContext(const Context&) override { return true; }
    void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace

int main(int argc, char** argv) {
    micle::dist::mpi_session session(argc, argv);
    micle::dist::mpi_communicator mpi;
    world = &mpi;
    benchmark::Initialize(&argc, argv);
    if (mpi.rank() == 0) {
        benchmark::RunSpecifiedBenchmarks();
    } else {
        silent_reporter quiet;
        benchmark::RunSpecifiedBenchmarks(&quiet);
    }
    benchmark::Shutdown();
    return 0;
}
