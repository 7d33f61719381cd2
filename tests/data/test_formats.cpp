#include <cstdlib>
#include <filesystem>
#include <cstring>
#include <fstream>
#include <sstream>

#include <zlib.h>

#include "data/writers.hpp"
#include "micle/data/csv.hpp"
#include "micle/data/npz.hpp"
#include "testing.hpp"

using namespace micle;
using namespace micle::data;
namespace fs = std::filesystem;

namespace {
struct scratch : testing::scratch {
    scratch() : testing::scratch("formats") {}
};
void truncate_file(const fs::path& p, std::size_t keep) {
    auto bytes = read_file(p);
    bytes.resize(std::min(keep, bytes.size()));
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}
}  // namespace

TEST_CASE("PNG: 8- and 16-bit, gray and RGB, keep their values - broken files name the file") {
    scratch s;
    std::vector<std::uint16_t> g8{0, 17, 255, 128, 64, 3}, g16{0, 1, 4095, 65535, 30000, 12345};
    std::vector<std::uint16_t> rgb(3 * 6);
    for (std::size_t i = 0; i < rgb.size(); ++i) rgb[i] = std::uint16_t((i * 37) % 256);
    testing::write_png(s.dir / "g8.png", 3, 2, 1, 8, g8);
    testing::write_png(s.dir / "g16.png", 3, 2, 1, 16, g16);
    testing::write_png(s.dir / "rgb.png", 3, 2, 3, 8, rgb);
    const auto a = decode_image_file(s.dir / "g8.png");
    CHECK(a.channels == 1);
    CHECK(a.bits == 8);
    for (std::size_t i = 0; i < 6; ++i) CHECK(a.pixels[i] == doctest::Approx(g8[i] / 255.0));
    const auto b = decode_image_file(s.dir / "g16.png");
    CHECK(b.bits == 16);
    for (std::size_t i = 0; i < 6; ++i) CHECK(b.pixels[i] * 65535.0f == doctest::Approx(double(g16[i])));  // exact 16-bit
    const auto c = decode_image_file(s.dir / "rgb.png");
    CHECK(c.channels == 3);
    for (std::int64_t ch = 0; ch < 3; ++ch)
        for (std::int64_t i = 0; i < 6; ++i) CHECK(c.channel(ch)[i] == doctest::Approx(rgb[std::size_t(i * 3 + ch)] / 255.0));
    truncate_file(s.dir / "g16.png", 60);
    CHECK_THROWS_WITH_AS(decode_image_file(s.dir / "g16.png"), doctest::Contains("g16.png: corrupt PNG"), data_error);
    std::ofstream(s.dir / "fake.png") << "not a png at all";
    CHECK_THROWS_WITH_AS(decode_image_file(s.dir / "fake.png"), doctest::Contains("fake.png: not a PNG file"), data_error);
    CHECK_THROWS_WITH_AS(decode_image_file(s.dir / "missing.png"), doctest::Contains("cannot open"), data_error);
}

namespace {
std::uint32_t be32(const std::uint8_t* p) {
    return std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | std::uint32_t(p[3]);
}
void put32(std::uint8_t* p, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = std::uint8_t(v >> (24 - 8 * i));
}
/// A chunk with its length and CRC, as PNG lays it out.
std::vector<std::uint8_t> png_chunk(const char* type, const std::vector<std::uint8_t>& body) {
    std::vector<std::uint8_t> c(12 + body.size());
    put32(c.data(), std::uint32_t(body.size()));
    std::memcpy(c.data() + 4, type, 4);
    std::copy(body.begin(), body.end(), c.begin() + 8);
    put32(c.data() + 8 + body.size(), std::uint32_t(crc32(crc32(0, nullptr, 0), c.data() + 4, uInt(4 + body.size()))));
    return c;
}
std::vector<std::uint8_t> bytes_of(const source_image& im) {
    return {im.data, im.data + im.height * im.row_bytes()};
}
/// Offsets of the file's chunks, in order.
std::vector<std::size_t> png_chunks(const std::vector<std::uint8_t>& f) {
    std::vector<std::size_t> at;
    for (std::size_t p = 8; p + 12 <= f.size(); p += 12 + be32(f.data() + p)) at.push_back(p);
    return at;
}
}  // namespace

