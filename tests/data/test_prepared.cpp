// Prepared datasets (`micle prepare`): the round trip from real PNG, JPEG and DICOM files,
// the area-averaged reduction, views from the stored copy against views from the raw
// files, splits as the source gives them, NumPy reading the file, ZIP64 past 65535
// members, memory that does not grow with the samples read, and every truncation and
// bit flip of a file either refused with a data_error or harmless.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "data/writers.hpp"
#include "micle/contrastive/pairs.hpp"
#include "micle/data/loader.hpp"
#include "micle/data/open.hpp"
#include "micle/data/prepared.hpp"
#include "micle/data/views.hpp"
#include "testing.hpp"

using namespace micle;
using testing::narrow;
using testing::scan;
using namespace micle::data;
namespace fs = std::filesystem;

namespace {
struct scratch : testing::scratch {
    scratch() : testing::scratch("prepared") {}
};


std::vector<float> pixels_of(const source_image& s) { return to_image(s).pixels; }

/// A manifest of mixed real files: 8-bit grey PNG, 16-bit PNG, RGB JPEG, 12-bit DICOM with a
/// window, with patients, class names and a split column.
fs::path mixed_manifest(const fs::path& dir, int side = 96) {
    std::ofstream m(dir / "m.csv");
    m << "path,patient_id,label,split\n";
    testing::write_png(dir / "a.png", side, side * 3 / 4, 1, 8, scan(side, side * 3 / 4, 1, 255, 1));
    testing::write_png(dir / "b.png", side * 3 / 4, side, 1, 16, scan(side * 3 / 4, side, 1, 65535, 2));
    testing::write_jpeg(dir / "c.jpg", side, side / 2, 3, narrow(scan(side, side / 2, 3, 255, 3)));
    testing::dicom_spec ds;
    ds.width = side;
    ds.height = side;
    ds.window_center = 2048;
    ds.window_width = 3000;
    testing::write_dicom(dir / "d.dcm", ds, scan(side, side, 1, 4095, 4));
    m << "a.png,P1,effusion,train\n" << "b.png,P1,normal,train\n" << "\"c.jpg\",P2,effusion,val\n" << "d.dcm,P3,normal,test\n";
    return dir / "m.csv";
}

/// An in-memory dataset of n 8-bit h x w images, image i filled from seed i.
dataset arrays(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c = 1) {
    auto px = std::make_shared<std::vector<std::uint8_t>>(std::size_t(n * h * w * c));
    rng gen(7);
    for (auto& v : *px) v = std::uint8_t(gen.below(256));
    dataset d;
    d.source = "arrays";
    d.num_classes = 3;
    d.class_names = {"a", "b", "c"};
    for (std::int64_t i = 0; i < n; ++i) {
        d.patients.push_back(i / 2);
        d.labels.push_back(int(i % 3));
        d.names.push_back("record " + std::to_string(i));
    }
    d.decode = uint8_decoder(px, h, w, c);
    return d;
}

prepare_options options(std::int64_t max_side, int workers = 2) {
    prepare_options o;
    o.max_side = max_side;
    o.workers = workers;
    return o;
}

std::int64_t rss_file_kb() {
    std::ifstream in("/proc/self/status");
    std::string key;
    while (in >> key) {
        if (key == "RssFile:") {
            std::int64_t kb = 0;
            in >> kb;
            return kb;
        }
        std::getline(in, key);
    }
    return -1;
}
}  // namespace

