#pragma once
// Evaluation metrics of the paper: top-1 accuracy, ROC AUC (Mann-Whitney form, ties
// counted one half), one-vs-rest macro AUC, per-label and mean AUC for multi-label tasks,
// the confusion matrix, and patient-level aggregation (the mean of each patient's image
// probabilities). Values agree with scikit-learn's (tests/train/test_metrics.cpp).
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <span>
#include <vector>

#include "micle/core/error.hpp"

namespace micle::train::metrics {

/// Area under the ROC curve of `scores` for binary `positive` flags: the probability that
/// a random positive scores above a random negative, ties counting one half (average
/// ranks). NaN when either class is absent.
inline double roc_auc(std::span<const float> scores, std::span<const bool> positive) {
    check(scores.size() == positive.size(), "roc_auc: ", scores.size(), " scores for ", positive.size(), " labels");
    const std::size_t n = scores.size();
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
    double rank_sum = 0;
    std::size_t pos = 0;
    for (std::size_t i = 0; i < n;) {
        std::size_t j = i;
        while (j < n && scores[order[j]] == scores[order[i]]) ++j;
        const double avg_rank = (double(i) + double(j - 1)) / 2.0 + 1.0;  // 1-based average rank of the tie group
        for (std::size_t k = i; k < j; ++k)
            if (positive[order[k]]) {
                rank_sum += avg_rank;
                ++pos;
            }
        i = j;
    }
    const std::size_t neg = n - pos;
    if (pos == 0 || neg == 0) return std::numeric_limits<double>::quiet_NaN();
    return (rank_sum - double(pos) * double(pos + 1) / 2.0) / (double(pos) * double(neg));
}

/// The ROC curve: (false-positive rate, true-positive rate) at every distinct score used
/// as a threshold, from (0, 0) to (1, 1). Empty when either class is absent.
inline std::vector<std::pair<double, double>> roc_curve(std::span<const float> scores, std::span<const bool> positive) {
    check(scores.size() == positive.size(), "roc_curve: ", scores.size(), " scores for ", positive.size(), " labels");
    std::vector<std::size_t> order(scores.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
    double pos = 0, neg = 0;
    for (bool p : positive) (p ? pos : neg) += 1;
    if (pos == 0 || neg == 0) return {};
    std::vector<std::pair<double, double>> out{{0.0, 0.0}};
    double tp = 0, fp = 0;
    for (std::size_t i = 0; i < order.size();) {
        std::size_t j = i;
        while (j < order.size() && scores[order[j]] == scores[order[i]]) (positive[order[j++]] ? tp : fp) += 1;
        out.emplace_back(fp / neg, tp / pos);
        i = j;
    }
    return out;
}

/// Mean of the non-NaN values (NaN if all are NaN).
inline double nan_mean(std::span<const double> v) {
    double s = 0;
    int n = 0;
    for (double x : v)
        if (!std::isnan(x)) s += x, ++n;
    return n ? s / n : std::numeric_limits<double>::quiet_NaN();
}

struct classification_report {
    std::int64_t n = 0;
    double accuracy = 0;                       ///< top-1 (multi-label: mean per-label accuracy at 0.5)
    double auc_macro = 0;                      ///< one-vs-rest macro AUC / mean AUC over labels
    std::vector<double> auc_per_class;         ///< NaN for a class absent (or always present)
    std::vector<std::vector<std::int64_t>> confusion;  ///< multiclass: [true][predicted]
    /// Multi-label: per label, the samples its AUC and accuracy count (those not left out)
    /// and the positives among them.
    std::vector<std::int64_t> n_per_class, positives_per_class;
};

/// A multi-label target that is left out (NaN: an uncertain or unmentioned label, masked).
inline bool left_out(float target) noexcept { return target != target; }

/// probs: N x K class probabilities (rows sum to 1), labels: N class indices.
inline classification_report multiclass(std::span<const float> probs, std::span<const int> labels, std::int64_t k) {
    const auto n = static_cast<std::int64_t>(labels.size());
    check(k > 0 && std::int64_t(probs.size()) == n * k, "metrics::multiclass: ", probs.size(), " probabilities for ", n,
          " samples x ", k, " classes");
    classification_report r;
    r.n = n;
    r.confusion.assign(std::size_t(k), std::vector<std::int64_t>(std::size_t(k), 0));
    std::int64_t correct = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        const float* row = probs.data() + i * k;
        const auto pred = std::max_element(row, row + k) - row;  // first maximum, as numpy's argmax
        check<value_error>(labels[std::size_t(i)] >= 0 && labels[std::size_t(i)] < k, "metrics::multiclass: label ",
                           labels[std::size_t(i)], " of sample ", i, " is outside [0, ", k, ")");
        correct += pred == labels[std::size_t(i)];
        ++r.confusion[std::size_t(labels[std::size_t(i)])][std::size_t(pred)];
    }
    r.accuracy = n ? double(correct) / double(n) : 0.0;
    std::vector<float> col(static_cast<std::size_t>(n));
    std::unique_ptr<bool[]> pos(new bool[std::size_t(std::max<std::int64_t>(n, 1))]);  // span<bool> needs contiguous bools
    for (std::int64_t c = 0; c < k; ++c) {
        for (std::int64_t i = 0; i < n; ++i) {
            col[std::size_t(i)] = probs[std::size_t(i * k + c)];
            pos[std::size_t(i)] = labels[std::size_t(i)] == c;
        }
        r.auc_per_class.push_back(roc_auc(col, std::span<const bool>(pos.get(), std::size_t(n))));
    }
    r.auc_macro = nan_mean(r.auc_per_class);
    return r;
}

/// probs: N x K independent probabilities, targets: N x K in {0, 1}, or NaN where a label is
/// left out: such entries count in neither that label's AUC nor the accuracy.
inline classification_report multilabel(std::span<const float> probs, std::span<const float> targets, std::int64_t k) {
    check(k > 0 && probs.size() == targets.size() && probs.size() % std::size_t(k) == 0, "metrics::multilabel: ",
          probs.size(), " probabilities and ", targets.size(), " targets for ", k, " labels");
    const auto n = std::int64_t(probs.size()) / k;
    classification_report r;
    r.n = n;
    std::int64_t correct = 0, counted = 0;
    for (std::size_t i = 0; i < probs.size(); ++i)
        if (!left_out(targets[i])) correct += (probs[i] >= 0.5f) == (targets[i] >= 0.5f), ++counted;
    r.accuracy = counted ? double(correct) / double(counted) : std::numeric_limits<double>::quiet_NaN();
    std::vector<float> col;
    std::unique_ptr<bool[]> pos(new bool[std::size_t(std::max<std::int64_t>(n, 1))]);
    for (std::int64_t c = 0; c < k; ++c) {
        col.clear();
        std::int64_t positives = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            const float t = targets[std::size_t(i * k + c)];
            if (left_out(t)) continue;
            pos[col.size()] = t >= 0.5f;
            positives += t >= 0.5f;
            col.push_back(probs[std::size_t(i * k + c)]);
        }
        r.auc_per_class.push_back(roc_auc(col, std::span<const bool>(pos.get(), col.size())));
        r.n_per_class.push_back(std::int64_t(col.size()));
        r.positives_per_class.push_back(positives);
    }
    r.auc_macro = nan_mean(r.auc_per_class);
    return r;
}

