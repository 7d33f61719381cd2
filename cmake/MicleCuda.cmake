# Finding the CUDA toolkit and cuDNN for the GPU backend (micle::cudnn).
#
# micle_detect_cuda(<out>) sets <out> to ON when nvcc and cuDNN 9 are present (by default
# under /usr/local/cuda; CUDAToolkit_ROOT or CMAKE_CUDA_COMPILER point elsewhere), which
# is MICLE_WITH_CUDA's default. The language itself is enabled by the top-level
# CMakeLists.txt (enable_language must run in file scope); micle_find_cudnn() then finds
# the toolkit targets and cuDNN.

function(micle_detect_cuda out)
  set(found OFF)
  set(hints ${CUDAToolkit_ROOT} $ENV{CUDA_HOME} /usr/local/cuda)
  if(CMAKE_CUDA_COMPILER)
    set(nvcc ${CMAKE_CUDA_COMPILER})
  else()
    find_program(nvcc NAMES nvcc HINTS ${hints} PATH_SUFFIXES bin)
  endif()
  if(nvcc)
    get_filename_component(root "${nvcc}" DIRECTORY)
    get_filename_component(root "${root}" DIRECTORY)
    find_path(cudnn_header cudnn.h HINTS ${root}/include ${hints} PATH_SUFFIXES include NO_CACHE)
    if(cudnn_header)
      set(found ON)
    endif()
  endif()
  set(${out} ${found} PARENT_SCOPE)
endfunction()

# After enable_language(CUDA): CUDA::cudart, CUDA::cublas, CUDA::cublasLt and cuDNN 9.
macro(micle_find_cudnn)
  find_package(CUDAToolkit REQUIRED)
  find_path(MICLE_CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_LIBRARY_ROOT}/include)
  find_library(MICLE_CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}/lib64)
  if(NOT MICLE_CUDNN_INCLUDE_DIR OR NOT MICLE_CUDNN_LIBRARY)
    message(FATAL_ERROR "MICLE_WITH_CUDA: cuDNN not found next to the CUDA toolkit at ${CUDAToolkit_LIBRARY_ROOT} "
                        "(cudnn.h: ${MICLE_CUDNN_INCLUDE_DIR}, libcudnn: ${MICLE_CUDNN_LIBRARY})")
  endif()
  file(STRINGS ${MICLE_CUDNN_INCLUDE_DIR}/cudnn_version.h micle_cudnn_major REGEX "^#define CUDNN_MAJOR [0-9]+")
  string(REGEX REPLACE ".* ([0-9]+)$" "\\1" micle_cudnn_major "${micle_cudnn_major}")
  if(NOT micle_cudnn_major EQUAL 9)
    message(FATAL_ERROR "MICLE_WITH_CUDA: micle's GPU backend needs cuDNN 9, found major version '${micle_cudnn_major}'")
  endif()
  message(STATUS "micle: GPU backend with CUDA ${CUDAToolkit_VERSION}, cuDNN ${micle_cudnn_major} "
                 "(${MICLE_CUDNN_LIBRARY}), architectures ${CMAKE_CUDA_ARCHITECTURES}")
endmacro()
