#pragma once
// k-nearest-neighbour classification of backbone features, as lightly (knn_predict) and
// solo-learn report it during self-supervised pretraining: features L2-normalised, cosine
// similarity to every labelled "bank" feature, the k most similar vote for their class
// with weight exp(similarity / temperature), the class with the largest vote wins.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "micle/core/error.hpp"

namespace micle::train {

struct knn_config {
    std::int64_t k = 20;
    double temperature = 0.1;  ///< vote weight exp(sim / temperature); lightly's default
};

/// Rows of `x` ([N, dim]) scaled to unit length (a zero row stays zero).
inline std::vector<float> l2_normalized_rows(std::span<const float> x, std::int64_t dim) {
    std::vector<float> out(x.begin(), x.end());
    for (std::size_t r = 0; r + std::size_t(dim) <= out.size(); r += std::size_t(dim)) {
        double s = 0;
        for (std::int64_t j = 0; j < dim; ++j) s += double(out[r + std::size_t(j)]) * out[r + std::size_t(j)];
        const double inv = s > 0 ? 1.0 / std::sqrt(s) : 0.0;
        for (std::int64_t j = 0; j < dim; ++j) out[r + std::size_t(j)] = float(out[r + std::size_t(j)] * inv);
    }
    return out;
}

/// Predicted classes of `queries` ([Q, dim]) from `bank` ([N, dim]) with `labels` in [0, classes).
inline std::vector<int> knn_predict(std::span<const float> bank, std::span<const int> labels, std::span<const float> queries,
                                    std::int64_t dim, std::int64_t classes, const knn_config& cfg = {}) {
    const auto n = static_cast<std::int64_t>(labels.size());
    check<value_error>(dim > 0 && std::int64_t(bank.size()) == n * dim && queries.size() % std::size_t(dim) == 0,
                       "knn_predict: ", bank.size(), " bank values for ", n, " labels of ", dim, " features, ",
                       queries.size(), " query values");
    check<value_error>(n > 0 && cfg.k > 0 && classes > 0 && cfg.temperature > 0,
                       "knn_predict: need a non-empty bank, k > 0, classes > 0, temperature > 0");
    const auto b = l2_normalized_rows(bank, dim), q = l2_normalized_rows(queries, dim);
    const std::int64_t k = std::min(cfg.k, n), nq = std::int64_t(q.size()) / dim;
    std::vector<int> out(static_cast<std::size_t>(nq));
    std::vector<double> sim(static_cast<std::size_t>(n));
    std::vector<std::int64_t> idx(static_cast<std::size_t>(n));
    std::vector<double> votes(static_cast<std::size_t>(classes));
    for (std::int64_t i = 0; i < nq; ++i) {
        const float* qi = q.data() + i * dim;
        for (std::int64_t j = 0; j < n; ++j) {
            const float* bj = b.data() + j * dim;
            double s = 0;
            for (std::int64_t d = 0; d < dim; ++d) s += double(qi[d]) * bj[d];
            sim[std::size_t(j)] = s;
        }
        std::iota(idx.begin(), idx.end(), 0);
        // The k most similar; ties go to the lower bank index, so the result is deterministic.
        std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](std::int64_t a, std::int64_t c) {
            return sim[std::size_t(a)] > sim[std::size_t(c)] || (sim[std::size_t(a)] == sim[std::size_t(c)] && a < c);
        });
        std::fill(votes.begin(), votes.end(), 0.0);
        for (std::int64_t r = 0; r < k; ++r) {
            const auto j = idx[std::size_t(r)];
            const int label = labels[std::size_t(j)];
            check<value_error>(label >= 0 && label < classes, "knn_predict: bank label ", label, " outside [0, ", classes, ")");
            votes[std::size_t(label)] += std::exp(sim[std::size_t(j)] / cfg.temperature);
        }
        out[std::size_t(i)] = int(std::max_element(votes.begin(), votes.end()) - votes.begin());
    }
    return out;
}

/// The fraction of `queries` whose kNN prediction equals `query_labels`.
inline double knn_accuracy(std::span<const float> bank, std::span<const int> labels, std::span<const float> queries,
                           std::span<const int> query_labels, std::int64_t dim, std::int64_t classes,
                           const knn_config& cfg = {}) {
    const auto pred = knn_predict(bank, labels, queries, dim, classes, cfg);
    check<value_error>(pred.size() == query_labels.size(), "knn_accuracy: ", pred.size(), " queries, ", query_labels.size(),
                       " labels");
    std::int64_t right = 0;
    for (std::size_t i = 0; i < pred.size(); ++i) right += pred[i] == query_labels[i];
    return pred.empty() ? 0.0 : double(right) / double(pred.size());
}

}  // namespace micle::train
