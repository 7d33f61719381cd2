// micle check: a pre-flight pass over a DATA SPEC - every image decoded once, every
// unreadable one listed with its manifest line, then the splits, class balance, patient
// bags and any patient found in two splits.
#include <thread>

#include "common.hpp"

namespace micle::cli {

const char* check_usage =
    "usage: micle check --data SPEC [--workers W]\n"
    "  --data SPEC            CSV manifest, MedMNIST .npz, IDX directory, or fashion-mnist\n"
    "  --workers W (2)        decoding threads\n"
    "Decodes every image of every split once and lists each one that cannot be read (exit 1 if any);\n"
    "prints the splits, class balance, patient bag sizes and patients that appear in two splits.\n";

namespace {

/// Decodes every sample of `d` on `workers` threads; returns "name: error" for each failure, in order.
std::vector<std::string> unreadable(const data::dataset& d, int workers) {
    std::vector<std::string> errors(static_cast<std::size_t>(d.size()));
    std::vector<std::thread> pool;
    for (int w = 0; w < workers; ++w)
        pool.emplace_back([&, w] {
            for (std::int64_t i = w; i < d.size(); i += workers) {
                try {
                    d.load(i);
                } catch (const std::exception& e) {
                    const std::string what = e.what();
                    const auto& name = d.names[std::size_t(i)];
                    errors[std::size_t(i)] = what.find(name) == std::string::npos ? name + ": " + what : what;
                }
            }
        });
    for (auto& t : pool) t.join();
    std::vector<std::string> out;
    for (auto& e : errors)
        if (!e.empty()) out.push_back(std::move(e));
    return out;
}

}  // namespace

int check_data(int argc, char** argv) {
    const options o(argc, argv, 2, with_backend_options({"data", "workers"}), {});
    if (o.help()) {
        std::printf("%s%s", check_usage, data_usage);
        return 0;
    }
    const std::string spec = o.required("data");
    const int workers = int(o.integer("workers", 2));
    if (workers < 1) throw usage_error("--workers must be >= 1");
    const bool idx = fs::is_directory(spec == "fashion-mnist" ? fs::path(data::fashion_mnist_dir) : fs::path(spec));
    const bool csv = fs::path(spec).extension() == ".csv";
    std::size_t bad = 0;
    std::map<std::string, std::set<std::int64_t>> patients_of;
    std::printf("%s\n", spec.c_str());
    for (const char* split : {"train", "val", "test"}) {
        if (idx && std::string(split) == "val") continue;
        data::dataset d;
        try {
            d = load_split(o, split);
        } catch (const data::data_error& e) {
            const std::string what = e.what(), s(split);  // a manifest or .npz without this split
            if (what.find("has no " + s + " images") != std::string::npos || what.find("no array '" + s + "_images'") != std::string::npos) {
                std::printf("  %s: none\n", split);
                continue;
            }
            throw;
        }
        const auto errors = unreadable(d, workers);
        bad += errors.size();
        std::map<std::int64_t, std::int64_t> bag_sizes, bags;
        for (auto p : d.patients) ++bags[p];
        for (const auto& [p, n] : bags) ++bag_sizes[n];
        std::printf("  %s: %lld images, %lld patients, %lld unreadable\n", split, (long long)d.size(), (long long)bags.size(),
                    (long long)errors.size());
        std::string balance;
        if (d.task == data::task_kind::multiclass) {
            std::vector<std::int64_t> count(std::size_t(d.num_classes), 0);
            for (int l : d.labels) ++count[std::size_t(l)];
            for (std::int64_t c = 0; c < d.num_classes; ++c)
                balance += micle::detail::cat(c ? ", " : "",
                                              d.class_names.size() > std::size_t(c) ? d.class_names[std::size_t(c)] : std::to_string(c),
                                              ": ", count[std::size_t(c)]);
        } else {
            for (std::int64_t c = 0; c < d.num_classes; ++c) {
                std::int64_t pos = 0;
                for (std::int64_t i = 0; i < d.size(); ++i) pos += d.targets[std::size_t(i * d.num_classes + c)] >= 0.5f;
                balance += micle::detail::cat(c ? ", " : "", d.class_names.size() > std::size_t(c) ? d.class_names[std::size_t(c)] : std::to_string(c),
                                              ": ", pos, " positive");
            }
        }
        std::printf("    classes: %s\n", balance.c_str());
        std::string sizes;
        for (const auto& [n, k] : bag_sizes) sizes += micle::detail::cat(sizes.empty() ? "" : ", ", k, " x ", n);
        std::printf("    patient bags (patients x images): %s%s\n", sizes.c_str(),
                    csv ? "" : " (each record is its own patient)");
        for (const auto& e : errors) std::printf("    unreadable: %s\n", e.c_str());
        if (csv) patients_of[split].insert(d.patients.begin(), d.patients.end());
    }
    if (csv) {
        const char* names[] = {"train", "val", "test"};
        std::size_t leaks = 0;
        for (int a = 0; a < 3; ++a)
            for (int b = a + 1; b < 3; ++b) {
                std::vector<std::int64_t> both;
                std::set_intersection(patients_of[names[a]].begin(), patients_of[names[a]].end(), patients_of[names[b]].begin(),
                                      patients_of[names[b]].end(), std::back_inserter(both));
                if (!both.empty())
                    std::printf("  LEAK: %zu patients have images in both %s and %s\n", both.size(), names[a], names[b]);
                leaks += both.size();
            }
        if (leaks == 0) std::printf("  no patient is in two splits\n");
    }
    std::printf(bad ? "%zu unreadable images\n" : "every image decodes\n", bad);
    return bad ? 1 : 0;
}

}  // namespace micle::cli
