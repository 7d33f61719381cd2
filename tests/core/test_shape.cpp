#include "testing.hpp"

using micle::shape;

TEST_CASE("shape: dims, numel, printing and equality") {
    const shape s{2, 3, 7, 5};
    CHECK(s.rank() == 4);
    CHECK(s.numel() == 210);
    CHECK(s.str() == "[2, 3, 7, 5]");
    CHECK(s == shape{2, 3, 7, 5});
    CHECK_FALSE(s == shape{2, 3, 5, 7});
    CHECK(shape{4, 0}.has_zero());
    CHECK(shape{}.numel() == 1);
}

TEST_CASE("shape: bad dimensions are rejected with the offending value") {
    CHECK_THROWS_WITH_AS(shape({2, -1}), doctest::Contains("negative dimension -1"), micle::shape_error);
    CHECK_THROWS_WITH_AS(shape({1, 1, 1, 1, 1, 1, 1}), doctest::Contains("rank 7"), micle::shape_error);
}

TEST_CASE("ops::checks: conv2d output shape and messages") {
    const micle::ops::conv2d_params p{3, 3, 2, 2, 1, 1};
    CHECK(micle::ops::checks::conv2d(p, shape{2, 3, 7, 7}, shape{8, 3, 3, 3}, nullptr) == shape{2, 8, 4, 4});
    CHECK_THROWS_WITH_AS(micle::ops::checks::conv2d(p, shape{2, 4, 7, 7}, shape{8, 3, 3, 3}, nullptr),
                         doctest::Contains("input [2, 4, 7, 7] has 4 channels but weight [8, 3, 3, 3] expects 3"),
                         micle::shape_error);
    CHECK_THROWS_WITH_AS(micle::ops::checks::conv2d(p, shape{0, 3, 7, 7}, shape{8, 3, 3, 3}, nullptr),
                         doctest::Contains("zero-sized dimension"), micle::shape_error);
}