TEST_CASE("prepare: PNG (8 and 16 bit), RGB JPEG and a windowed DICOM round-trip with their patients, labels, splits and sources") {
    scratch s;
    const auto manifest = mixed_manifest(s.dir);
    const dataset raw = read_csv_manifest(manifest);
    prepare_options opt;
    opt.max_side = 4096;  // nothing shrunk: the stored pixels are the decoded ones
    opt.source = manifest.string();
    const auto r = prepare(raw, s.dir / "p.npz", opt);
    CHECK(r.images == 4);
    CHECK(r.shrunk == 0);
    CHECK(r.bytes == fs::file_size(s.dir / "p.npz"));
    REQUIRE(is_prepared_file(s.dir / "p.npz"));
    CHECK_FALSE(is_prepared_file(manifest));
    const dataset p = read_prepared(s.dir / "p.npz");
    REQUIRE(p.size() == raw.size());
    CHECK(p.task == raw.task);
    CHECK(p.num_classes == raw.num_classes);
    CHECK(p.class_names == raw.class_names);
    CHECK(p.patients == raw.patients);
    CHECK(p.labels == raw.labels);
    CHECK(p.splits == raw.splits);
    CHECK(p.names == raw.names);  // each sample's manifest line and path
    CHECK_FALSE(p.per_record_patients);
    for (std::int64_t i = 0; i < raw.size(); ++i) {
        const auto a = raw.load_source(i), b = p.load_source(i);
        CAPTURE(raw.names[std::size_t(i)]);
        CHECK(b.sample_bytes == a.sample_bytes);
        CHECK(b.bits == a.bits);
        CHECK(b.header().height == a.header().height);
        CHECK(b.header().width == a.header().width);
        CHECK(b.channels == a.channels);
        CHECK(b.scale_y == 1.0f);
        CHECK(pixels_of(b) == pixels_of(a));
    }
    CHECK(p.load_source(1).sample_bytes == 2);  // the 16-bit PNG and the DICOM window stay 16-bit
    CHECK(p.load_source(3).sample_bytes == 2);
    CHECK(p.load_source(2).channels == 3);

    // The splits come from the file as they came from the manifest.
    for (const std::string split : {"train", "val", "test"}) {
        const auto a = open_split(manifest.string(), split), b = open_split((s.dir / "p.npz").string(), split);
        CHECK(a.names == b.names);
        CHECK(a.labels == b.labels);
    }
    // Views drawn from the stored copy equal those from the raw PNGs (the same buffer and
    // arithmetic), and those from the JPEG within its scaled decode's bound.
    const auto cfg = augment_config::chest_xray(48);
    for (std::int64_t i = 0; i < raw.size(); ++i) {
        std::vector<float> a(3 * 48 * 48), b(a.size());
        const std::uint64_t streams[] = {11 + std::uint64_t(i)};
        float* da[] = {a.data()};
        float* db[] = {b.data()};
        make_views(raw, i, streams, cfg, 3, da);
        make_views(p, i, streams, cfg, 3, db);
        if (i == 2) {
            double mean = 0;
            for (std::size_t k = 0; k < a.size(); ++k) mean += std::abs(a[k] - b[k]);
            CHECK(mean / double(a.size()) < 0.01);
        } else {
            CHECK(a == b);
        }
    }
}

TEST_CASE("prepare: multi-label targets and a manifest without splits: the same seeded patient split as the manifest") {
    scratch s;
    std::ofstream m(s.dir / "ml.csv");
    m << "path,patient,\"atelectasis, left\",edema\n";
    for (int i = 0; i < 20; ++i) {
        const auto name = "i" + std::to_string(i) + ".png";
        testing::write_png(s.dir / name, 20, 16, 1, 8, scan(20, 16, 1, 255, 30 + std::uint64_t(i)));
        m << name << ",P" << i / 3 << "," << i % 2 << "," << (i / 2) % 2 << "\n";
    }
    m.close();
    const auto raw = read_csv_manifest(s.dir / "ml.csv");
    prepare(raw, s.dir / "ml.npz", options(64, 3));
    const auto p = read_prepared(s.dir / "ml.npz");
    CHECK(p.task == task_kind::multilabel);
    CHECK(p.class_names == raw.class_names);
    CHECK(p.targets == raw.targets);
    CHECK(p.splits.empty());
    for (const std::string split : {"train", "val", "test"}) {
        const auto a = try_open_split((s.dir / "ml.csv").string(), split);
        const auto b = try_open_split((s.dir / "ml.npz").string(), split);
        REQUIRE(a.has_value() == b.has_value());
        if (a) {
            CHECK(a->names == b->names);
            CHECK(a->patients == b->patients);
            CHECK(a->targets == b->targets);
        }
    }
}

