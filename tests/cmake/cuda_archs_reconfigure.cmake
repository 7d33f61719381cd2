# Configures micle twice in one scratch build directory: first without CUDAARCHS (as
# scripts/run does), then with CUDAARCHS=80 (as scripts/test does without a GPU), then with
# CUDAARCHS unset again. Every configure must succeed and use the architectures it was
# asked for: CMake itself reads CUDAARCHS only when a directory first enables CUDA, which
# once left the second configure with no architectures and failed CI's build.
#   cmake -DSOURCE=<micle> -DWORK=<scratch dir> -DGENERATOR=<generator> [-DCUDA_COMPILER=nvcc] -P cuda_archs_reconfigure.cmake
file(REMOVE_RECURSE "${WORK}")
set(options -S "${SOURCE}" -B "${WORK}" -G "${GENERATOR}" -DCMAKE_BUILD_TYPE=Release)
if(CUDA_COMPILER)
  list(APPEND options "-DCMAKE_CUDA_COMPILER=${CUDA_COMPILER}")
endif()

function(configure env_args expected)
  execute_process(COMMAND ${CMAKE_COMMAND} -E env ${env_args} ${CMAKE_COMMAND} ${options}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "configure with [${env_args}] failed (${rc}):\n${out}\n${err}")
  endif()
  string(REGEX MATCH "architectures ([0-9;]*)" found "${out}")
  if(NOT CMAKE_MATCH_1 STREQUAL expected)
    message(FATAL_ERROR "configure with [${env_args}]: architectures '${CMAKE_MATCH_1}', expected '${expected}'\n${out}")
  endif()
  message(STATUS "configure with [${env_args}]: architectures ${CMAKE_MATCH_1}")
endfunction()

configure("--unset=CUDAARCHS" "80;90")
configure("CUDAARCHS=80" "80")
configure("--unset=CUDAARCHS" "80;90")
file(REMOVE_RECURSE "${WORK}")
message(STATUS "cuda architectures follow CUDAARCHS on every configure: ok")
