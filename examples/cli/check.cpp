// micle check: a pre-flight pass over a DATA SPEC (data::check).
#include "common.hpp"
#include "micle/data/inspect.hpp"

namespace micle::cli {

const char* check_usage =
    "usage: micle check --data SPEC [--workers W]\n"
    "  --data SPEC            CSV manifest, MedMNIST .npz, prepared dataset (micle prepare), IDX directory, or fashion-mnist\n"
    "  --workers W (2)        decoding threads\n"
    "Decodes every image of every split once and lists each one that cannot be read (exit 1 if any);\n"
    "prints the splits, class balance, patient bag sizes and patients that appear in two splits.\n";

int check_data(int argc, char** argv) {
    const options o(argc, argv, 2, with_backend_options({"data", "workers"}), {});
    if (o.help()) return std::printf("%s%s", check_usage, data_usage), 0;
    one_process("micle check");
    const int workers = int(o.integer("workers", 2));
    if (workers < 1) throw usage_error("--workers must be >= 1");
    try {
        return data::check(o.required("data"), open_options_from(o), workers, stdout) ? 1 : 0;
    } catch (const value_error& e) {  // a spec that cannot be: the user's mistake, as in load_split
        throw usage_error(e.what());
    }
}

}  // namespace micle::cli
