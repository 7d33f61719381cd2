// micle check: a pre-flight pass over a DATA SPEC (data::check).
#include "common.hpp"
#include "micle/data/inspect.hpp"

namespace micle::cli {

const char* check_usage =
    "usage: micle check --data SPEC [--workers W] [--allow-leaks]\n"
    "  --data SPEC            CSV manifest, MedMNIST .npz, prepared dataset (micle prepare), IDX directory, or fashion-mnist\n"
    "  --workers W (2)        decoding threads\n"
    "  --allow-leaks          exit 0 although a patient has images in two splits\n"
    "Decodes every image of every split once and lists each one that cannot be read; prints the splits,\n"
    "class balance, patient bag sizes and the patients that appear in two splits (a leak: a test patient\n"
    "seen in training). Exits 1 if an image is unreadable or, without --allow-leaks, a patient leaks.\n";

int check_data(int argc, char** argv) {
    const options o(argc, argv, 2, with_backend_options({"data", "workers"}), {"allow-leaks"});
    if (o.help()) return std::printf("%s%s", check_usage, data_usage), 0;
    one_process("micle check");
    const int workers = int(o.integer("workers", 2));
    if (workers < 1) throw usage_error("--workers must be >= 1");
    try {
        const auto r = data::check(o.required("data"), open_options_from(o), workers, stdout);
        if (!r.leaks.empty() && !o.has("allow-leaks"))
            std::fprintf(stderr, "micle check: %zu patients have images in two splits; fix the manifest's split column "
                                 "(data::patient_split assigns whole patients) or pass --allow-leaks\n", r.leaks.size());
        return r.unreadable || (!r.leaks.empty() && !o.has("allow-leaks")) ? 1 : 0;
    } catch (const value_error& e) {  // a spec that cannot be: the user's mistake, as in load_split
        throw usage_error(e.what());
    }
}

}  // namespace micle::cli