TEST_CASE("PNG: libdeflate inflating ahead of libpng changes no pixel and no outcome, and takes only sound files") {
    scratch s;
    struct shape {
        int w, h, channels, bits;
        std::size_t idat_bytes;  // 0: libpng's 8 KiB
    };
    // Images over one 65535-byte stored block (the synthesized stream has several), in one
    // IDAT chunk or in many small ones.
    const shape shapes[] = {{300, 260, 1, 8, 0}, {300, 260, 1, 8, 1 << 20}, {181, 150, 3, 16, 1000}, {97, 700, 1, 16, 4096}};
    for (const auto& sh : shapes) {
        CAPTURE(sh.w);
        CAPTURE(sh.channels);
        CAPTURE(sh.bits);
        CAPTURE(sh.idat_bytes);
        std::vector<std::uint16_t> v(std::size_t(sh.w * sh.h * sh.channels));
        micle::rng gen(std::uint64_t(sh.w * 7 + sh.bits));
        for (std::size_t i = 0; i < v.size(); ++i)  // smooth plus noise, as a scan compresses
            v[i] = std::uint16_t(std::clamp<double>((sh.bits == 16 ? 40000.0 : 150.0) * (1 + 0.3 * std::sin(double(i % 977) / 50)) +
                                                        (sh.bits == 16 ? 800.0 : 6.0) * gen.normal(),
                                                    0, sh.bits == 16 ? 65535 : 255));
        const auto path = s.dir / "img.png";
        testing::write_png(path, sh.w, sh.h, sh.channels, sh.bits, v, sh.idat_bytes);
        const auto file = read_file(path);
        decode_detail::png_inflated ahead;
        REQUIRE(decode_detail::png_inflate_ahead(file.data(), file.size(), {}, ahead));
        CHECK(ahead.rows_size == std::size_t(sh.h) * (1 + std::size_t(sh.w * sh.channels * sh.bits / 8)));
        CHECK(ahead.unfiltered == std::size_t(sh.h));
        const auto fast = decode_detail::decode_png_with(file.data(), file.size(), "img.png", {}, {}, true);
        const auto slow = decode_detail::decode_png_with(file.data(), file.size(), "img.png", {}, {}, false);
        REQUIRE(fast.height == sh.h);
        CHECK(fast.bits == sh.bits);
        CHECK(bytes_of(fast) == bytes_of(slow));
        bool written = true;  // and both are what was written
        for (std::size_t i = 0; i < v.size(); ++i)
            written = written && (sh.bits == 16 ? reinterpret_cast<const std::uint16_t*>(fast.data)[i] == v[i]
                                                : fast.data[i] == v[i]);
        CHECK(written);
        // A region's rows, read only down to its last row, are the same from both.
        const decode_plan plan = [](const image_header& h) {
            decode_request r;
            r.top = h.height / 3, r.bottom = h.height / 2, r.left = 0, r.right = h.width;
            return r;
        };
        const auto fr = decode_detail::decode_png_with(file.data(), file.size(), "img.png", {}, plan, true);
        const auto sr = decode_detail::decode_png_with(file.data(), file.size(), "img.png", {}, plan, false);
        CHECK(fr.height < fast.height);
        CHECK(fr.origin_y == sr.origin_y);
        CHECK(bytes_of(fr) == bytes_of(sr));
    }

    // Each filter alone at each pixel size (1, 2, 3, 4, 6 and 8 bytes; alpha is dropped on
    // decode), widths that are and are not a multiple of 8 bytes: the rows unfiltered here
    // are libpng's. A region's rows are unfiltered only down to its last row.
    const int filters[] = {PNG_FILTER_NONE, PNG_FILTER_SUB, PNG_FILTER_UP, PNG_FILTER_AVG, PNG_FILTER_PAETH};
    const std::pair<int, int> pixels[] = {{1, 8}, {1, 16}, {3, 8}, {2, 16}, {3, 16}, {4, 16}};
    for (const int filter : filters)
        for (const auto& pixel : pixels)  // not a structured binding: clang 14 cannot capture one (CAPTURE)
            for (const int w : {1, 8, 37}) {
                const int channels = pixel.first, bits = pixel.second;
                CAPTURE(filter);
                CAPTURE(channels);
                CAPTURE(bits);
                CAPTURE(w);
                const int h = 9;
                std::vector<std::uint16_t> v(std::size_t(w * h * channels));
                micle::rng gen(std::uint64_t(filter * 131 + channels * 17 + bits + w));
                for (auto& x : v) x = std::uint16_t(gen.uniform() * (bits == 16 ? 65535.0 : 255.0));
                const auto path = s.dir / "filtered.png";
                testing::write_png(path, w, h, channels, bits, v, 0, filter);
                const auto file = read_file(path);
                decode_detail::png_inflated ahead;
                REQUIRE(decode_detail::png_inflate_ahead(file.data(), file.size(), {}, ahead));
                const auto fast = decode_detail::decode_png_with(file.data(), file.size(), "f.png", {}, {}, true);
                const auto slow = decode_detail::decode_png_with(file.data(), file.size(), "f.png", {}, {}, false);
                CHECK(bytes_of(fast) == bytes_of(slow));
                if (channels == 1 && bits == 8) {
                    bool same = true;
                    for (std::size_t i = 0; i < v.size(); ++i) same = same && fast.data[i] == v[i];
                    CHECK(same);
                }
                decode_request upper;
                upper.top = 0, upper.bottom = 4, upper.left = 0, upper.right = w;
                decode_detail::png_inflated part;
                REQUIRE(decode_detail::png_inflate_ahead(file.data(), file.size(), {}, part, upper));
                CHECK(part.unfiltered == 4);
                const decode_plan plan = [&](const image_header&) { return upper; };
                CHECK(bytes_of(decode_detail::decode_png_with(file.data(), file.size(), "f.png", {}, plan, true)) ==
                      bytes_of(decode_detail::decode_png_with(file.data(), file.size(), "f.png", {}, plan, false)));
            }

    // A filter type above 4 (in a file whose CRCs and Adler-32 are right) is left to libpng,
    // which names it the same way whichever path was asked for.
    {
        const int w = 16, h = 6;
        std::vector<std::uint8_t> raw;
        for (int y = 0; y < h; ++y) {
            raw.push_back(std::uint8_t(y == 3 ? 5 : y % 5));
            for (int x = 0; x < w; ++x) raw.push_back(std::uint8_t(x * 13 + y));
        }
        std::vector<std::uint8_t> z(compressBound(uLong(raw.size())));
        uLongf zn = z.size();
        REQUIRE(compress2(z.data(), &zn, raw.data(), uLong(raw.size()), 6) == Z_OK);
        z.resize(zn);
        std::vector<std::uint8_t> f = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
        const auto ihdr = png_chunk("IHDR", {0, 0, 0, std::uint8_t(w), 0, 0, 0, std::uint8_t(h), 8, 0, 0, 0, 0});
        const auto data = png_chunk("IDAT", z);
        const auto end = png_chunk("IEND", {});
        for (const auto* c : {&ihdr, &data, &end}) f.insert(f.end(), c->begin(), c->end());
        decode_detail::png_inflated ahead;
        CHECK_FALSE(decode_detail::png_inflate_ahead(f.data(), f.size(), {}, ahead));
        decode_request upper;
        upper.top = 0, upper.bottom = 2, upper.left = 0, upper.right = w;
        CHECK(decode_detail::png_inflate_ahead(f.data(), f.size(), {}, ahead, upper));  // row 3 is not needed
        std::string fast_error, slow_error;
        try {
            decode_detail::decode_png_with(f.data(), f.size(), "f.png", {}, {}, true);
        } catch (const data_error& e) {
            fast_error = e.what();
        }
        try {
            decode_detail::decode_png_with(f.data(), f.size(), "f.png", {}, {}, false);
        } catch (const data_error& e) {
            slow_error = e.what();
        }
        CHECK(fast_error.find("filter") != std::string::npos);
        CHECK(fast_error == slow_error);
    }

    // Files the pre-pass leaves to libpng alone; the outcome is libpng's either way.
    std::vector<std::uint16_t> v(300 * 260);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::uint16_t((i * 7919) % 251);
    testing::write_png(s.dir / "one.png", 300, 260, 1, 8, v, 1 << 20);
    const auto good = read_file(s.dir / "one.png");
    const auto at = png_chunks(good);
    const std::size_t idat = at[1];
    REQUIRE(std::memcmp(good.data() + idat + 4, "IDAT", 4) == 0);
    const std::uint32_t idat_len = be32(good.data() + idat);
    auto splice = [&](std::size_t pos, const std::vector<std::uint8_t>& chunk) {
        auto f = good;
        f.insert(f.begin() + std::ptrdiff_t(pos), chunk.begin(), chunk.end());
        return f;
    };
    auto bad_crc = png_chunk("tEXt", {'C', 'o', 'm', 'm', 'e', 'n', 't', 0, 'x'});
    bad_crc.back() ^= 1;
    std::vector<std::uint8_t> short_data(good.data() + idat + 8, good.data() + idat + 8 + idat_len - 40);
    auto truncated_stream = good;  // the deflate stream cut short, its chunk's CRC right
    {
        const auto c = png_chunk("IDAT", short_data);
        truncated_stream.erase(truncated_stream.begin() + std::ptrdiff_t(idat),
                               truncated_stream.begin() + std::ptrdiff_t(idat + 12 + idat_len));
        truncated_stream.insert(truncated_stream.begin() + std::ptrdiff_t(idat), c.begin(), c.end());
    }
    auto flipped = good;  // a bit of the deflate data flipped, the CRC then made right again
    flipped[idat + 8 + idat_len / 2] ^= 0x10;
    put32(flipped.data() + idat + 8 + idat_len,
          std::uint32_t(crc32(crc32(0, nullptr, 0), flipped.data() + idat + 4, uInt(4 + idat_len))));
    auto no_iend = good;
    no_iend.resize(at.back());
    const std::pair<const char*, std::vector<std::uint8_t>> refused[] = {
        {"an ancillary chunk with a bad CRC", splice(idat, bad_crc)},
        {"the IDAT's CRC wrong", [&] { auto f = good; f[idat + 8 + idat_len] ^= 1; return f; }()},
        {"deflate data cut short", truncated_stream},
        {"deflate data flipped", flipped},
        {"no IEND", no_iend},
    };
    for (const auto& item : refused) {
        const auto& what = item.first;
        const auto& f = item.second;
        CAPTURE(what);
        decode_detail::png_inflated ahead;
        CHECK_FALSE(decode_detail::png_inflate_ahead(f.data(), f.size(), {}, ahead));
        std::string fast_error, slow_error;
        std::vector<std::uint8_t> fast, slow;
        try {
            fast = bytes_of(decode_detail::decode_png_with(f.data(), f.size(), "f.png", {}, {}, true));
        } catch (const data_error& e) {
            fast_error = e.what();
        }
        try {
            slow = bytes_of(decode_detail::decode_png_with(f.data(), f.size(), "f.png", {}, {}, false));
        } catch (const data_error& e) {
            slow_error = e.what();
        }
        CHECK(fast_error == slow_error);
        CHECK(fast == slow);
    }
    // A sound file over the pixel limit is left to the ordinary path, which names the limit.
    decode_detail::png_inflated ahead;
    decode_limits small;
    small.max_pixels = 1000;
    CHECK_FALSE(decode_detail::png_inflate_ahead(good.data(), good.size(), small, ahead));
    CHECK(decode_detail::png_inflate_ahead(good.data(), good.size(), {}, ahead));
}

