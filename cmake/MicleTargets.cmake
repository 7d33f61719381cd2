# Build settings for the executables we own (tests, benchmarks, examples): warnings are
# errors, and MICLE_SANITIZE turns on ASan + UBSan.
function(micle_own_target target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
  if(MICLE_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-sanitize-recover=undefined
                                             -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()
