#pragma once
// Fashion-MNIST (and MNIST) in the IDX layout, as Debian's dataset-fashion-mnist installs
// it in /usr/share/datasets/fashion-mnist: {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz.
#include <filesystem>
#include <string>

#include "micle/data/dataset.hpp"
#include "micle/data/idx.hpp"
#include "micle/data/limits.hpp"

namespace micle::data {

inline constexpr const char* fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";

/// `split` is "train" or "test". Each image is its own patient (see simulate_bags).
inline dataset read_idx_dataset(const std::filesystem::path& dir, const std::string& split, const decode_limits& limits = {}) {
    check<value_error>(split == "train" || split == "test", "idx dataset: split must be train or test, got '", split, "'");
    const std::string prefix = split == "train" ? "train" : "t10k";
    auto find = [&](const std::string& stem) {
        for (const char* ext : {".gz", ""}) {
            const auto p = dir / (prefix + stem + ext);
            if (std::filesystem::exists(p)) return p;
        }
        throw data_error(micle::detail::cat("idx dataset ", dir, ": neither ", prefix + stem, ".gz nor ", prefix + stem,
                                            " exists"));
    };
    const auto images_path = find("-images-idx3-ubyte"), labels_path = find("-labels-idx1-ubyte");
    auto images = read_idx(images_path, limits);
    const auto labels = read_idx(labels_path);
    check<data_error>(images.dims.size() == 3, "idx file ", images_path, ": images must have 3 dimensions, got ",
                      images.dims.size());
    check<data_error>(labels.dims.size() == 1 && labels.dims[0] == images.dims[0], "idx file ", labels_path, ": ",
                      labels.dims.empty() ? 0 : labels.dims[0], " labels for ", images.dims[0], " images");
    dataset d;
    d.per_record_patients = true;
    d.source = dir.string();
    d.num_classes = 10;
    d.class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
    const auto n = images.dims[0];
    for (std::int64_t i = 0; i < n; ++i) {
        const int label = labels.data[std::size_t(i)];
        check<data_error>(label < 10, "idx file ", labels_path, ": record ", i, " has label ", label, " (expected 0-9)");
        d.labels.push_back(label);
        d.patients.push_back(i);
        d.names.push_back(prefix + " record " + std::to_string(i));
    }
    d.decode = uint8_decoder(std::make_shared<const std::vector<std::uint8_t>>(std::move(images.data)), images.dims[1],
                             images.dims[2], 1);
    d.validate();
    return d;
}

}  // namespace micle::data