TEST_CASE("JPEG: gray and RGB decode close to what was written - truncated files are errors, not gray padding") {
    scratch s;
    std::vector<std::uint8_t> gray(32 * 24), rgb(32 * 24 * 3);
    for (std::size_t i = 0; i < gray.size(); ++i) gray[i] = std::uint8_t(40 + (i % 32) * 4);
    for (std::size_t i = 0; i < rgb.size(); ++i) rgb[i] = std::uint8_t(i % 3 == 0 ? 200 : (i % 3 == 1 ? 60 : 100));
    testing::write_jpeg(s.dir / "g.jpg", 32, 24, 1, gray);
    testing::write_jpeg(s.dir / "c.jpeg", 32, 24, 3, rgb);
    const auto g = decode_image_file(s.dir / "g.jpg");
    CHECK(g.channels == 1);
    CHECK(g.height == 24);
    CHECK(g.width == 32);
    double err = 0;
    for (std::size_t i = 0; i < gray.size(); ++i) err = std::max(err, std::abs(g.pixels[i] * 255.0 - gray[i]));
    CHECK(err < 6);  // lossy at quality 95
    const auto c = decode_image_file(s.dir / "c.jpeg");
    CHECK(c.channels == 3);
    CHECK(c.at(0, 5, 5) * 255 == doctest::Approx(200).epsilon(0.03));
    CHECK(c.at(1, 5, 5) * 255 == doctest::Approx(60).epsilon(0.08));
    truncate_file(s.dir / "g.jpg", read_file(s.dir / "g.jpg").size() / 2);
    CHECK_THROWS_WITH_AS(decode_image_file(s.dir / "g.jpg"), doctest::Contains("g.jpg: corrupt JPEG"), data_error);
}

