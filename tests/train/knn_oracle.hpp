#pragma once
// The kNN oracle of the trainer tests (test_fit.cpp, test_recipes.cpp): every bank row's
// cosine similarity in double, all sorted, the top k vote with exp(sim / T) weights.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

namespace micle::testing {

/// kNN by brute force; ties broken by the lower index.
inline std::vector<int> brute_force_knn(const std::vector<float>& bank, const std::vector<int>& labels, const std::vector<float>& q,
                                        std::int64_t dim, std::int64_t classes, std::int64_t k, double t) {
    auto norm = [&](const float* x) {
        double s = 0;
        for (std::int64_t d = 0; d < dim; ++d) s += double(x[d]) * x[d];
        return std::sqrt(s);
    };
    std::vector<int> out;
    for (std::size_t i = 0; i * std::size_t(dim) < q.size(); ++i) {
        std::vector<std::pair<double, std::size_t>> sims;
        for (std::size_t j = 0; j < labels.size(); ++j) {
            double dot = 0;
            for (std::int64_t d = 0; d < dim; ++d) dot += double(q[i * std::size_t(dim) + std::size_t(d)]) * bank[j * std::size_t(dim) + std::size_t(d)];
            sims.emplace_back(-dot / (norm(&q[i * std::size_t(dim)]) * norm(&bank[j * std::size_t(dim)])), j);
        }
        std::sort(sims.begin(), sims.end());
        std::vector<double> votes(std::size_t(classes), 0.0);
        for (std::int64_t r = 0; r < std::min<std::int64_t>(k, std::int64_t(sims.size())); ++r)
            votes[std::size_t(labels[sims[std::size_t(r)].second])] += std::exp(-sims[std::size_t(r)].first / t);
        out.push_back(int(std::max_element(votes.begin(), votes.end()) - votes.begin()));
    }
    return out;
}

/// The share of `pred` equal to `labels`.
inline double share_right(const std::vector<int>& pred, const std::vector<int>& labels) {
    double right = 0;
    for (std::size_t i = 0; i < pred.size(); ++i) right += pred[i] == labels[i];
    return right / double(pred.size());
}

}  // namespace micle::testing
