#pragma once
// A header that breaks the layer order (nn may not include dist): the fixture the
// include_layers_catch_a_break test runs check_layers.py on, which must fail.
#include "micle/dist/data_parallel.hpp"