TEST_CASE("DICOM (written with DCMTK): rescale, file and user windows, MONOCHROME1 inverted, 12-bit depth kept") {
    scratch s;
    // 12-bit ramp 0..4000
    std::vector<std::uint16_t> px{0, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4095, 100, 200};
    testing::dicom_spec spec;
    testing::write_dicom(s.dir / "minmax.dcm", spec, px);
    const auto a = decode_dicom(s.dir / "minmax.dcm");
    CHECK(a.bits == 12);
    CHECK(a.height == 3);
    CHECK(a.width == 4);
    CHECK(a.pixels[0] == doctest::Approx(0.0));      // min-max window: 0 -> 0
    CHECK(a.pixels[9] == doctest::Approx(1.0));      // 4095 -> 1
    CHECK(a.pixels[4] == doctest::Approx(2000.0 / 4095).epsilon(0.01));
    CHECK(dicom_patient_id(s.dir / "minmax.dcm") == "P001");

    // MONOCHROME1: low stored values are bright
    spec.photometric = "MONOCHROME1";
    testing::write_dicom(s.dir / "m1.dcm", spec, px);
    const auto m1 = decode_dicom(s.dir / "m1.dcm");
    CHECK(m1.pixels[0] == doctest::Approx(1.0));
    CHECK(m1.pixels[9] == doctest::Approx(0.0));

    // Rescale to Hounsfield-like units (slope 1, intercept -1024) and a file window of
    // centre 40, width 400 (-160..240 HU): stored 864 (-160 HU) -> 0, 1264 (240 HU) -> 1.
    testing::dicom_spec ct;
    ct.photometric = "MONOCHROME2";
    ct.intercept = -1024;
    ct.window_center = 40;
    ct.window_width = 400;
    std::vector<std::uint16_t> hu{0, 864, 1064, 1264, 2000, 1024, 1164, 964, 0, 0, 0, 0};
    testing::write_dicom(s.dir / "ct.dcm", ct, hu);
    const auto w = decode_dicom(s.dir / "ct.dcm");
    CHECK(w.pixels[0] == doctest::Approx(0.0));
    CHECK(w.pixels[1] == doctest::Approx(0.0).epsilon(0.01));
    CHECK(w.pixels[2] == doctest::Approx(0.5).epsilon(0.01));
    CHECK(w.pixels[3] == doctest::Approx(1.0).epsilon(0.01));
    CHECK(w.pixels[4] == doctest::Approx(1.0));
    // A user window overrides the file's: centre 0, width 2000 (-1000..1000 HU): 0 HU -> 0.5
    const auto u = decode_dicom(s.dir / "ct.dcm", {0.0, 2000.0});
    CHECK(u.pixels[5] == doctest::Approx(0.5).epsilon(0.01));

    truncate_file(s.dir / "ct.dcm", 300);
    CHECK_THROWS_WITH_AS(decode_dicom(s.dir / "ct.dcm"), doctest::Contains("ct.dcm"), data_error);
    std::ofstream(s.dir / "junk.dcm") << "junk";
    CHECK_THROWS_WITH_AS(decode_dicom(s.dir / "junk.dcm"), doctest::Contains("junk.dcm: not a readable DICOM file"), data_error);
}

