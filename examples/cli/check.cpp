// micle check: a pre-flight pass over a DATA SPEC (data::unreadable_samples, data::summarize).
#include "common.hpp"
#include "micle/data/inspect.hpp"

namespace micle::cli {

const char* check_usage =
    "usage: micle check --data SPEC [--workers W]\n"
    "  --data SPEC            CSV manifest, MedMNIST .npz, IDX directory, or fashion-mnist\n"
    "  --workers W (2)        decoding threads\n"
    "Decodes every image of every split once and lists each one that cannot be read (exit 1 if any);\n"
    "prints the splits, class balance, patient bag sizes and patients that appear in two splits.\n";

int check_data(int argc, char** argv) {
    const options o(argc, argv, 2, with_backend_options({"data", "workers"}), {});
    if (o.help()) return std::printf("%s%s", check_usage, data_usage), 0;
    one_process("micle check");
    const std::string spec = o.required("data");
    const int workers = int(o.integer("workers", 2));
    if (workers < 1) throw usage_error("--workers must be >= 1");
    const bool csv = fs::path(spec).extension() == ".csv";
    std::size_t bad = 0;
    std::map<std::string, std::set<std::int64_t>> patients_of;
    std::printf("%s\n", spec.c_str());
    for (const std::string split : {"train", "val", "test"}) {
        std::optional<data::dataset> found;  // each split read once
        try {
            found = data::try_open_split(spec, split, open_options_from(o));
        } catch (const value_error& e) {  // a spec that cannot be: the user's mistake, as in load_split
            throw usage_error(e.what());
        }
        if (!found) {
            std::printf("  %s: none\n", split.c_str());
            continue;
        }
        const auto& d = *found;
        const auto errors = data::unreadable_samples(d, workers);
        const auto s = data::summarize(d);
        bad += errors.size();
        std::printf("  %s: %lld images, %lld patients, %zu unreadable\n", split.c_str(), (long long)s.images, (long long)s.patients,
                    errors.size());
        std::string line;
        for (std::size_t c = 0; c < s.per_class.size(); ++c)
            line += micle::detail::cat(c ? ", " : "", c < d.class_names.size() ? d.class_names[c] : std::to_string(c), ": ",
                                       s.per_class[c], d.task == data::task_kind::multilabel ? " positive" : "");
        std::printf("    classes: %s\n    patient bags (patients x images): ", line.c_str());
        for (const auto& [images, patients] : s.bag_sizes)
            std::printf("%s%lld x %lld", images == s.bag_sizes.begin()->first ? "" : ", ", (long long)patients, (long long)images);
        std::printf("%s\n", csv ? "" : " (each record is its own patient)");
        for (const auto& e : errors) std::printf("    unreadable: %s\n", e.c_str());
        if (csv) patients_of[split].insert(d.patients.begin(), d.patients.end());
    }
    if (csv) {  // patient ids are the manifest's, the same in every split
        std::size_t leaks = 0;
        for (const auto& [a, b] : {std::pair{"train", "val"}, {"train", "test"}, {"val", "test"}}) {
            std::vector<std::int64_t> both;
            std::set_intersection(patients_of[a].begin(), patients_of[a].end(), patients_of[b].begin(), patients_of[b].end(),
                                  std::back_inserter(both));
            if (!both.empty()) std::printf("  LEAK: %zu patients have images in both %s and %s\n", both.size(), a, b);
            leaks += both.size();
        }
        if (leaks == 0) std::printf("  no patient is in two splits\n");
    }
    std::printf(bad ? "%zu unreadable images\n" : "every image decodes\n", bad);
    return bad ? 1 : 0;
}

}  // namespace micle::cli
