#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "micle/contrastive/pairs.hpp"
#include "micle/data/acquisition.hpp"
#include "micle/data/fashion_mnist.hpp"
#include "micle/data/loader.hpp"
#include "micle/data/split.hpp"
#include "testing.hpp"

using namespace micle;
using namespace micle::data;

namespace {
/// N 16-bit images of 4x4 whose every pixel is i + 1 (so i + 1 / 65535 as floats), labels i % classes, patients given.
dataset constant_images(std::int64_t n, int classes, std::vector<std::int64_t> patients = {}) {
    dataset d;
    d.source = "synthetic";
    d.num_classes = classes;
    for (std::int64_t i = 0; i < n; ++i) {
        d.labels.push_back(int(i % classes));
        d.patients.push_back(patients.empty() ? i : patients[std::size_t(i)]);
        d.names.push_back("image " + std::to_string(i));
    }
    d.decode = [](std::int64_t i, const decode_plan&) {
        std::vector<std::uint8_t> bytes(4 * 4 * 2);
        const auto v = std::uint16_t(i + 1);
        for (std::size_t k = 0; k < 16; ++k) std::memcpy(bytes.data() + 2 * k, &v, 2);
        return source_image::adopt(std::move(bytes), 1, 4, 4, 16, 2);
    };
    d.validate();
    return d;
}
std::int64_t identify(const float* view) { return std::int64_t(std::lround(view[0] * 65535.0f)) - 1; }
}  // namespace

TEST_CASE("Fashion-MNIST from Debian's dataset-fashion-mnist") {
    if (!std::filesystem::exists(fashion_mnist_dir)) {
        FAIL("Debian's dataset-fashion-mnist is not installed at " << fashion_mnist_dir << " (scripts/setup installs it)");
        return;
    }
    const auto train = read_idx_dataset(fashion_mnist_dir, "train");
    const auto test = read_idx_dataset(fashion_mnist_dir, "test");
    CHECK(train.size() == 60000);
    CHECK(test.size() == 10000);
    CHECK(train.labels[0] == 9);  // the first training image is an ankle boot
    CHECK(test.labels[0] == 9);
    std::vector<int> per_class(10);
    for (int l : train.labels) ++per_class[std::size_t(l)];
    CHECK(per_class == std::vector<int>(10, 6000));
    const image img = train.load(0);
    CHECK(img.channels == 1);
    CHECK(img.height == 28);
    CHECK(img.width == 28);
    float mx = 0;
    for (float v : img.pixels) mx = std::max(mx, v);
    CHECK(mx == 1.0f);  // 8-bit 255 maps to 1
    CHECK_THROWS_WITH_AS(read_idx_dataset("/nonexistent", "train"), doctest::Contains("neither train-images-idx3-ubyte.gz"),
                         data_error);
    // The pixel limit is checked from the header, before 10000 images are read.
    CHECK_THROWS_WITH_AS(read_idx_dataset(fashion_mnist_dir, "test", {.max_pixels = 783}),
                         doctest::Contains("t10k-images-idx3-ubyte.gz: image is 28 x 28 = 784 pixels, over the limit of 783"),
                         data_error);
}

TEST_CASE("IDX: corrupt and truncated files name the file") {
    const auto dir = std::filesystem::temp_directory_path() / ("micle-idx-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    {
        std::ofstream(dir / "bad-magic") << "abcdefgh";
        const unsigned char hdr[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2, 3};
        std::ofstream(dir / "short", std::ios::binary).write(reinterpret_cast<const char*>(hdr), sizeof hdr);
    }
    CHECK_THROWS_WITH_AS(read_idx(dir / "bad-magic"), doctest::Contains("bad-magic\": bad magic"), data_error);
    CHECK_THROWS_WITH_AS(read_idx(dir / "short"), doctest::Contains("unexpected end of file while reading the data (3 of 1568"),
                         data_error);
    std::filesystem::remove_all(dir);
}

TEST_CASE("simulated bags: same-class groups of 1-4 images, seeded, labelled as simulation") {
    auto d = constant_images(1000, 5);
    simulate_bags(d, 7);
    CHECK(d.simulated_patients);
    std::map<std::int64_t, std::vector<std::int64_t>> bags;
    for (std::int64_t i = 0; i < d.size(); ++i) bags[d.patients[std::size_t(i)]].push_back(i);
    std::set<std::size_t> sizes;
    for (const auto& [p, members] : bags) {
        sizes.insert(members.size());
        for (auto i : members) CHECK(d.labels[std::size_t(i)] == d.labels[std::size_t(members[0])]);
    }
    CHECK(*sizes.begin() >= 1);
    CHECK(*sizes.rbegin() <= 4);
    CHECK(sizes.size() == 4);
    auto again = constant_images(1000, 5);
    simulate_bags(again, 7);
    CHECK(again.patients == d.patients);
}

