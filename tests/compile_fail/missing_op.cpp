// Must NOT compile: the reference backend is not included, so conv2d<reference> is the
// unspecialised template. ctest checks that the compiler names the missing op.
#include "micle/core/ops.hpp"

int main() {
    micle::ops::conv2d<micle::reference> op(micle::ops::conv2d_params{});
    (void)op;
}