TEST_CASE("area_resize: each output pixel is the mean of the area it covers (integer and fractional factors, 8 and 16 bit)") {
    for (const int bytes : {1, 2})
        for (const auto& dims : std::vector<std::array<std::int64_t, 4>>{{12, 12, 3, 4}, {10, 7, 3, 5}, {9, 9, 9, 2}}) {
            const std::int64_t h = dims[0], w = dims[1], oh = dims[2], ow = dims[3];  // CAPTURE: no structured binding (clang 14)
            CAPTURE(bytes);
            CAPTURE(h);
            CAPTURE(oh);
            CAPTURE(ow);
            const std::int64_t c = 3;
            rng gen(std::uint64_t(h * 100 + ow));
            std::vector<std::uint8_t> buf(std::size_t(h * w * c * bytes));
            std::vector<double> v(std::size_t(h * w * c));
            for (std::size_t k = 0; k < v.size(); ++k) {
                const auto x = std::uint16_t(gen.below(bytes == 2 ? 65536 : 256));
                v[k] = x;
                if (bytes == 2)
                    std::memcpy(buf.data() + 2 * k, &x, 2);
                else
                    buf[k] = std::uint8_t(x);
            }
            const auto in = source_image::adopt(buf, c, h, w, bytes * 8, bytes);
            const auto out = area_resize(in, oh, ow);
            REQUIRE(out.height == oh);
            REQUIRE(out.width == ow);
            CHECK(out.scale_y == doctest::Approx(double(oh) / double(h)));
            const double unit = bytes == 2 ? 65535.0 : 255.0;
            for (std::int64_t y = 0; y < oh; ++y)
                for (std::int64_t x = 0; x < ow; ++x)
                    for (std::int64_t k = 0; k < c; ++k) {
                        // brute force: coverage of every input pixel by the output's box
                        const double y0 = double(y) * double(h) / double(oh), y1 = double(y + 1) * double(h) / double(oh);
                        const double x0 = double(x) * double(w) / double(ow), x1 = double(x + 1) * double(w) / double(ow);
                        double sum = 0, area = 0;
                        for (std::int64_t i = 0; i < h; ++i)
                            for (std::int64_t j = 0; j < w; ++j) {
                                const double a = std::max(0.0, std::min(y1, double(i + 1)) - std::max(y0, double(i))) *
                                                 std::max(0.0, std::min(x1, double(j + 1)) - std::max(x0, double(j)));
                                sum += a * v[std::size_t((i * w + j) * c + k)];
                                area += a;
                            }
                        CHECK(std::abs(double(out.value(k, y, x)) * unit - sum / area) <= 0.5 + 1e-3 * unit / 255.0);
                    }
        }
    CHECK(fit_within(3000, 2500, 512) == std::pair<std::int64_t, std::int64_t>{512, 427});
    CHECK(fit_within(300, 250, 512) == std::pair<std::int64_t, std::int64_t>{300, 250});
    CHECK(fit_within(10000, 1, 100) == std::pair<std::int64_t, std::int64_t>{100, 1});
}

TEST_CASE("prepare: scans shrunk to --max-side; views in full-resolution coordinates match the raw views, whatever the workers") {
    scratch s;
    std::ofstream m(s.dir / "m.csv");
    m << "path,patient_id,label\n";
    for (int i = 0; i < 6; ++i) {
        const auto name = "s" + std::to_string(i) + (i % 2 ? ".jpg" : ".png");
        const int w = 900 + 60 * i, h = 1200;
        if (i % 2)
            testing::write_jpeg(s.dir / name, w, h, 1, narrow(scan(w, h, 1, 255, 50 + std::uint64_t(i))));
        else
            testing::write_png(s.dir / name, w, h, 1, 16, scan(w, h, 1, 65535, 50 + std::uint64_t(i)));
        m << name << ",P" << i / 2 << "," << i % 2 << "\n";
    }
    m.close();
    const auto raw = read_csv_manifest(s.dir / "m.csv");
    const auto r = prepare(raw, s.dir / "m.npz", options(400, 2));
    CHECK(r.shrunk == 6);
    const auto p = read_prepared(s.dir / "m.npz");
    for (std::int64_t i = 0; i < p.size(); ++i) {
        const auto img = p.load_source(i);
        CHECK(img.height == 400);
        CHECK(img.full_height == 1200);
        CHECK(img.width == std::lround((900.0 + 60.0 * double(i)) / 3.0));
        CHECK(img.full_width == 900 + 60 * i);
        CHECK(img.sample_bytes == (i % 2 ? 1 : 2));
    }
    // A 224-px view of a crop of a 1200-px scan, sampled from the 400-px copy: the crop and
    // every other parameter are drawn from the full-resolution header, so the view shows
    // the same anatomy; it differs from the view of the full decode only by the reduction.
    const auto cfg = augment_config::chest_xray(96);
    double worst_mean = 0;
    for (std::int64_t i = 0; i < p.size(); ++i)
        for (std::uint64_t v = 0; v < 4; ++v) {
            std::vector<float> a(96 * 96), b(a.size());
            const std::uint64_t streams[] = {derive_seed(3, {std::uint64_t(i), v})};
            float* da[] = {a.data()};
            float* db[] = {b.data()};
            make_views(raw, i, streams, cfg, 1, da);
            make_views(p, i, streams, cfg, 1, db);
            double mean = 0;
            for (std::size_t k = 0; k < a.size(); ++k) mean += std::abs(a[k] - b[k]);
            worst_mean = std::max(worst_mean, mean / double(a.size()));
        }
    MESSAGE("largest mean |raw view - prepared view|: " << worst_mean);
    CHECK(worst_mean < 0.01);

    contrastive::augmented_views views(p, cfg, 1, 5);
    auto make = [&](std::int64_t b) { return views.make_batch(0, b, 2); };
    std::vector<std::vector<float>> one, three;
    {
        prefetch_loader<contrastive::view_batch> l(make, 3, 1);
        while (auto b = l.next()) one.push_back(b->pixels);
    }
    {
        prefetch_loader<contrastive::view_batch> l(make, 3, 3, 6);
        while (auto b = l.next()) three.push_back(b->pixels);
    }
    CHECK(one.size() == 3);
    CHECK(one == three);
}

