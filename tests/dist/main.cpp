// The doctest main of the data-parallel tests: MPI is initialised around the run, and
// every rank runs every case (mpirun fails the job when any rank fails).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "micle/dist/mpi.hpp"

int main(int argc, char** argv) {
    micle::dist::mpi_session mpi(argc, argv);
    doctest::Context run(argc, argv);
    return run.run();
}
