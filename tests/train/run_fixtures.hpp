#pragma once
// Fixtures of the trainer tests (test_fit.cpp, test_recipes.cpp): a temporary run
// directory and a tiny in-memory image set.
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "micle/data/dataset.hpp"
#include "micle/data/image.hpp"
#include "testing.hpp"

namespace micle::testing {

struct temp_dir {
    std::filesystem::path path;
    temp_dir() {
        static int n = 0;
        path = std::filesystem::temp_directory_path() / ("micle-fit-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
        std::filesystem::remove_all(path);
    }
    ~temp_dir() { std::filesystem::remove_all(path); }
};

/// 12 random 8x8 gray images in 3 classes, each its own patient.
inline data::dataset tiny_images(std::int64_t n = 12) {
    data::dataset d;
    d.source = "tiny";
    d.num_classes = 3;
    const auto v = testing::random_values(std::size_t(n * 64), 17, 0.0f, 255.0f);
    auto pixels = std::make_shared<std::vector<std::uint8_t>>();
    for (float x : v) pixels->push_back(std::uint8_t(x));
    for (std::int64_t i = 0; i < n; ++i) {
        d.patients.push_back(i);
        d.labels.push_back(int(i % 3));
        d.names.push_back("image " + std::to_string(i));
    }
    d.decode = data::uint8_decoder(pixels, 8, 8, 1);
    d.validate();
    return d;
}

}  // namespace micle::testing