TEST_CASE("prepared file: NumPy opens it (np.load), and past 65535 members it is ZIP64 and still reads back") {
    scratch s;
    const auto d = arrays(70000, 2, 3);
    const auto r = prepare(d, s.dir / "big.npz", options(8, 2));
    CHECK(r.images == 70000);
    const auto p = read_prepared(s.dir / "big.npz");
    REQUIRE(p.size() == 70000);
    CHECK(p.labels == d.labels);
    CHECK(p.patients == d.patients);
    for (const std::int64_t i : {0, 1, 65535, 65536, 69999}) CHECK(pixels_of(p.load_source(i)) == pixels_of(d.load_source(i)));
    const std::string script = R"PY(
import io, json, sys, zipfile, csv
import numpy as np
path, n = sys.argv[1], int(sys.argv[2])
f = np.load(path)
meta = json.loads(f['micle_prepared.json'])
assert meta['format'] == 'micle-prepared' and meta['samples'] == n, meta
rows = list(csv.DictReader(io.StringIO(f['samples.csv'].decode())))
assert len(rows) == n and rows[5]['member'] == 'images/00000005.npy', rows[5]
a = f['images/00069999']
assert a.dtype == np.uint8 and a.shape == (2, 3, 1), (a.dtype, a.shape)
print(int(a.sum()), int(rows[69999]['label']), int(rows[69999]['patient']))
with zipfile.ZipFile(path) as z:
    assert z.testzip() is None
    info = z.getinfo('images/00000007.npy')
    assert (info.header_offset + 30 + len(info.filename) + len(z.open(info).read(0)) >= 0)
)PY";
    std::ofstream(s.dir / "check.py") << script;
    const std::string cmd = std::string(MICLE_TEST_PYTHON) + " " + (s.dir / "check.py").string() + " " +
                            (s.dir / "big.npz").string() + " 70000 > " + (s.dir / "out.txt").string();
    REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, "NumPy did not read the prepared file: " << cmd);
    std::ifstream out(s.dir / "out.txt");
    long long sum = -1, label = -1, patient = -1;
    out >> sum >> label >> patient;
    const auto last = d.load_source(69999);
    CHECK(sum == std::accumulate(last.data, last.data + 6, 0LL));
    CHECK(label == d.labels.back());
    CHECK(patient == d.patients.back());
}

