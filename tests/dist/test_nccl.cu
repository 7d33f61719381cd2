// The NCCL communicator at one rank (this suite runs in one process; several GPUs with
// NCCL are exercised by `mpirun -np N micle-gpu pretrain`): collectives on device memory
// and on host memory (staged), the gradient all-reduce in place on the device, and the
// bootstrap over another communicator. Without a device it skips with a message.
// At one rank an all-reduce or a broadcast in place is the identity (NCCL itself copies
// nothing then), so a no-op passes those checks; what one rank can tell apart is checked
// with outputs that must be written (all_gather, reduce_scatter into buffers filled with
// sentinels) and with the buckets' grouping. Several ranks need as many GPUs
// (`mpirun -np N micle-gpu pretrain`); no ctest runs them.
#include <cmath>
#include <numeric>

#include "micle/dist/data_parallel.hpp"
#include "micle/dist/nccl.hpp"
#include "testing.hpp"

using namespace micle;

TEST_CASE("nccl: one rank - collectives on device and host memory, gradient buckets in place") {
    if (!testing::device_ready<cudnn>()) return;
    context<cudnn> ctx;
    dist::nccl_communicator comm(dist::self(), ctx);
    CHECK(comm.rank() == 0);
    CHECK(comm.size() == 1);
    CHECK(comm.device_memory());
    CHECK(comm.description().find("NCCL") != std::string::npos);

    // host memory, staged through the device
    std::vector<float> h{1.5f, -2.0f, 3.25f};
    comm.all_reduce_sum(std::span<float>(h));
    CHECK(h == std::vector<float>{1.5f, -2.0f, 3.25f});
    std::vector<double> gathered(3, std::nan(""));  // sentinels: the gather must write every value
    const std::vector<double> mine{0.5, 1.5, -7.0};
    comm.all_gather(std::span<const double>(mine), std::span<double>(gathered));
    CHECK(gathered == mine);
    std::vector<std::int64_t> ids{4, 5}, out(2, -1);
    comm.reduce_scatter_sum(std::span<const std::int64_t>(ids), std::span<std::int64_t>(out));
    CHECK(out == ids);
    comm.broadcast(std::span<std::int64_t>(ids), 0);
    CHECK(ids == std::vector<std::int64_t>{4, 5});
    CHECK_THROWS_AS(comm.broadcast(std::span<std::int64_t>(ids), 1), value_error);
    comm.barrier();
    CHECK(comm.sum(2.5) == 2.5);

    // device memory, in place on the stream
    const auto v = testing::random_values(1000, 3);
    auto t = tensor<cudnn>::from_host(ctx, {10, 100}, v);
    comm.all_reduce_sum(std::span<float>(t.f32(), 1000));
    CHECK(t.to_host(ctx) == v);

    // the gradient all-reduce hands NCCL the gradients where they are, one group per bucket
    std::vector<nn::parameter<cudnn>> ps(5);
    std::vector<nn::parameter<cudnn>*> ptrs;
    std::vector<std::vector<float>> want;
    for (int i = 0; i < 5; ++i) {
        want.push_back(testing::random_values(300 * (i + 1), 10 + std::uint64_t(i)));
        ps[std::size_t(i)].name = "p" + std::to_string(i);
        ps[std::size_t(i)].value = tensor<cudnn>::zeros(ctx, {300 * (i + 1)});  // buckets are sized by the values
        ps[std::size_t(i)].grad = tensor<cudnn>::from_host(ctx, {300 * (i + 1)}, want.back());
        ptrs.push_back(&ps[std::size_t(i)]);
    }
    dist::gradient_buckets<cudnn> buckets(ptrs, 2000 * sizeof(float));
    buckets.all_reduce(ctx, comm);
    CHECK(buckets.values() == 300u * 15u);
    CHECK(buckets.buckets() == 2u);  // 1500 + 1200 values reach 2000, then 900 + 600 + 300
    for (int i = 0; i < 5; ++i) CHECK(ps[std::size_t(i)].grad.to_host(ctx) == want[std::size_t(i)]);
}
