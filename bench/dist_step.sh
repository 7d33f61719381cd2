#!/usr/bin/env bash
# The data-parallel pretraining step on this machine's cores, split two ways with the same
# global batch: 1 rank x all threads, then R ranks x 1 thread (R = the core count, at
# least 2), one command after the other. Prints Google Benchmark's table for each.
#
#   bench/dist_step.sh [BUILD_DIR]     (default: build; needs build/bench/bench_dist)
set -euo pipefail
build=${1:-build}
bin=$build/bench/bench_dist
[ -x "$bin" ] || { echo "dist_step.sh: $bin not found (configure with MPI: apt install libopenmpi-dev)" >&2; exit 1; }
cores=$(nproc)
ranks=$(( cores < 2 ? 2 : cores ))
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Both under mpiexec with --bind-to none: a process started alone becomes an MPI singleton,
# which Open MPI binds to one core (2 threads on 1 core measured 3x slower).
echo "== 1 rank x $cores threads"
OMP_NUM_THREADS=$cores mpiexec -np 1 --bind-to none -x OMP_NUM_THREADS "$bin" --benchmark_counters_tabular=true
echo "== $ranks ranks x 1 thread"
OMP_NUM_THREADS=1 mpiexec -np "$ranks" --oversubscribe --bind-to none -x OMP_NUM_THREADS \
  "$bin" --benchmark_counters_tabular=true
