#pragma once
// The MPI communicator (Open MPI; CMake target micle::mpi, which defines MICLE_HAS_MPI):
// data-parallel ranks across processes and machines, launched by mpirun or Slurm's srun.
//
//   micle::dist::mpi_session mpi(argc, argv);     // MPI_Init_thread ... MPI_Finalize
//   micle::dist::mpi_communicator comm;           // MPI_COMM_WORLD
//   learner.distribute(comm);                     // and fit runs data-parallel
//
// Errors come back as dist::comm_error (the communicator sets MPI_ERRORS_RETURN). A rank
// that fails while the others wait in a collective must not leave them hanging: abort()
// ends every rank of the job (mpi_session does it for an exception that escapes).
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "micle/core/communicator.hpp"

namespace micle::dist {

namespace mpi_detail {
inline void check_mpi(int rc, const char* what) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    throw comm_error(micle::detail::cat("MPI ", what, " failed: ", std::string(msg, std::size_t(len))));
}
inline MPI_Datatype type(dtype t) {
    switch (t) {
        case dtype::f32: return MPI_FLOAT;
        case dtype::f64: return MPI_DOUBLE;
        default: return MPI_INT64_T;
    }
}
/// MPI counts are int: a buffer over 2^31 - 1 elements goes in pieces.
constexpr std::size_t max_count = std::size_t(1) << 30;
}  // namespace mpi_detail

/// MPI_Init_thread on construction (unless MPI is already initialised), MPI_Finalize on
/// destruction. Threads other than the main one never call MPI (MPI_THREAD_FUNNELED).
class mpi_session {
public:
    mpi_session(int& argc, char**& argv) {
        int ready = 0;
        MPI_Initialized(&ready);
        if (ready) return;
        int provided = 0;
        mpi_detail::check_mpi(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
        owner_ = true;
    }
    mpi_session(const mpi_session&) = delete;
    mpi_session& operator=(const mpi_session&) = delete;
    ~mpi_session() {
        int done = 0;
        MPI_Finalized(&done);
        if (owner_ && !done) MPI_Finalize();
    }

private:
    bool owner_ = false;
};

class mpi_communicator final : public communicator {
public:
    explicit mpi_communicator(MPI_Comm comm = MPI_COMM_WORLD) {
        int ready = 0;
        MPI_Initialized(&ready);
        check<comm_error>(ready != 0, "mpi_communicator: MPI is not initialised (create a micle::dist::mpi_session first)");
        mpi_detail::check_mpi(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
        MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
        MPI_Comm_rank(comm_, &rank_);
        MPI_Comm_size(comm_, &size_);
        char name[MPI_MAX_PROCESSOR_NAME];
        int len = 0;
        MPI_Get_processor_name(name, &len);
        const auto hosts = gather_names(std::string(name, std::size_t(len)));  // collective: here, where every rank is
        description_ = micle::detail::cat("MPI, rank ", rank_, " of ", size_, " on ", hosts, hosts == 1 ? " host" : " hosts");
    }
    mpi_communicator(const mpi_communicator&) = delete;
    mpi_communicator& operator=(const mpi_communicator&) = delete;
    ~mpi_communicator() override {
        int done = 0;
        MPI_Finalized(&done);
        if (!done) MPI_Comm_free(&comm_);
    }

    int rank() const override { return rank_; }
    int size() const override { return size_; }
    std::string description() const override { return description_; }
    void barrier() override { mpi_detail::check_mpi(MPI_Barrier(comm_), "MPI_Barrier"); }
    MPI_Comm handle() const noexcept { return comm_; }

    /// Ends every rank of the job with `code` (MPI_Abort): for a rank that cannot go on
    /// while the others may be waiting for it in a collective.
    [[noreturn]] void abort(int code) const {
        MPI_Abort(comm_, code);
        std::_Exit(code);
    }

    void start_all_reduce_sum(std::span<float> data) override {
        for (std::size_t done = 0; done < data.size();) {
            const std::size_t n = std::min(mpi_detail::max_count, data.size() - done);
            MPI_Request r = MPI_REQUEST_NULL;
            mpi_detail::check_mpi(MPI_Iallreduce(MPI_IN_PLACE, data.data() + done, int(n), MPI_FLOAT, MPI_SUM, comm_, &r),
                                  "MPI_Iallreduce");
            started_.push_back(r);
            done += n;
        }
    }
    void progress() override {
        if (started_.empty()) return;
        int flag = 0;
        mpi_detail::check_mpi(MPI_Testall(int(started_.size()), started_.data(), &flag, MPI_STATUSES_IGNORE), "MPI_Testall");
        if (flag) started_.clear();
    }
    void finish_started() override {
        if (started_.empty()) return;
        const int rc = MPI_Waitall(int(started_.size()), started_.data(), MPI_STATUSES_IGNORE);
        started_.clear();
        mpi_detail::check_mpi(rc, "MPI_Waitall");
    }

protected:
    void all_reduce_sum_raw(void* data, std::size_t count, dtype t) override {
        auto* p = static_cast<char*>(data);
        for (std::size_t done = 0; done < count;) {
            const std::size_t n = std::min(mpi_detail::max_count, count - done);
            mpi_detail::check_mpi(MPI_Allreduce(MPI_IN_PLACE, p + done * size_of(t), int(n), mpi_detail::type(t), MPI_SUM, comm_),
                                  "MPI_Allreduce");
            done += n;
        }
    }
    void all_gather_raw(const void* in, void* out, std::size_t count, dtype t) override {
        check<comm_error>(count <= mpi_detail::max_count, "all_gather: ", count, " values a rank is over MPI's limit");
        mpi_detail::check_mpi(MPI_Allgather(in, int(count), mpi_detail::type(t), out, int(count), mpi_detail::type(t), comm_),
                              "MPI_Allgather");
    }
    void reduce_scatter_sum_raw(const void* in, void* out, std::size_t count, dtype t) override {
        check<comm_error>(count <= mpi_detail::max_count, "reduce_scatter: ", count, " values a rank is over MPI's limit");
        mpi_detail::check_mpi(MPI_Reduce_scatter_block(in, out, int(count), mpi_detail::type(t), MPI_SUM, comm_),
                              "MPI_Reduce_scatter_block");
    }
    void broadcast_raw(void* data, std::size_t count, dtype t, int root) override {
        auto* p = static_cast<char*>(data);
        for (std::size_t done = 0; done < count;) {
            const std::size_t n = std::min(mpi_detail::max_count, count - done);
            mpi_detail::check_mpi(MPI_Bcast(p + done * size_of(t), int(n), mpi_detail::type(t), root, comm_), "MPI_Bcast");
            done += n;
        }
    }

private:
    std::size_t gather_names(const std::string& mine) const {
        std::vector<char> all(std::size_t(MPI_MAX_PROCESSOR_NAME) * std::size_t(size_), '\0');
        std::vector<char> buf(MPI_MAX_PROCESSOR_NAME, '\0');
        std::copy(mine.begin(), mine.end(), buf.begin());
        mpi_detail::check_mpi(MPI_Allgather(buf.data(), MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all.data(), MPI_MAX_PROCESSOR_NAME,
                                            MPI_CHAR, comm_),
                              "MPI_Allgather");
        std::set<std::string> names;
        for (int r = 0; r < size_; ++r) names.insert(std::string(all.data() + std::size_t(r) * MPI_MAX_PROCESSOR_NAME));
        return names.size();
    }

    MPI_Comm comm_ = MPI_COMM_NULL;
    std::vector<MPI_Request> started_;
    int rank_ = 0, size_ = 1;
    std::string description_;
};

}  // namespace micle::dist