namespace {
/// N 16-bit 24x24 images, each its own smooth pattern (frequencies and phases drawn from
/// its index), labels i % classes.
dataset textured_images(std::int64_t n, int classes) {
    dataset d;
    d.source = "textured";
    d.num_classes = classes;
    for (std::int64_t i = 0; i < n; ++i) {
        d.labels.push_back(int(i % classes));
        d.patients.push_back(i);
        d.names.push_back("image " + std::to_string(i));
    }
    d.decode = [](std::int64_t i, const decode_plan&) {
        rng g(std::uint64_t(i) + 100);
        const float fy = g.uniform(0.2f, 0.6f), fx = g.uniform(0.2f, 0.6f), py = g.uniform(0, 6), px = g.uniform(0, 6);
        std::vector<std::uint8_t> bytes(24 * 24 * 2);
        for (int y = 0; y < 24; ++y)
            for (int x = 0; x < 24; ++x) {
                const float v = 0.5f + 0.3f * std::sin(fx * float(x) + px) * std::cos(fy * float(y) + py);
                const auto q = std::uint16_t(std::lround(v * 65535.0f));
                std::memcpy(bytes.data() + 2 * (y * 24 + x), &q, 2);
            }
        return source_image::adopt(std::move(bytes), 1, 24, 24, 16, 2);
    };
    return d;
}
double correlation(const image& a, const image& b) {
    double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
    const auto n = double(a.pixels.size());
    for (std::size_t i = 0; i < a.pixels.size(); ++i) ma += a.pixels[i], mb += b.pixels[i];
    ma /= n, mb /= n;
    for (std::size_t i = 0; i < a.pixels.size(); ++i)
        sab += (a.pixels[i] - ma) * (b.pixels[i] - mb), saa += (a.pixels[i] - ma) * (a.pixels[i] - ma), sbb += (b.pixels[i] - mb) * (b.pixels[i] - mb);
    return sab / std::sqrt(saa * sbb);
}
}  // namespace

TEST_CASE("simulated acquisitions: one bag per source image of 2-4 distinct acquisitions of it; no label read") {
    const auto d = textured_images(120, 5);
    const auto a = simulate_acquisitions(d, 7);
    CHECK(a.simulated_patients);
    std::map<std::int64_t, std::vector<std::int64_t>> bags;
    for (std::int64_t j = 0; j < a.size(); ++j) bags[a.patients[std::size_t(j)]].push_back(j);
    CHECK(bags.size() == 120);  // a bag per image, not per class
    std::set<std::size_t> sizes;
    for (const auto& [source, members] : bags) {
        sizes.insert(members.size());
        CHECK(members.size() >= 2);
        CHECK(members.size() <= 4);
        for (std::size_t k = 0; k < members.size(); ++k) {
            CHECK(a.labels[std::size_t(members[k])] == d.labels[std::size_t(source)]);  // carried, not used
        }
    }
    CHECK(sizes.size() == 3);
    // Every instance is its source image under its own acquisition: bitwise what acquire()
    // makes of the source with the seeded draw.
    for (std::int64_t source : {0, 17, 119}) {
        const auto& members = bags[source];
        const image original = to_image(d.load_source(source));
        std::vector<image> views;
        for (std::size_t k = 0; k < members.size(); ++k) {
            const auto got = a.load_source(members[k]);
            const auto want = acquire(d.load_source(source), draw_acquisition(acquisition_seed(7, source, int(k))));
            REQUIRE(got.sample_bytes == 2);
            CHECK(std::memcmp(got.data, want.data, std::size_t(got.row_bytes() * got.height)) == 0);
            views.push_back(to_image(got));
            CHECK(correlation(views.back(), original) > 0.6);  // the same anatomy
        }
        double diff = 0;
        for (std::size_t i = 0; i < views[0].pixels.size(); ++i) diff = std::max(diff, double(std::fabs(views[0].pixels[i] - views[1].pixels[i])));
        CHECK(diff > 0.02);  // two acquisitions, not one image twice
        const image other = to_image(d.load_source(source == 0 ? 1 : 0));
        CHECK(std::fabs(correlation(views[0], other)) < correlation(views[0], original));
    }
    // The bags do not depend on the labels: relabelled (every image class 0, or shuffled),
    // the same seed gives the same bags and pixels.
    auto relabelled = d;
    for (auto& l : relabelled.labels) l = 0;
    const auto b = simulate_acquisitions(relabelled, 7);
    CHECK(b.patients == a.patients);
    CHECK(std::memcmp(b.load_source(5).data, a.load_source(5).data, 24 * 24 * 2) == 0);
    const auto c = simulate_acquisitions(d, 8);
    CHECK(std::memcmp(c.load_source(0).data, a.load_source(0).data, 24 * 24 * 2) != 0);
    CHECK_THROWS_AS(simulate_acquisitions(d, 7, 1, 4), value_error);  // a bag of one has no pair
}

