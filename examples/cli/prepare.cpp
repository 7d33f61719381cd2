// micle prepare: a DATA SPEC decoded once into a prepared dataset file (data::prepare).
#include <chrono>

#include "common.hpp"

namespace micle::cli {

const char* prepare_usage =
    "usage: micle prepare --data SPEC --out FILE [--max-side N] [--workers W]\n"
    "  --data SPEC            CSV manifest, MedMNIST .npz, IDX directory, or fashion-mnist\n"
    "  --out FILE             the prepared dataset to write (an uncompressed .npz; replaced only when complete)\n"
    "  --max-side N (512)     shrink each image (area averaging) so that its longer side is at most N pixels\n"
    "  --workers W (2)        decoding threads\n"
    "Decodes every image of every split once (16-bit and DICOM windows kept at 16 bits) and writes it, with\n"
    "its patient, labels, split and source line, into FILE; --data FILE then trains with no decoding per\n"
    "epoch. Choose N at least the training size divided by the square root of the smallest crop area\n"
    "(224 / sqrt(0.08) = 792 keeps every SimCLR crop at full detail; 512 keeps crops of 20% of the image).\n";

int prepare(int argc, char** argv) {
    const options o(argc, argv, 2, with_backend_options({"data", "out", "max-side", "workers"}), {});
    if (o.help()) return std::printf("%s%s", prepare_usage, data_usage), 0;
    one_process("micle prepare");
    data::prepare_options p;
    p.max_side = o.integer("max-side", p.max_side);
    p.workers = int(o.integer("workers", p.workers));
    if (p.max_side < 1) throw usage_error("--max-side must be >= 1");
    if (p.workers < 1) throw usage_error("--workers must be >= 1");
    p.source = o.required("data");
    const fs::path out = o.required("out");
    data::dataset all;
    try {
        all = data::open_all(p.source, open_options_from(o));
    } catch (const value_error& e) {  // a spec that cannot be: the user's mistake
        throw usage_error(e.what());
    }
    const auto start = std::chrono::steady_clock::now();
    auto last = start;
    p.progress = [&](std::int64_t done, std::int64_t total) {
        const auto now = std::chrono::steady_clock::now();
        if (done < total && now - last < std::chrono::seconds(5)) return;
        last = now;
        const double s = std::chrono::duration<double>(now - start).count();
        std::fprintf(stderr, "micle prepare: %lld/%lld images, %.1f images/s\n", (long long)done, (long long)total,
                     double(done) / std::max(s, 1e-9));
    };
    const auto r = data::prepare(all, out, p);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%s: %lld images (%lld shrunk to a longer side of %lld), %.1f MiB, in %.1f s\n", out.string().c_str(),
                (long long)r.images, (long long)r.shrunk, (long long)p.max_side, double(r.bytes) / double(1 << 20), s);
    return 0;
}

}  // namespace micle::cli
