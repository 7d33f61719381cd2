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
#include <cstdlib>
#include <optional>

#include "micle/core/communicator.hpp"
#if defined(MICLE_HAS_MPI) && MICLE_HAS_MPI
#include "micle/dist/mpi.hpp"
#endif

namespace micle::dist {

/// True when this process was started by mpirun/mpiexec or srun with more than one rank
/// (the environment tells; MPI need not be initialised yet).
inline bool launched_with_ranks() {
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
        if (const char* s = std::getenv(v); s && std::atoi(s) > 1) return true;
    return false;
}

/// This rank's index among the ranks on its machine (the GPU it drives): Open MPI's
/// OMPI_COMM_WORLD_LOCAL_RANK, Slurm's SLURM_LOCALID, else 0.
inline int local_rank() {
    for (const char* v : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"})
        if (const char* s = std::getenv(v)) return std::atoi(s);
    return 0;
}

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
