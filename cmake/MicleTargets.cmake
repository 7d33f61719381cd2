# Build settings for the executables we own (tests, benchmarks, examples): warnings are
# errors (for C++ and for CUDA, host and device side), and MICLE_SANITIZE turns on ASan +
# UBSan.
function(micle_own_target target)
  set(host_warnings -Wall -Wextra -Werror)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    # g++ 12 at -O3 reports impossible std::string copies (-Wrestrict, GCC bug 105329)
    # for ordinary string code; g++ 13 fixed it.
    list(APPEND host_warnings -Wno-restrict)
  endif()
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${host_warnings}>)
  if(CMAKE_CUDA_COMPILER)
    list(JOIN host_warnings "," host_list)
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings -Xcompiler=${host_list}>)
  endif()
  if(MICLE_SANITIZE)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address,undefined
                                             -fno-sanitize-recover=undefined -fno-omit-frame-pointer>)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()

# For targets whose sources use micle::default_backend: when that is the GPU backend
# (-DMICLE_DEFAULT_BACKEND=cudnn), the sources are compiled as CUDA and the target links
# micle::cudnn. Call it in the directory that defines the target.
function(micle_uses_default_backend target)
  if(MICLE_DEFAULT_BACKEND STREQUAL "cudnn")
    get_target_property(sources ${target} SOURCES)
    set_source_files_properties(${sources} PROPERTIES LANGUAGE CUDA)
    target_link_libraries(${target} PRIVATE micle::cudnn)
  endif()
endfunction()