TEST_CASE("acquisition: the identity keeps the image; gamma, contrast and noise do what they say") {
    const auto d = textured_images(1, 1);
    const auto src = d.load_source(0);
    const auto same = acquire(src, acquisition{});
    CHECK(std::memcmp(same.data, src.data, 24 * 24 * 2) == 0);
    const image x = to_image(src);
    acquisition g;
    g.gamma = 2;
    const image xg = to_image(acquire(src, g));
    for (std::size_t i = 0; i < x.pixels.size(); i += 37) CHECK(xg.pixels[i] == doctest::Approx(x.pixels[i] * x.pixels[i]).epsilon(1e-3));
    acquisition c;
    c.contrast = 0.5f;
    const image xc = to_image(acquire(src, c));
    double mean = 0;
    for (float v : x.pixels) mean += v;
    mean /= double(x.pixels.size());
    for (std::size_t i = 0; i < x.pixels.size(); i += 37) CHECK(xc.pixels[i] == doctest::Approx(mean + 0.5 * (x.pixels[i] - mean)).epsilon(1e-3));
    acquisition n;
    n.noise_sigma = 0.05f;
    n.noise_seed = 3;
    const image xn = to_image(acquire(src, n));
    double ss = 0;
    for (std::size_t i = 0; i < x.pixels.size(); ++i) ss += double(xn.pixels[i] - x.pixels[i]) * double(xn.pixels[i] - x.pixels[i]);
    CHECK(std::sqrt(ss / double(x.pixels.size())) == doctest::Approx(0.05).epsilon(0.1));
    // the draws stay within their ranges
    for (std::uint64_t s = 0; s < 200; ++s) {
        const auto p = draw_acquisition(s);
        CHECK(((p.gamma >= 1.0f && p.gamma <= 1.6f + 1e-6f) || (p.gamma <= 1.0f && p.gamma >= 1 / 1.6f - 1e-6f)));
        CHECK((p.contrast <= 1.0f && p.contrast >= 0.5f - 1e-6f));
        CHECK((p.noise_sigma >= 0 && p.noise_sigma <= 0.06f + 1e-6f));
        CHECK(std::fabs(p.rotation_degrees) <= 5.0f);
    }
}

TEST_CASE("patient_split: no patient in two splits, stratified, and the leakage check finds planted leaks") {
    std::vector<std::int64_t> patients;
    for (std::int64_t i = 0; i < 600; ++i) patients.push_back(i / 3);  // 200 patients of 3 images
    auto d = constant_images(600, 1, patients);
    // label = patient's class: 0 for patients < 150, 1 otherwise (imbalanced strata)
    d.num_classes = 2;
    for (std::int64_t i = 0; i < 600; ++i) d.labels[std::size_t(i)] = patients[std::size_t(i)] < 150 ? 0 : 1;
    const auto s = patient_split(d, {0.6, 0.2, 0.2}, 3);
    CHECK(s.train.size() + s.val.size() + s.test.size() == 600);
    CHECK(leaked_patients(d, s.train, s.val).empty());
    CHECK(leaked_patients(d, s.train, s.test).empty());
    CHECK(leaked_patients(d, s.val, s.test).empty());
    auto count = [&](const std::vector<std::int64_t>& idx, int label) {
        return std::count_if(idx.begin(), idx.end(), [&](auto i) { return d.labels[std::size_t(i)] == label; });
    };
    CHECK(count(s.train, 0) == 90 * 3);  // 60% of the 150 class-0 patients
    CHECK(count(s.train, 1) == 30 * 3);  // 60% of the 50 class-1 patients
    CHECK(count(s.test, 1) == 10 * 3);
    std::vector<std::int64_t> leaky = s.val;
    leaky.push_back(s.train.front());
    CHECK(leaked_patients(d, s.train, leaky) == std::vector<std::int64_t>{d.patients[std::size_t(s.train.front())]});
    CHECK(patient_split(d, {0.6, 0.2, 0.2}, 3).train == s.train);
}

