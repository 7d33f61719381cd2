// The decode-once pipeline at the sizes real scans have: views from a reduced (DCT-scaled)
// and cropped JPEG decode against the full decode, partial PNG reads against whole ones,
// one decode per SimCLR pair and per MICLe image, and batches that do not depend on the
// number of workers. Fixtures are real files written with libpng and libjpeg.
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "data/writers.hpp"
#include "micle/contrastive/pairs.hpp"
#include "micle/data/csv.hpp"
#include "micle/data/labeled.hpp"
#include "micle/data/loader.hpp"
#include "testing.hpp"

using namespace micle;
using testing::narrow;
using testing::scan;
using namespace micle::data;
namespace fs = std::filesystem;

namespace {
struct scratch : testing::scratch {
    scratch() : testing::scratch("views") {}
};


std::vector<std::uint8_t> bytes_of(const fs::path& p) { return read_file(p); }

/// The largest |a - b| and the mean |a - b| over two views.
std::pair<double, double> difference(const image& a, const image& b) {
    REQUIRE(a.pixels.size() == b.pixels.size());
    double mx = 0, sum = 0;
    for (std::size_t i = 0; i < a.pixels.size(); ++i) {
        const double d = std::abs(double(a.pixels[i]) - double(b.pixels[i]));
        mx = std::max(mx, d);
        sum += d;
    }
    return {mx, sum / double(a.pixels.size())};
}
}  // namespace

TEST_CASE("JPEG: a view from the DCT-scaled, cropped decode matches the view from the full decode with the same crop") {
    scratch s;
    const int w = 1600, h = 1200;
    testing::write_jpeg(s.dir / "g.jpg", w, h, 1, narrow(scan(w, h, 1, 255, 1)), 95);
    testing::write_jpeg(s.dir / "c.jpg", w, h, 3, narrow(scan(w, h, 3, 255, 2)), 95);
    for (const char* name : {"g.jpg", "c.jpg"}) {
        CAPTURE(name);
        const auto file = bytes_of(s.dir / name);
        const std::int64_t channels = name[0] == 'g' ? 1 : 3;
        const source_image full = decode_jpeg_source(file.data(), file.size(), name);
        CHECK(full.sample_bytes == 1);  // 8-bit samples, never a float copy
        CHECK((full.height == h && full.width == w && full.scale_y == 1.0f && full.origin_y == 0));
        int reduced = 0, cropped = 0;
        for (auto cfg : {augment_config::chest_xray(224), augment_config::simclr(224), augment_config::chest_xray(64),
                         augment_config::eval(224)}) {
            for (std::uint64_t seed = 0; seed < 12; ++seed) {
                rng gen(seed);
                const augment_params p = sample(cfg, h, w, gen);
                const decode_request r = view_request(p, cfg, full.header());
                const source_image part =
                    decode_jpeg_source(file.data(), file.size(), name, {}, [&](const image_header&) { return r; });
                // the reduction is the largest of 1/8, 2/8, 4/8 that keeps the crop at or above the view
                const float k = part.scale_y;
                CHECK(k == part.scale_x);
                CHECK(std::min(p.height, p.width) * k >= float(cfg.size) - 8);
                if (k < 1 && k > 0.125f) CHECK(std::min(p.height, p.width) * k / 2 < float(cfg.size));  // half would not do
                CHECK(part.height < std::int64_t(std::ceil(float(h) * k)) + 1);
                reduced += k < 1;
                cropped += part.height * part.width < std::int64_t(std::ceil(float(h) * k) * std::ceil(float(w) * k));
                const image from_part = apply(part, p, cfg, 3), from_full = apply(full, p, cfg, 3);
                const auto [mx, mean] = difference(from_part, from_full);
                CAPTURE(seed);
                CAPTURE(k);
                // DCT scaling averages what bilinear sampling of the full image picks: on
                // scan-like content the views agree within 1% on average and 6% at worst
                // (measured: 0.5% and 3.8% over 1/8, 2/8 and 4/8, grey and RGB)
                CHECK(mean < 0.01);
                CHECK(mx < 0.06);
                if (channels == 1) {  // 1 channel replicated into 3 planes
                    const auto plane = std::size_t(cfg.size * cfg.size);
                    CHECK(std::equal(from_part.pixels.begin(), from_part.pixels.begin() + std::ptrdiff_t(plane),
                                     from_part.pixels.begin() + std::ptrdiff_t(2 * plane)));
                }
            }
        }
        CHECK(reduced > 20);  // most random crops of a 1600 px image reduce
        CHECK(cropped > 20);
    }
}

