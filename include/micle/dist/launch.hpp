#pragma once
// The ranks this process belongs to, from how it was started: under mpirun/mpiexec or
// srun with several ranks, MPI (initialised here, finalised at the end); started alone,
// one process and no MPI at all. A program that trains data-parallel when launched so:
//
//   micle::dist::launch ranks(argc, argv);
//   learner.distribute(ranks.comm());   // or recipe.comm = &ranks.comm()
//
// A build without MPI (no micle::mpi target) refuses to run as one of several ranks
// rather than train R unrelated copies.
#include <optional>

#include "micle/dist/communicator.hpp"
#if defined(MICLE_HAS_MPI) && MICLE_HAS_MPI
#include "micle/dist/mpi.hpp"
#endif

namespace micle::dist {

class launch {
public:
    launch(int& argc, char**& argv) {
        if (!launched_with_ranks()) return;
#if defined(MICLE_HAS_MPI) && MICLE_HAS_MPI
        session_.emplace(argc, argv);
        mpi_.emplace();
#else
        (void)argc;
        (void)argv;
        throw comm_error("started as one of several ranks, but this program was built without MPI "
                         "(apt install libopenmpi-dev, then rebuild with the micle::mpi target)");
#endif
    }
    launch(const launch&) = delete;
    launch& operator=(const launch&) = delete;

    communicator& comm() {
#if defined(MICLE_HAS_MPI) && MICLE_HAS_MPI
        if (mpi_) return *mpi_;
#endif
        return self();
    }
    /// For a rank that cannot go on: ends every rank of the job with `code` when others
    /// may be waiting for this one in a collective; otherwise returns `code`.
    int fail(int code) {
#if defined(MICLE_HAS_MPI) && MICLE_HAS_MPI
        if (mpi_ && mpi_->size() > 1) mpi_->abort(code);
#endif
        return code;
    }

private:
#if defined(MICLE_HAS_MPI) && MICLE_HAS_MPI
    std::optional<mpi_session> session_;
    std::optional<mpi_communicator> mpi_;
#endif
};

}  // namespace micle::dist
