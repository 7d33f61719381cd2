# Build settings for the executables we own (tests, benchmarks, examples): warnings are
# errors, and MICLE_SANITIZE turns on ASan + UBSan.
function(micle_own_target target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    # g++ 12 at -O3 reports impossible std::string copies (-Wrestrict, GCC bug 105329)
    # for ordinary string code; g++ 13 fixed it.
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
  if(MICLE_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-sanitize-recover=undefined
                                             -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()