TEST_CASE("JPEG and PNG: a region decode holds exactly the full decode's pixels there (grey, RGB, 16-bit PNG)") {
    scratch s;
    const int w = 300, h = 240;
    testing::write_jpeg(s.dir / "g.jpg", w, h, 1, narrow(scan(w, h, 1, 255, 3)));
    testing::write_jpeg(s.dir / "c.jpg", w, h, 3, narrow(scan(w, h, 3, 255, 4)));
    testing::write_png(s.dir / "g16.png", w, h, 1, 16, scan(w, h, 1, 65535, 5));
    testing::write_png(s.dir / "c8.png", w, h, 3, 8, scan(w, h, 3, 255, 6));
    decode_request r;
    r.top = 70;
    r.bottom = 181;
    r.left = 45;
    r.right = 210;
    for (const char* name : {"g.jpg", "c.jpg", "g16.png", "c8.png"}) {
        CAPTURE(name);
        const auto file = bytes_of(s.dir / name);
        const bool jpeg = fs::path(name).extension() == ".jpg";
        auto decode = [&](const decode_plan& plan) {
            return jpeg ? decode_jpeg_source(file.data(), file.size(), name, {}, plan)
                        : decode_png_source(file.data(), file.size(), name, {}, plan);
        };
        const source_image full = decode({}), part = decode([&](const image_header& hd) {
            CHECK((hd.height == h && hd.width == w));
            return r;
        });
        CHECK(part.sample_bytes == (name == std::string("g16.png") ? 2 : 1));
        CHECK(part.scale_y == 1.0f);
        CHECK(part.origin_y == r.top);
        CHECK(part.height == r.bottom - r.top);
        CHECK(part.origin_x <= r.left);  // JPEG: widened to whole iMCUs
        CHECK(part.origin_x + part.width >= r.right);
        double worst = 0;
        for (std::int64_t y = 0; y < part.height; ++y)
            for (std::int64_t x = 0; x < part.width; ++x)
                for (std::int64_t c = 0; c < part.channels; ++c)
                    worst = std::max(worst, double(std::abs(part.value(c, y, x) - full.value(c, y + part.origin_y, x + part.origin_x))));
        // libjpeg's upsampling of subsampled chroma at a cropped edge may differ by a level
        CHECK(worst <= (name == std::string("c.jpg") ? 2.5 / 255 : 0.0));
    }
}

TEST_CASE("pairs: one decode per SimCLR pair and per MICLe image, the views a function of the stream alone") {
    scratch s;
    const int w = 640, h = 480;
    std::ofstream manifest(s.dir / "m.csv");
    manifest << "path,patient_id,label\n";
    for (int i = 0; i < 12; ++i) {
        const auto name = "i" + std::to_string(i) + (i % 2 ? ".jpg" : ".png");
        if (i % 2)
            testing::write_jpeg(s.dir / name, w, h, 1, narrow(scan(w, h, 1, 255, 10 + std::uint64_t(i))));
        else
            testing::write_png(s.dir / name, w, h, 1, 8, scan(w, h, 1, 255, 10 + std::uint64_t(i)));
        manifest << name << ",P" << (i < 4 ? i : 4 + (i - 4) / 4) << "," << i % 2 << "\n";  // 4 singles, 2 bags of 4
    }
    manifest.close();
    dataset d = read_csv_manifest(s.dir / "m.csv");
    auto decodes = std::make_shared<std::atomic<int>>(0);
    d.decode = [parent = d.decode, decodes](std::int64_t i, const decode_plan& plan) {
        ++*decodes;
        return parent(i, plan);
    };
    const auto cfg = augment_config::chest_xray(96);
    contrastive::augmented_views simclr(d, cfg, 3, 5);
    const auto batch = simclr.make_batch(0, 0, 4);
    CHECK(decodes->load() == 4);  // two views, one decode
    contrastive::multi_instance micle(d, cfg, 3, 5);
    CHECK(micle.units() == 6);
    *decodes = 0;
    const auto bags = micle.make_batch(0, 0, 6);
    CHECK(decodes->load() == 4 + 2 * 2);  // a single image once, two images of a bag once each

    // Each view equals the view drawn from its own stream alone on a full, whole decode
    // (PNG: exactly; JPEG: within the scaled decode's bound).
    const auto order_view = [&](const contrastive::view_batch& b, std::int64_t row, std::uint64_t stream) {
        const std::int64_t i = b.samples[std::size_t(row)];
        rng gen(stream);
        const source_image whole = d.load_source(i);
        const image ref = apply(whole, sample(cfg, whole.full_height, whole.full_width, gen), cfg, 3);
        image got(3, cfg.size, cfg.size);
        std::copy_n(b.pixels.begin() + row * 3 * cfg.size * cfg.size, got.pixels.size(), got.pixels.begin());
        const auto [mx, mean] = difference(got, ref);
        if (fs::path(d.names[std::size_t(i)]).extension() == ".png") {
            CHECK(mx == 0.0);
        } else {
            CHECK(mean < 0.01);
            CHECK(mx < 0.06);
        }
    };
    for (std::int64_t k = 0; k < 4; ++k)
        for (int v = 0; v < 2; ++v)
            order_view(batch, k + v * 4, derive_seed(5, {0, std::uint64_t(k), std::uint64_t(v)}));
    for (std::int64_t k = 0; k < 6; ++k)
        for (int v = 0; v < 2; ++v)
            order_view(bags, k + v * 6, derive_seed(5, {0, std::uint64_t(k), std::uint64_t(v)}));

    // The same batches from 1 and 3 loader workers, and from the labelled-image source.
    for (auto* strategy : {static_cast<const void*>(&simclr), static_cast<const void*>(&micle)}) {
        auto make = [&](std::int64_t b) {
            return strategy == &simclr ? simclr.make_batch(1, b, 2) : micle.make_batch(1, b, 2);
        };
        std::vector<std::vector<float>> one, three;
        {
            prefetch_loader<contrastive::view_batch> l(make, 3, 1);
            while (auto b = l.next()) one.push_back(b->pixels);
        }
        {
            prefetch_loader<contrastive::view_batch> l(make, 3, 3, 6);
            while (auto b = l.next()) three.push_back(b->pixels);
        }
        CHECK(one == three);
        CHECK(one.size() == 3);
    }
    labeled_images labelled(d, augment_config::finetune(64), 1, 9);
    *decodes = 0;
    const auto lb = labelled.make_batch(0, 0, 12);
    CHECK(decodes->load() == 12);
    CHECK(lb.dims == shape{12, 1, 64, 64});
}