TEST_CASE("CSV manifests: multi-class with names and splits, multi-label, and line-numbered errors") {
    scratch s;
    fs::create_directories(s.dir / "img");
    for (int i = 0; i < 4; ++i) testing::write_png(s.dir / "img" / (std::to_string(i) + ".png"), 2, 2, 1, 8, std::vector<std::uint16_t>(4, std::uint16_t(i * 50)));
    {
        std::ofstream m(s.dir / "mc.csv");
        m << "path,patient_id,label,split\n"
          << "img/0.png,P1,pneumonia,train\n"
          << "img/1.png,P1,pneumonia,train\n"
          << "\n"
          << "\"img/2.png\", P2 ,normal,test\n"
          << "img/3.png,P3,\"effusion, left\",val\n";
    }
    const auto mc = read_csv_manifest(s.dir / "mc.csv");
    CHECK(mc.size() == 4);
    CHECK(mc.task == task_kind::multiclass);
    CHECK(mc.class_names == std::vector<std::string>{"effusion, left", "normal", "pneumonia"});
    CHECK(mc.labels == std::vector<int>{2, 2, 1, 0});
    CHECK(mc.patients[0] == mc.patients[1]);
    CHECK(mc.patients[1] != mc.patients[2]);
    CHECK(mc.splits == std::vector<std::string>{"train", "train", "test", "val"});
    CHECK(mc.load(2).pixels[0] == doctest::Approx(100 / 255.0));
    {
        std::ofstream m(s.dir / "ml.csv");
        m << "image,patient,atelectasis,effusion,mass\n"
          << "img/0.png,A,1,0,1\n"
          << "img/1.png,B,0,0,0\n";
    }
    const auto ml = read_csv_manifest(s.dir / "ml.csv");
    CHECK(ml.task == task_kind::multilabel);
    CHECK(ml.num_classes == 3);
    CHECK(ml.targets == std::vector<float>{1, 0, 1, 0, 0, 0});
    CHECK(ml.class_names == std::vector<std::string>{"atelectasis", "effusion", "mass"});

    auto bad = [&](const std::string& body) {
        std::ofstream(s.dir / "bad.csv") << body;
        return s.dir / "bad.csv";
    };
    CHECK_THROWS_WITH_AS(read_csv_manifest(bad("path,patient_id,label\nimg/0.png,P1\n")),
                         doctest::Contains("bad.csv:2: 2 fields, the header has 3"), data_error);
    CHECK_THROWS_WITH_AS(read_csv_manifest(bad("path,patient_id,label\nimg/0.png,P1,a\nimg/9.png,P2,b\n")),
                         doctest::Contains("bad.csv:3: image"), data_error);
    CHECK_THROWS_WITH_AS(read_csv_manifest(bad("path,label,split\nimg/0.png,a,training\n")),
                         doctest::Contains("bad.csv:2: split 'training' is not train, val or test"), data_error);
    CHECK_THROWS_WITH_AS(read_csv_manifest(bad("path,x,y\nimg/0.png,1,2\n")),
                         doctest::Contains("bad.csv:2: label column 'y' has '2' (0 or 1 expected)"), data_error);
    CHECK_THROWS_WITH_AS(read_csv_manifest(bad("path,label\nimg/0.png,\"open\n")),
                         doctest::Contains("bad.csv:2: unterminated quoted field"), data_error);
    CHECK_THROWS_WITH_AS(read_csv_manifest(bad("patient,label\nP,1\n")), doctest::Contains("bad.csv:1: no path column"),
                         data_error);
    // A path the system cannot look up (a name over NAME_MAX; found by the fuzzer) is the line's error too.
    CHECK_THROWS_WITH_AS(read_csv_manifest(bad("path,label\n" + std::string(5000, 'x') + ".png,1\n")),
                         doctest::Contains("bad.csv:2: image"), data_error);
    CHECK_THROWS_WITH_AS(read_csv_manifest(s.dir / "none.csv"), doctest::Contains("cannot open manifest"), data_error);
}