/// Patient-level aggregation: the mean of each patient's image probabilities (N x K), in
/// order of first appearance, and the patient's target: the label of its images
/// (multiclass: most frequent, ties to the smaller class) or, multi-label, each label
/// positive if any image has it (of the images where it is not left out; left out if it is
/// on every image). Returns the aggregated probabilities; fills the
/// aggregated labels/targets.
struct patient_aggregate {
    std::vector<float> probs;
    std::vector<int> labels;     ///< multiclass
    std::vector<float> targets;  ///< multilabel
    std::vector<std::int64_t> patients;
};
inline patient_aggregate aggregate_by_patient(std::span<const float> probs, std::int64_t k,
                                              std::span<const std::int64_t> patients, std::span<const int> labels,
                                              std::span<const float> targets) {
    const auto n = std::int64_t(patients.size());
    check(std::int64_t(probs.size()) == n * k, "aggregate_by_patient: ", probs.size(), " probabilities for ", n, " x ", k);
    std::map<std::int64_t, std::size_t> index;
    patient_aggregate out;
    std::vector<std::int64_t> counts;
    std::vector<std::map<int, int>> votes;
    for (std::int64_t i = 0; i < n; ++i) {
        auto [it, fresh] = index.emplace(patients[std::size_t(i)], out.patients.size());
        if (fresh) {
            out.patients.push_back(patients[std::size_t(i)]);
            out.probs.resize(out.probs.size() + std::size_t(k), 0.0f);
            counts.push_back(0);
            votes.emplace_back();
            if (!targets.empty()) out.targets.resize(out.targets.size() + std::size_t(k), std::numeric_limits<float>::quiet_NaN());
        }
        const std::size_t p = it->second;
        ++counts[p];
        for (std::int64_t c = 0; c < k; ++c) out.probs[p * std::size_t(k) + std::size_t(c)] += probs[std::size_t(i * k + c)];
        if (!labels.empty()) ++votes[p][labels[std::size_t(i)]];
        if (!targets.empty())
            for (std::int64_t c = 0; c < k; ++c) {  // positive if any image is; left out if every image is
                const float t = targets[std::size_t(i * k + c)];
                float& cur = out.targets[p * std::size_t(k) + std::size_t(c)];
                if (!left_out(t)) cur = left_out(cur) ? t : std::max(cur, t);
            }
    }
    for (std::size_t p = 0; p < out.patients.size(); ++p) {
        for (std::int64_t c = 0; c < k; ++c) out.probs[p * std::size_t(k) + std::size_t(c)] /= float(counts[p]);
        if (!labels.empty())
            out.labels.push_back(std::max_element(votes[p].begin(), votes[p].end(), [](auto& a, auto& b) {
                                     return a.second < b.second;
                                 })->first);
    }
    return out;
}

}  // namespace micle::train::metrics

namespace micle {
namespace metrics = train::metrics;  // also spelled micle::metrics
}  // namespace micle