TEST_CASE("prepared file: resident memory does not grow with the samples read (the mapping's pages are given back)") {
    scratch s;
    {
        const auto d = arrays(48, 1024, 1024);
        prepare(d, s.dir / "m.npz", options(1024, 2));
    }
    const auto p = read_prepared(s.dir / "m.npz");
    const auto cfg = augment_config::chest_xray(64);
    std::vector<float> view(64 * 64);
    float* dst[] = {view.data()};
    const auto before = rss_file_kb();
    REQUIRE(before >= 0);
    std::int64_t peak = before;
    for (std::int64_t i = 0; i < p.size(); ++i) {
        const std::uint64_t streams[] = {std::uint64_t(i)};
        make_views(p, i, streams, cfg, 1, dst);  // reads (and CRC-checks) the whole 1 MiB image
        peak = std::max(peak, rss_file_kb());
    }
    MESSAGE("file-backed resident memory: " << before << " KiB before, at most " << peak << " KiB while reading 48 MiB");
    CHECK(peak - before < 8 * 1024);
    // The measure sees mapped pages: the same file mapped and read without giving them back
    // grows it by the file's size.
    const int fd = ::open((s.dir / "m.npz").c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    const auto size = fs::file_size(s.dir / "m.npz");
    void* m = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    REQUIRE(m != MAP_FAILED);
    std::uint64_t sum = 0;
    for (std::size_t k = 0; k < size; k += 4096) sum += static_cast<const std::uint8_t*>(m)[k];
    const auto held = rss_file_kb();
    ::munmap(m, size);
    MESSAGE("the same file mapped and read whole: " << held << " KiB (byte sum " << sum << ")");
    CHECK(held - before > 40 * 1024);
}

TEST_CASE("prepared file: every truncation and every bit flip is a data_error naming the file, or changes nothing read") {
    scratch s;
    dataset d = arrays(3, 4, 5);
    d.names = {"a,1", "b \"2\"", " c"};  // quoted in samples.csv
    prepare(d, s.dir / "good.npz", options(4));
    const auto good = read_file(s.dir / "good.npz");
    const auto reference = read_prepared(s.dir / "good.npz");
    CHECK(reference.names == d.names);
    struct contents {
        std::vector<std::string> names, splits, classes;
        std::vector<std::int64_t> patients;
        std::vector<int> labels;
        std::vector<std::vector<float>> pixels;
        std::vector<std::int64_t> sizes;
        bool operator==(const contents&) const = default;
    };
    auto read_all = [&](const fs::path& p) {
        const auto q = read_prepared(p);
        contents c{q.names, q.splits, q.class_names, q.patients, q.labels, {}, {}};
        for (std::int64_t i = 0; i < q.size(); ++i) {
            const auto img = q.load_source(i);
            c.pixels.push_back(pixels_of(img));
            c.sizes.insert(c.sizes.end(), {img.full_height, img.full_width, img.height, img.width, img.channels, img.bits});
        }
        return c;
    };
    const contents want = read_all(s.dir / "good.npz");
    const auto bad = s.dir / "bad.npz";
    auto outcome = [&](const std::vector<std::uint8_t>& bytes, const std::string& what) {
        {
            std::ofstream(bad, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(bytes.data()),
                                                                         std::streamsize(bytes.size()));
        }
        try {
            const contents got = read_all(bad);
            if (got == want) return 0;
            FAIL_CHECK(what << ": read without an error, but not what was written");
            return 2;
        } catch (const data_error& e) {
            if (std::string(e.what()).find(bad.string()) == std::string::npos) FAIL_CHECK(what << ": error without the file: " << e.what());
            return 1;
        }
    };
    int refused = 0, harmless = 0;
    for (std::size_t n = 0; n < good.size(); ++n) {
        const std::vector<std::uint8_t> cut(good.begin(), good.begin() + std::ptrdiff_t(n));
        CHECK_MESSAGE(outcome(cut, "truncated to " + std::to_string(n)) == 1, "truncated to " << n << " bytes");
    }
    for (std::size_t k = 0; k < good.size(); ++k)
        for (const std::uint8_t bit : {std::uint8_t(0x01), std::uint8_t(0x80)}) {
            auto flipped = good;
            flipped[k] ^= bit;
            const int r = outcome(flipped, "bit " + std::to_string(int(bit)) + " of byte " + std::to_string(k));
            refused += r == 1;
            harmless += r == 0;
        }
    MESSAGE(good.size() << " bytes: " << refused << " bit flips refused, " << harmless
                        << " harmless (fields no reader uses: padding, timestamps, attributes, local names)");
    CHECK(refused > harmless);
    CHECK_THROWS_WITH_AS(read_prepared(s.dir / "missing.npz"), doctest::Contains("missing.npz"), data_error);
}