TEST_CASE("pairs: multi_instance uses two different images of a bag, visits every bag once per epoch") {
    std::vector<std::int64_t> patients;
    for (std::int64_t i = 0; i < 60; ++i) patients.push_back(i < 10 ? i : 10 + (i - 10) / 5);  // 10 singles, 10 bags of 5
    const auto d = constant_images(60, 3, patients);
    contrastive::multi_instance mi(d, augment_config::eval(4), 1, 11);
    CHECK(mi.units() == 20);
    for (std::int64_t epoch = 0; epoch < 3; ++epoch) {
        std::multiset<std::int64_t> seen;
        for (std::int64_t b = 0; b < 4; ++b) {
            const auto batch = mi.make_batch(epoch, b, 5);
            CHECK(batch.dims == shape{10, 1, 4, 4});
            for (std::int64_t k = 0; k < 5; ++k) {
                const auto first = identify(batch.pixels.data() + k * 16), second = identify(batch.pixels.data() + (k + 5) * 16);
                CHECK(first == batch.samples[std::size_t(k)]);
                CHECK(second == batch.samples[std::size_t(k + 5)]);
                CHECK(batch.groups[std::size_t(k)] == batch.groups[std::size_t(k + 5)]);
                CHECK(d.patients[std::size_t(first)] == batch.groups[std::size_t(k)]);
                CHECK(d.patients[std::size_t(second)] == batch.groups[std::size_t(k)]);
                const bool single = batch.groups[std::size_t(k)] < 10;
                CHECK((single ? first == second : first != second));
                seen.insert(batch.groups[std::size_t(k)]);
            }
        }
        CHECK(seen.size() == 20);
        CHECK(std::set<std::int64_t>(seen.begin(), seen.end()).size() == 20);
    }
    CHECK_THROWS_AS(mi.make_batch(0, 4, 5), value_error);
}

TEST_CASE("pairs + loader: batches depend on the seed only, not on the number of worker threads") {
    const auto d = constant_images(64, 4);
    contrastive::augmented_views views(d, augment_config::simclr(8), 3, 21);
    auto run = [&](int workers) {
        prefetch_loader<contrastive::view_batch> loader([&](std::int64_t b) { return views.make_batch(1, b, 8); }, 8,
                                                        workers, 3);
        std::vector<float> all;
        std::vector<std::int64_t> groups;
        while (auto batch = loader.next()) {
            all.insert(all.end(), batch->pixels.begin(), batch->pixels.end());
            groups.insert(groups.end(), batch->groups.begin(), batch->groups.end());
        }
        return std::pair{all, groups};
    };
    const auto one = run(1), three = run(3);
    CHECK(one.first.size() == std::size_t(64 * 2 * 3 * 8 * 8));
    CHECK(one == three);
    contrastive::augmented_views other(d, augment_config::simclr(8), 3, 22);
    CHECK(other.make_batch(1, 0, 8).pixels != views.make_batch(1, 0, 8).pixels);
}

TEST_CASE("loader: an error while making a batch reaches the consumer at that batch") {
    prefetch_loader<int> loader(
        [](std::int64_t b) {
            if (b == 2) throw data_error("record 2 is corrupt");
            return int(b);
        },
        4, 2, 2);
    CHECK(*loader.next() == 0);
    CHECK(*loader.next() == 1);
    CHECK_THROWS_WITH_AS(loader.next(), "record 2 is corrupt", data_error);
    CHECK(*loader.next() == 3);
    CHECK_FALSE(loader.next().has_value());
}

TEST_CASE("loader: wait_seconds counts the time next() blocked on a batch not yet made, and only that") {
    std::mutex mu;
    std::condition_variable cv;
    bool released = false;
    prefetch_loader<int> loader(
        [&](std::int64_t b) {
            if (b == 1) {  // batch 1 is made only once the test releases it
                std::unique_lock lock(mu);
                cv.wait(lock, [&] { return released; });
            }
            return int(b);
        },
        3, 1, 4);
    CHECK(*loader.next() == 0);
    const double before = loader.wait_seconds();
    std::thread release([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        {
            std::lock_guard lock(mu);
            released = true;
        }
        cv.notify_all();
    });
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(*loader.next() == 1);  // blocks until the release
    const double blocked = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    release.join();
    const double waited = loader.wait_seconds() - before;
    CHECK(waited > 0.0);
    CHECK(waited <= blocked);  // counted inside next(), never more than the call took
    CHECK(*loader.next() == 2);
    CHECK_FALSE(loader.next().has_value());
}

TEST_CASE("random_subset: seeded, in dataset order, the whole set when asked for more") {
    if (!std::filesystem::exists(fashion_mnist_dir)) {
        FAIL("Debian's dataset-fashion-mnist is not installed at " << fashion_mnist_dir);
        return;
    }
    const auto test = read_idx_dataset(fashion_mnist_dir, "test");
    const auto a = random_subset(test, 100, 7), b = random_subset(test, 100, 7), c = random_subset(test, 100, 8);
    CHECK(a.size() == 100);
    CHECK(a.names == b.names);
    CHECK(a.names != c.names);
    CHECK(std::is_sorted(a.names.begin(), a.names.end(), [](const std::string& x, const std::string& y) {
        return std::stoll(x.substr(x.rfind(' ') + 1)) < std::stoll(y.substr(y.rfind(' ') + 1));
    }));
    CHECK(random_subset(test, 20000, 7).size() == 10000);
}