TEST_CASE("MedMNIST .npz written by NumPy: stored and compressed, gray, RGB and multi-label - bad arrays") {
    scratch s;
    const std::string script = R"PY(
import numpy as np, sys
d = sys.argv[1]
r = np.random.default_rng(0)
np.savez_compressed(d + '/gray.npz', train_images=r.integers(0, 256, (5, 28, 28), dtype=np.uint8),
    train_labels=np.array([[0], [3], [1], [3], [2]], dtype=np.uint8),
    test_images=np.zeros((2, 28, 28), np.uint8), test_labels=np.array([[4], [0]], dtype=np.uint8))
np.savez(d + '/rgb.npz', val_images=np.full((3, 8, 8, 3), 255, np.uint8), val_labels=np.array([[1], [0], [1]], np.int64))
np.savez(d + '/ml.npz', test_images=np.zeros((2, 4, 4), np.uint8), test_labels=np.array([[1, 0, 1], [0, 0, 1]], np.uint8))
np.savez(d + '/float.npz', train_images=np.zeros((2, 4, 4), np.float32), train_labels=np.zeros((2, 1), np.uint8))
np.savez(d + '/short.npz', train_images=np.zeros((2, 4, 4), np.uint8), train_labels=np.zeros((3, 1), np.uint8))
# A member whose .npy header promises a terabyte in a few bytes of data (stored and deflated).
import zipfile
head = b"{'descr': '|u1', 'fortran_order': False, 'shape': (1000000, 1000, 1000), }"
head += b' ' * (63 - len(head) % 64) + b'\n'
lie = b'\x93NUMPY\x01\x00' + len(head).to_bytes(2, 'little') + head + bytes(16)
for name, method in [('lie-stored.npz', zipfile.ZIP_STORED), ('lie-deflated.npz', zipfile.ZIP_DEFLATED)]:
    with zipfile.ZipFile(d + '/' + name, 'w', method) as z:
        z.writestr('train_images.npy', lie)
)PY";
    std::ofstream(s.dir / "make.py") << script;
    const std::string cmd = std::string(MICLE_TEST_PYTHON) + " " + (s.dir / "make.py").string() + " " + s.dir.string();
    REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, "NumPy (python3-numpy) is needed to write the .npz fixtures: " << cmd);

    const auto tr = read_medmnist(s.dir / "gray.npz", "train");
    CHECK(tr.size() == 5);
    CHECK(tr.labels == std::vector<int>{0, 3, 1, 3, 2});
    CHECK(tr.num_classes == 5);  // the test split's label 4 counts
    const auto raw = read_npz(s.dir / "gray.npz").at("train_images");
    CHECK(tr.load(1).pixels[7] == doctest::Approx(raw.bytes[28 * 28 + 7] / 255.0));
    const auto rgb = read_medmnist(s.dir / "rgb.npz", "val");
    CHECK(rgb.load(0).channels == 3);
    CHECK(rgb.load(2).pixels.back() == 1.0f);
    const auto ml = read_medmnist(s.dir / "ml.npz", "test");
    CHECK(ml.task == task_kind::multilabel);
    CHECK(ml.targets == std::vector<float>{1, 0, 1, 0, 0, 1});
    CHECK_THROWS_WITH_AS(read_medmnist(s.dir / "float.npz", "train"),
                         doctest::Contains("float.npz:train_images: images must be uint8, got dtype '<f4'"), data_error);
    CHECK_THROWS_WITH_AS(read_medmnist(s.dir / "short.npz", "train"),
                         doctest::Contains("short.npz:train_labels: labels must be N x 1 or N x K with N = 2"), data_error);
    CHECK_THROWS_WITH_AS(read_medmnist(s.dir / "gray.npz", "val"), doctest::Contains("no array 'val_images'"), data_error);
    truncate_file(s.dir / "gray.npz", 3000);
    CHECK_THROWS_AS(read_medmnist(s.dir / "gray.npz", "train"), data_error);
    auto bytes = read_file(s.dir / "rgb.npz");
    bytes[200] ^= 0xff;  // inside the first member's data: the CRC catches it
    std::ofstream(s.dir / "flip.npz", std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    CHECK_THROWS_WITH_AS(read_npz(s.dir / "flip.npz"), doctest::Contains("CRC mismatch"), data_error);
    // The .npy header's shape x dtype must account for the member, checked before the
    // terabyte it promises is allocated.
    for (const char* lie : {"lie-stored.npz", "lie-deflated.npz"})
        CHECK_THROWS_WITH_AS(read_npz(s.dir / lie),
                             doctest::Contains("train_images.npy: array data is 16 bytes but shape and dtype '|u1' need 1000000000000"),
                             data_error);
    // The per-image pixel limit applies to arrays too.
    CHECK_THROWS_WITH_AS(read_medmnist(s.dir / "rgb.npz", "val", {.max_pixels = 63}),
                         doctest::Contains("rgb.npz:val_images: image is 8 x 8 = 64 pixels, over the limit of 63"), data_error);
    CHECK(read_medmnist(s.dir / "rgb.npz", "val", {.max_pixels = 64}).size() == 3);
}

