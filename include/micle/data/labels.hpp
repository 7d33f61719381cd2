#pragma once
// Multi-label names and policy: which labels a run uses (--labels), what an uncertain or an
// unmentioned entry becomes (--uncertain, --missing), and labels matched by name across
// datasets (a model trained on CheXpert evaluated on NIH ChestX-ray14).
//
// Names match by their key: lower case, `_` as a space, and NIH's "Effusion" as CheXpert's
// "Pleural Effusion" (torchxrayvision's alias). An entry the policy leaves out becomes
// `left_out` (NaN) in the dataset's targets: masked in the loss and in every metric.
#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "micle/core/error.hpp"
#include "micle/data/dataset.hpp"

namespace micle::data {

/// The 14 findings of CheXpert and MIMIC-CXR's CheXpert labeller, in CheXpert's column order.
inline const std::vector<std::string>& chexpert_findings() {
    static const std::vector<std::string> v{"No Finding",      "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity",
                                            "Lung Lesion",     "Edema",                      "Consolidation", "Pneumonia",
                                            "Atelectasis",     "Pneumothorax",               "Pleural Effusion", "Pleural Other",
                                            "Fracture",        "Support Devices"};
    return v;
}
/// The CheXpert competition's five (Irvin et al. 2019), the paper's mean-AUC labels.
inline const std::vector<std::string>& chexpert5() {
    static const std::vector<std::string> v{"Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"};
    return v;
}
/// NIH ChestX-ray14's 14 findings as its `Finding Labels` column spells them.
inline const std::vector<std::string>& nih_findings() {
    static const std::vector<std::string> v{"Atelectasis", "Cardiomegaly", "Effusion",  "Infiltration",      "Mass",
                                            "Nodule",      "Pneumonia",    "Pneumothorax", "Consolidation", "Edema",
                                            "Emphysema",   "Fibrosis",     "Pleural_Thickening", "Hernia"};
    return v;
}

/// The name labels are matched by: lower case, `_` and runs of blanks as one space, and
/// "effusion" as "pleural effusion".
inline std::string label_key(const std::string& name) {
    std::string k;
    for (char c : name) {
        const char l = c == '_' ? ' ' : char(std::tolower(static_cast<unsigned char>(c)));
        if (l == ' ' && (k.empty() || k.back() == ' ')) continue;
        k += l;
    }
    while (!k.empty() && k.back() == ' ') k.pop_back();
    return k == "effusion" ? "pleural effusion" : k;
}

/// The position of `name` in `names` by label_key, or -1.
inline int find_label(const std::vector<std::string>& names, const std::string& name) {
    const auto key = label_key(name);
    for (std::size_t i = 0; i < names.size(); ++i)
        if (label_key(names[i]) == key) return int(i);
    return -1;
}

/// What a run does with the entries that are not a plain 1 or 0.
enum class uncertain_policy : std::uint8_t {
    ignore,  ///< left out (U-Ignore of the CheXpert paper; the default)
    ones,    ///< as positive (U-Ones)
    zeros,   ///< as negative (U-Zeros)
};
struct label_policy {
    /// --labels: "chexpert5", "all", or a comma-separated list of names; empty: the layout's
    /// default (chexpert5 for CheXpert and MIMIC-CXR, all for NIH).
    std::string labels;
    uncertain_policy uncertain = uncertain_policy::ignore;
    bool missing_zeros = false;  ///< --missing zeros: an unmentioned finding is negative (else left out)
};

inline uncertain_policy parse_uncertain_policy(const std::string& s) {
    if (s == "ignore") return uncertain_policy::ignore;
    if (s == "ones") return uncertain_policy::ones;
    if (s == "zeros") return uncertain_policy::zeros;
    throw value_error("--uncertain must be ignore, ones or zeros, not '" + s + "'");
}
inline bool parse_missing_policy(const std::string& s) {
    if (s == "ignore") return false;
    if (s == "zeros") return true;
    throw value_error("--missing must be ignore or zeros, not '" + s + "'");
}

/// The labels `spec` chooses from `available` (a source's label columns), as positions in
/// it, in the order the spec gives them: "chexpert5", "all", or names separated by commas.
/// `fallback` is the spec used when `spec` is empty. A name the source lacks is an error
/// naming what it has.
inline std::vector<int> choose_labels(const std::string& spec, const std::string& fallback,
                                      const std::vector<std::string>& available, const std::string& source) {
    const std::string s = spec.empty() ? fallback : spec;
    std::vector<int> out;
    if (s == "all") {
        for (int i = 0; i < int(available.size()); ++i) out.push_back(i);
        return out;
    }
    std::vector<std::string> names;
    if (s == "chexpert5") {
        names = chexpert5();
    } else {
        for (std::size_t start = 0;;) {
            const auto comma = s.find(',', start);
            names.push_back(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
    }
    for (const auto& n : names) {
        const int i = find_label(available, n);
        if (i < 0) {
            std::string have;
            for (const auto& a : available) have += (have.empty() ? "" : ", ") + a;
            throw value_error(micle::detail::cat("--labels: ", source, " has no label '", n, "' (it has: ", have, ")"));
        }
        check<value_error>(std::find(out.begin(), out.end(), i) == out.end(), "--labels: '", n, "' is given twice");
        out.push_back(i);
    }
    check<value_error>(!out.empty(), "--labels: no labels chosen");
    return out;
}

/// The target an entry becomes under `p`.
inline float apply_policy(label_state s, const label_policy& p) {
    switch (s) {
        case label_state::positive: return 1.0f;
        case label_state::negative: return 0.0f;
        case label_state::uncertain:
            return p.uncertain == uncertain_policy::ones ? 1.0f : (p.uncertain == uncertain_policy::zeros ? 0.0f : left_out);
        case label_state::missing: return p.missing_zeros ? 0.0f : left_out;
    }
    return left_out;
}

/// A label's entries by what the source wrote (or, without label states, by target).
struct label_count {
    std::int64_t positive = 0, negative = 0, uncertain = 0, missing = 0;
    std::int64_t left_out = 0;  ///< entries the policy masks (uncertain and missing under ignore)
};
inline std::vector<label_count> count_labels(const dataset& d) {
    std::vector<label_count> out(std::size_t(d.task == task_kind::multilabel ? d.num_classes : 0));
    const auto k = std::size_t(d.num_classes);
    for (std::size_t e = 0; e < std::size_t(d.size()) * out.size(); ++e) {
        auto& c = out[e % k];
        c.left_out += is_left_out(d.targets[e]);
        if (d.label_states.empty()) {
            if (!is_left_out(d.targets[e])) ++(d.targets[e] >= 0.5f ? c.positive : c.negative);
            continue;
        }
        switch (d.label_states[e]) {
            case label_state::positive: ++c.positive; break;
            case label_state::negative: ++c.negative; break;
            case label_state::uncertain: ++c.uncertain; break;
            case label_state::missing: ++c.missing; break;
        }
    }
    return out;
}

/// `d` with the labels of a model that knows `names`, matched by label_key: label j of the
/// result is `names[j]`, with d's entries where d has that label and every entry left out
/// where it has not (so its AUC is undefined and the mean is over the shared labels).
/// `absent` gets the names d lacks. A multi-label dataset only.
inline dataset map_labels(const dataset& d, const std::vector<std::string>& names, std::vector<std::string>* absent = nullptr) {
    check<value_error>(d.task == task_kind::multilabel, "map_labels: ", d.source, " is not a multi-label dataset");
    std::vector<int> from;
    for (const auto& n : names) {
        from.push_back(find_label(d.class_names, n));
        if (from.back() < 0 && absent) absent->push_back(n);
    }
    dataset out = d;
    out.num_classes = std::int64_t(names.size());
    out.class_names = names;
    out.targets.clear();
    out.label_states.clear();
    const auto k = std::size_t(d.num_classes);
    for (std::size_t i = 0; i < std::size_t(d.size()); ++i)
        for (int f : from) {
            out.targets.push_back(f < 0 ? left_out : d.targets[i * k + std::size_t(f)]);
            if (!d.label_states.empty()) out.label_states.push_back(f < 0 ? label_state::missing : d.label_states[i * k + std::size_t(f)]);
        }
    out.validate();
    return out;
}

}  // namespace micle::data