TEST_CASE(".npy written by micle: NumPy reads the same shapes and values; a bad array is refused, the old file kept") {
    scratch s;
    npy_array f{"<f4", {3, 2}, std::vector<std::uint8_t>(24)};
    const float values[6] = {0.5f, -1.25f, 3e-8f, 1e30f, -0.0f, 7.0f};
    std::memcpy(f.bytes.data(), values, sizeof values);
    npy_array l{"<i8", {3}, std::vector<std::uint8_t>(24)};
    const std::int64_t labels[3] = {2, 0, -9000000000};
    std::memcpy(l.bytes.data(), labels, sizeof labels);
    npy_array wide{"|u1", {1, 2, 3, 4, 5}, std::vector<std::uint8_t>(120, 9)};
    write_npy(s.dir / "f.npy", f);
    write_npy(s.dir / "l.npy", l);
    write_npy(s.dir / "w.npy", wide);
    const std::string script = R"PY(
import numpy as np, sys
d = sys.argv[1]
f, l, w = np.load(d + '/f.npy'), np.load(d + '/l.npy'), np.load(d + '/w.npy')
assert f.dtype == np.float32 and f.shape == (3, 2), (f.dtype, f.shape)
assert f.tolist() == np.array([0.5, -1.25, 3e-8, 1e30, -0.0, 7.0], np.float32).reshape(3, 2).tolist(), f
assert l.dtype == np.int64 and l.tolist() == [2, 0, -9000000000], l
assert w.dtype == np.uint8 and w.shape == (1, 2, 3, 4, 5) and (w == 9).all()
for name in ['f', 'l', 'w']:
    assert open(d + '/' + name + '.npy', 'rb').read().index(b'\n') % 64 == 63  # data aligned as NumPy aligns it
)PY";
    std::ofstream(s.dir / "check.py") << script;
    const std::string cmd = std::string(MICLE_TEST_PYTHON) + " " + (s.dir / "check.py").string() + " " + s.dir.string();
    CHECK_MESSAGE(std::system(cmd.c_str()) == 0, "NumPy did not read back what write_npy wrote: " << cmd);
    const auto back = npz_detail::parse_npy(read_file(s.dir / "l.npy"), "l.npy");
    CHECK(back.shape == l.shape);
    CHECK(back.bytes == l.bytes);

    npy_array bad{"<f4", {3, 3}, std::vector<std::uint8_t>(24)};  // 9 floats promised, 6 held
    CHECK_THROWS_WITH_AS(write_npy(s.dir / "f.npy", bad), doctest::Contains("f.npy: 24 bytes do not hold"), data_error);
    CHECK_THROWS_WITH_AS(write_npy(s.dir / "f.npy", npy_array{"<c8", {1}, std::vector<std::uint8_t>(8)}),
                         doctest::Contains("cannot write dtype '<c8'"), data_error);
    CHECK(npz_detail::parse_npy(read_file(s.dir / "f.npy"), "f.npy").bytes == f.bytes);  // untouched
    CHECK_THROWS_WITH_AS(write_npy(s.dir / "no-such-dir" / "x.npy", f), doctest::Contains("no-such-dir/.x.npy.tmp."), data_error);
    CHECK_FALSE(fs::exists(s.dir / "no-such-dir"));
}

TEST_CASE("Decoders refuse images over the pixel limit before decoding, naming file, dimensions and the flag") {
    scratch s;
    testing::write_png(s.dir / "g.png", 3, 2, 1, 8, std::vector<std::uint16_t>(6, 7));
    testing::write_jpeg(s.dir / "g.jpg", 32, 24, 1, std::vector<std::uint8_t>(32 * 24, 90));
    testing::dicom_spec spec;
    testing::write_dicom(s.dir / "g.dcm", spec, std::vector<std::uint16_t>(12, 100));  // 4 x 3
    auto limit = [](std::int64_t n) {
        read_options o;
        o.limits.max_pixels = n;
        return o;
    };
    CHECK_THROWS_WITH_AS(decode_image_file(s.dir / "g.png", limit(5)),
                         doctest::Contains("g.png: image is 3 x 2 = 6 pixels, over the limit of 5 pixels per image"), data_error);
    CHECK_THROWS_WITH_AS(decode_image_file(s.dir / "g.png", limit(5)), doctest::Contains("--max-image-pixels"), data_error);
    CHECK(decode_image_file(s.dir / "g.png", limit(6)).pixels.size() == 6);
    CHECK(decode_image_file(s.dir / "g.png", limit(0)).pixels.size() == 6);  // 0: no limit
    CHECK_THROWS_WITH_AS(decode_image_file(s.dir / "g.jpg", limit(767)),
                         doctest::Contains("g.jpg: image is 32 x 24 = 768 pixels, over the limit of 767"), data_error);
    CHECK(decode_image_file(s.dir / "g.jpg", limit(768)).pixels.size() == 768);
    CHECK_THROWS_WITH_AS(decode_image_file(s.dir / "g.dcm", limit(11)),
                         doctest::Contains("g.dcm: image is 4 x 3 = 12 pixels, over the limit of 11"), data_error);
    CHECK(decode_image_file(s.dir / "g.dcm", limit(12)).pixels.size() == 12);
    // The default is Pillow's decompression-bomb limit.
    CHECK(decode_limits{}.max_pixels == 89'478'485);

    // Dimensions that the compressed bytes cannot fill are refused even under the limit:
    // the PNG's and the JPEG's headers patched to 8000 x 8000.
    auto png = read_file(s.dir / "g.png");
    const std::uint8_t dims[] = {0, 0, 0x1f, 0x40, 0, 0, 0x1f, 0x40};  // 8000, 8000 big-endian
    std::memcpy(png.data() + 16, dims, 8);                            // IHDR width and height
    const auto crc = std::uint32_t(crc32(0L, png.data() + 12, 17));   // "IHDR" + 13 bytes
    for (int k = 0; k < 4; ++k) png[std::size_t(29 + k)] = std::uint8_t(crc >> (24 - 8 * k));
    std::ofstream(s.dir / "wide.png", std::ios::binary).write(reinterpret_cast<const char*>(png.data()), std::streamsize(png.size()));
    CHECK_THROWS_WITH_AS(decode_image_file(s.dir / "wide.png"),
                         doctest::Contains("wide.png: corrupt PNG: the header promises 8000 x 8000 pixels (64008000 bytes of "
                                           "image data), more than the"),
                         data_error);
    auto jpg = read_file(s.dir / "g.jpg");
    std::size_t sof = 2;
    while (sof + 9 < jpg.size() && !(jpg[sof] == 0xFF && jpg[sof + 1] == 0xC0)) ++sof;
    REQUIRE(sof + 9 < jpg.size());
    jpg[sof + 5] = 0x1f, jpg[sof + 6] = 0x40, jpg[sof + 7] = 0x1f, jpg[sof + 8] = 0x40;
    std::ofstream(s.dir / "wide.jpg", std::ios::binary).write(reinterpret_cast<const char*>(jpg.data()), std::streamsize(jpg.size()));
    CHECK_THROWS_WITH_AS(decode_image_file(s.dir / "wide.jpg"),
                         doctest::Contains("wide.jpg: corrupt JPEG: the header promises 8000 x 8000 pixels, more than the"),
                         data_error);
}

TEST_CASE("CSV manifests: a line over max_line_bytes is an error naming the line, not an allocation") {
    std::istringstream ok("path,label\n" + std::string(200, 'a') + ".png,1\n");
    read_options o;
    o.max_line_bytes = 100;
    CHECK_THROWS_WITH_AS(parse_csv_manifest(ok, "/nonexistent", "long.csv", o),
                         doctest::Contains("long.csv:2: line is longer than 100 bytes"), data_error);
    std::istringstream header(std::string(1000, 'x'));
    CHECK_THROWS_WITH_AS(parse_csv_manifest(header, "/nonexistent", "nolines.csv", o),
                         doctest::Contains("nolines.csv:1: line is longer than 100 bytes"), data_error);
    std::istringstream last("path,label\nq.png,1");  // no newline at the end: still read
    CHECK_THROWS_WITH_AS(parse_csv_manifest(last, "/nonexistent", "last.csv", o), doctest::Contains("last.csv:2: image"),
                         data_error);
}
