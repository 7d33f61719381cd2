#pragma once
// Intervals and paired tests for the paper's metrics, so that every cell of a results
// table carries its 95% interval and every comparison its p-value:
//   - AUC: DeLong's variance (DeLong, DeLong and Clarke-Pearson 1988), computed from the
//     placement values as pROC does (Sun and Xu 2014); a macro (mean) AUC's variance from
//     the same per-sample components of every class; the paired test of two AUCs on the
//     same images (pROC's roc.test(paired = TRUE, method = "delong")).
//   - accuracy: Wilson's score interval; McNemar's test for two models on the same images
//     (R's mcnemar.test, continuity-corrected).
//   - a seeded bootstrap over clusters (patients): images of one patient are resampled
//     together, so the interval reflects patients, not images; percentile intervals as R's
//     quantile(type = 7), a paired form for comparisons.
// tests/train/test_statistics.cpp checks these against R's pROC and stats.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <numeric>
#include <span>
#include <vector>

#include "micle/core/error.hpp"
#include "micle/core/rng.hpp"

namespace micle::train::stats {

inline constexpr double z95 = 1.959963984540054;  ///< qnorm(0.975)
inline constexpr double nan = std::numeric_limits<double>::quiet_NaN();

struct interval {
    double lo = nan, hi = nan;
};

/// Two-sided p-value of a standard normal statistic.
inline double normal_p(double z) { return std::erfc(std::fabs(z) / std::sqrt(2.0)); }

/// An AUC with DeLong's per-sample components: for a positive, its placement among the
/// negatives (the fraction scored below it, ties one half) minus the AUC over
/// sqrt(m (m - 1)); for a negative, likewise among the m positives over sqrt(n (n - 1)).
/// Then Var(AUC) = |phi|^2, and Cov(AUC1, AUC2) = <phi1, phi2> for two AUCs on the same
/// samples: pROC's S10/m + S01/n, and its covariance for the paired test. Whatever the
/// partition, a mean of AUCs has the mean of their phi as its components.
struct auc_components {
    double auc = nan;
    std::vector<double> phi;  ///< one per sample; empty when the AUC is undefined
    std::int64_t positives = 0, negatives = 0;
    double variance() const {
        double v = 0;
        for (double p : phi) v += p * p;
        return phi.empty() ? nan : v;
    }
};

/// Positions of `scores` in ascending order and the groups of equal scores in it: what both
/// the placements and the weighted (bootstrap) AUC walk through.
struct ranked {
    std::vector<std::size_t> order;
    std::vector<std::size_t> group_end;  ///< one past the end of each group of ties, in order
    explicit ranked(std::span<const float> scores) : order(scores.size()) {
        std::iota(order.begin(), order.end(), std::size_t{0});
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
        for (std::size_t i = 0; i < order.size();) {
            std::size_t j = i + 1;
            while (j < order.size() && scores[order[j]] == scores[order[i]]) ++j;
            group_end.push_back(j);
            i = j;
        }
    }
};

inline auc_components delong(std::span<const float> scores, std::span<const bool> positive) {
    check(scores.size() == positive.size(), "stats::delong: ", scores.size(), " scores for ", positive.size(), " labels");
    for (float s : scores) check<value_error>(std::isfinite(s), "stats::delong: a score is not finite (", s, ")");
    auc_components r;
    for (bool p : positive) ++(p ? r.positives : r.negatives);
    const double m = double(r.positives), n = double(r.negatives);
    if (r.positives == 0 || r.negatives == 0) return r;
    const ranked rk(scores);
    std::vector<double> place(scores.size());
    double neg_below = 0, pos_above = m, auc_sum = 0;
    for (std::size_t i = 0, g = 0; g < rk.group_end.size(); ++g) {
        const std::size_t end = rk.group_end[g];
        double wp = 0, wn = 0;
        for (std::size_t k = i; k < end; ++k) ++(positive[rk.order[k]] ? wp : wn);
        pos_above -= wp;
        for (std::size_t k = i; k < end; ++k) {
            const std::size_t s = rk.order[k];
            place[s] = positive[s] ? (neg_below + 0.5 * wn) / n : (pos_above + 0.5 * wp) / m;
        }
        auc_sum += wp * (neg_below + 0.5 * wn);
        neg_below += wn;
        i = end;
    }
    r.auc = auc_sum / (m * n);
    r.phi.resize(scores.size());
    // one component per sample; a class of one sample has no spread to estimate (pROC: NA)
    const double sp = m > 1 ? std::sqrt(m * (m - 1)) : nan, sn = n > 1 ? std::sqrt(n * (n - 1)) : nan;
    for (std::size_t s = 0; s < scores.size(); ++s) r.phi[s] = (place[s] - r.auc) / (positive[s] ? sp : sn);
    return r;
}

/// The mean of the defined AUCs (classes absent from the data are left out, as in
/// metrics::nan_mean) with its components.
inline auc_components mean_of(std::span<const auc_components> parts) {
    auc_components r;
    int defined = 0;
    for (const auto& p : parts)
        if (!p.phi.empty()) {
            if (r.phi.empty()) r.phi.assign(p.phi.size(), 0.0), r.auc = 0;
            check(p.phi.size() == r.phi.size(), "stats::mean_of: AUCs over different samples");
            for (std::size_t s = 0; s < p.phi.size(); ++s) r.phi[s] += p.phi[s];
            r.auc += p.auc;
            ++defined;
        }
    if (!defined) return r;
    for (double& v : r.phi) v /= defined;
    r.auc /= defined;
    return r;
}

/// estimate +- z95 sd, clipped to [0, 1] (pROC's ci.auc); NaN without a variance.
inline interval normal_interval(double estimate, double variance, bool clip = true) {
    if (!std::isfinite(estimate) || !std::isfinite(variance)) return {};
    const double h = z95 * std::sqrt(std::max(variance, 0.0));
    interval i{estimate - h, estimate + h};
    if (clip) i = {std::max(i.lo, 0.0), std::min(i.hi, 1.0)};
    return i;
}
inline interval delong_interval(const auc_components& a) { return normal_interval(a.auc, a.variance()); }

/// Wilson's score interval for `successes` of `n` at 95% (NaN when n is 0).
inline interval wilson(double successes, double n) {
    if (n <= 0) return {};
    const double p = successes / n, z2 = z95 * z95;
    const double centre = (p + z2 / (2 * n)) / (1 + z2 / n);
    const double half = z95 / (1 + z2 / n) * std::sqrt(p * (1 - p) / n + z2 / (4 * n * n));
    return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

/// A difference between two models on the same samples: A - B, its 95% interval and the
/// two-sided p-value of "no difference".
struct paired_difference {
    double a = nan, b = nan, difference = nan;
    interval ci;
    double statistic = nan, p = nan;
};

/// DeLong's paired test of two AUCs on the same samples and labels.
inline paired_difference delong_paired(const auc_components& a, const auc_components& b) {
    paired_difference d;
    d.a = a.auc, d.b = b.auc, d.difference = a.auc - b.auc;
    if (a.phi.empty() || b.phi.empty()) return d;
    check(a.phi.size() == b.phi.size(), "stats::delong_paired: AUCs over ", a.phi.size(), " and ", b.phi.size(), " samples");
    double v = 0;
    for (std::size_t s = 0; s < a.phi.size(); ++s) v += (a.phi[s] - b.phi[s]) * (a.phi[s] - b.phi[s]);
    d.ci = normal_interval(d.difference, v, false);
    d.statistic = v > 0 ? d.difference / std::sqrt(v) : nan;
    d.p = v > 0 ? normal_p(d.statistic) : (d.difference == 0 ? 1.0 : nan);
    return d;
}

/// McNemar's test of two models' paired right/wrong decisions (R's mcnemar.test with its
/// continuity correction): b = A right and B wrong, c = A wrong and B right,
/// X^2 = (|b - c| - 1)^2 / (b + c) on 1 degree of freedom. p is 1 when b + c is 0.
struct mcnemar_result {
    std::int64_t a_only = 0, b_only = 0;
    double statistic = nan, p = nan;
};
inline mcnemar_result mcnemar(std::span<const bool> a_right, std::span<const bool> b_right) {
    check(a_right.size() == b_right.size(), "stats::mcnemar: ", a_right.size(), " and ", b_right.size(), " decisions");
    mcnemar_result r;
    for (std::size_t i = 0; i < a_right.size(); ++i) r.a_only += a_right[i] && !b_right[i], r.b_only += !a_right[i] && b_right[i];
    const double b = double(r.a_only), c = double(r.b_only);
    if (b + c == 0) return r.statistic = 0, r.p = 1, r;
    r.statistic = std::pow(std::fabs(b - c) - 1, 2) / (b + c);
    r.p = std::erfc(std::sqrt(r.statistic / 2));  // chi-square, 1 df
    return r;
}

/// The AUC of `ranked` scores with integer sample weights (a bootstrap replicate's
/// multiplicities): one pass over the groups of ties, no sort. NaN when a class weighs 0.
inline double weighted_auc(const ranked& rk, std::span<const bool> positive, std::span<const double> w) {
    double neg_below = 0, pos = 0, sum = 0;
    for (std::size_t i = 0, g = 0; g < rk.group_end.size(); ++g) {
        double wp = 0, wn = 0;
        for (; i < rk.group_end[g]; ++i) (positive[rk.order[i]] ? wp : wn) += w[rk.order[i]];
        sum += wp * (neg_below + 0.5 * wn);
        neg_below += wn;
        pos += wp;
    }
    return pos > 0 && neg_below > 0 ? sum / (pos * neg_below) : nan;
}

/// The `q` quantile of the finite values of `v` as R's quantile(type = 7); sorts `v`.
inline double quantile7(std::vector<double>& v, double q) {
    v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); }), v.end());
    if (v.empty()) return nan;
    std::sort(v.begin(), v.end());
    const double h = (double(v.size()) - 1) * q;
    const auto lo = std::size_t(std::floor(h));
    const std::size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (h - double(lo)) * (v[hi] - v[lo]);
}
inline interval percentile_interval(std::vector<double> v) {
    auto w = v;
    return {quantile7(v, 0.025), quantile7(w, 0.975)};
}

struct bootstrap_options {
    int replicates = 2000;
    std::uint64_t seed = 0;
};

/// Replicate weights of a bootstrap over clusters: each replicate draws as many clusters
/// as there are, with replacement, and every sample weighs the number of times its
/// cluster was drawn. `cluster[i]` is sample i's cluster (patient) id; one cluster per
/// sample is the ordinary bootstrap. The draws depend on the seed and the clusters' order
/// of first appearance only.
class cluster_bootstrap {
public:
    cluster_bootstrap(std::span<const std::int64_t> cluster, const bootstrap_options& opt) : opt_(opt), of_(cluster.size()) {
        check<value_error>(opt.replicates >= 1, "bootstrap: need at least 1 replicate, got ", opt.replicates);
        std::map<std::int64_t, std::size_t> index;
        for (std::size_t i = 0; i < cluster.size(); ++i) of_[i] = index.emplace(cluster[i], index.size()).first->second;
        clusters_ = index.size();
    }
    std::size_t clusters() const noexcept { return clusters_; }
    int replicates() const noexcept { return opt_.replicates; }
    /// Calls f(weights) for each replicate in turn; weights has one entry per sample.
    template <class F>
    void each(F&& f) const {
        rng g(opt_.seed);
        std::vector<double> drawn(clusters_), w(of_.size());
        for (int r = 0; r < opt_.replicates; ++r) {
            std::fill(drawn.begin(), drawn.end(), 0.0);
            for (std::size_t k = 0; k < clusters_; ++k) drawn[g.below(clusters_)] += 1;
            for (std::size_t i = 0; i < of_.size(); ++i) w[i] = drawn[of_[i]];
            f(std::span<const double>(w));
        }
    }

private:
    bootstrap_options opt_;
    std::vector<std::size_t> of_;
    std::size_t clusters_ = 0;
};

/// A model's scores on a labelled set: N x K probabilities with N labels (multi-class) or
/// N x K targets in {0, 1} (multi-label; NaN where a label is left out, which then counts in
/// neither that label's AUC nor the accuracy), the inputs of metrics::multiclass/multilabel.
struct scored {
    std::span<const float> probs;
    std::int64_t k = 0;
    std::span<const int> labels;     ///< multi-class
    std::span<const float> targets;  ///< multi-label
    bool multiclass() const noexcept { return !labels.empty() || targets.empty(); }
    std::int64_t n() const { return k ? std::int64_t(probs.size()) / k : 0; }
    bool counted(std::int64_t i, std::int64_t c) const { return multiclass() || !std::isnan(targets[std::size_t(i * k + c)]); }
    /// Class c's one-vs-rest flags and scores over the samples it counts (`rows`: which).
    void column(std::int64_t c, std::vector<float>& s, std::vector<char>& pos, std::vector<std::size_t>* rows = nullptr) const {
        s.clear();
        pos.clear();
        if (rows) rows->clear();
        for (std::int64_t i = 0; i < n(); ++i) {
            if (!counted(i, c)) continue;
            s.push_back(probs[std::size_t(i * k + c)]);
            pos.push_back(multiclass() ? labels[std::size_t(i)] == c : targets[std::size_t(i * k + c)] >= 0.5f);
            if (rows) rows->push_back(std::size_t(i));
        }
    }
    /// The decisions accuracy counts: N argmax hits (multi-class), or a hit at 0.5 per label
    /// entry not left out, and in `sample` the sample each belongs to.
    std::vector<bool> right(std::vector<std::size_t>* sample = nullptr) const {
        std::vector<bool> r;
        const auto rows = n();
        if (sample) sample->clear();
        for (std::int64_t i = 0; i < rows; ++i) {
            if (multiclass()) {
                const float* row = probs.data() + i * k;
                r.push_back(std::max_element(row, row + k) - row == labels[std::size_t(i)]);
                if (sample) sample->push_back(std::size_t(i));
                continue;
            }
            for (std::int64_t c = 0; c < k; ++c) {
                const auto e = std::size_t(i * k + c);
                if (std::isnan(targets[e])) continue;
                r.push_back((probs[e] >= 0.5f) == (targets[e] >= 0.5f));
                if (sample) sample->push_back(std::size_t(i));
            }
        }
        return r;
    }
    void validate(const char* what) const {
        check<value_error>(k > 0 && probs.size() % std::size_t(k) == 0, what, ": ", probs.size(), " scores for ", k, " classes");
        check<value_error>(multiclass() ? std::int64_t(labels.size()) == n() : targets.size() == probs.size(), what, ": ",
                           multiclass() ? labels.size() : targets.size(), " labels for ", n(), " samples");
    }
};

/// 95% intervals of accuracy, per-class and macro AUC. `replicates` is 0 for the DeLong
/// and Wilson forms, else the bootstrap's count.
struct intervals {
    interval accuracy, auc_macro;
    std::vector<interval> auc_per_class;
    int replicates = 0;
    std::size_t clusters = 0;
};

namespace detail {
inline std::span<const bool> as_bools(const std::vector<char>& v) {
    return {reinterpret_cast<const bool*>(v.data()), v.size()};  // char and bool: both one byte of 0 or 1
}
static_assert(sizeof(bool) == 1);
/// An AUC over the samples `rows` of n, its components spread over all n (0 for a sample
/// it leaves out: a masked label), so AUCs over different subsets average and pair.
inline auc_components over_all(auc_components a, const std::vector<std::size_t>& rows, std::size_t n) {
    if (a.phi.empty() || rows.size() == n) return a;
    std::vector<double> phi(n, 0.0);
    for (std::size_t r = 0; r < rows.size(); ++r) phi[rows[r]] = a.phi[r];
    a.phi = std::move(phi);
    return a;
}
}  // namespace detail

/// DeLong per class and for the macro mean (the components of each class, averaged), Wilson
/// for accuracy. Per-class AUCs also come back in `components` when it is given.
inline intervals analytic_intervals(const scored& s, std::vector<auc_components>* components = nullptr) {
    s.validate("stats::analytic_intervals");
    intervals out;
    std::vector<auc_components> parts;
    std::vector<float> col;
    std::vector<char> pos;
    std::vector<std::size_t> rows;
    for (std::int64_t c = 0; c < s.k; ++c) {
        s.column(c, col, pos, &rows);
        parts.push_back(detail::over_all(delong(col, detail::as_bools(pos)), rows, std::size_t(s.n())));
        out.auc_per_class.push_back(delong_interval(parts.back()));
    }
    out.auc_macro = delong_interval(mean_of(parts));
    const auto right = s.right();
    out.accuracy = wilson(double(std::count(right.begin(), right.end(), true)), double(right.size()));
    if (components) *components = std::move(parts);
    return out;
}

/// Metrics of one replicate from sample weights: accuracy, per-class AUC, their mean.
class weighted_metrics {
public:
    explicit weighted_metrics(const scored& s) : s_(s), right_(s.right(&sample_)) {
        s.validate("stats::bootstrap");
        std::vector<float> col;
        for (std::int64_t c = 0; c < s.k; ++c) {
            std::vector<char> pos;
            std::vector<std::size_t> rows;
            s.column(c, col, pos, &rows);
            ranks_.emplace_back(col);
            pos_.push_back(std::move(pos));
            rows_.push_back(rows.size() == samples() ? std::vector<std::size_t>{} : std::move(rows));
        }
    }
    std::int64_t k() const noexcept { return s_.k; }
    std::size_t samples() const noexcept { return std::size_t(s_.n()); }
    /// Fills auc (K values) and returns the macro AUC; `accuracy` too.
    double operator()(std::span<const double> w, std::vector<double>& auc, double& accuracy) const {
        auc.resize(std::size_t(s_.k));
        for (std::size_t c = 0; c < auc.size(); ++c) {
            if (rows_[c].empty()) {
                auc[c] = weighted_auc(ranks_[c], detail::as_bools(pos_[c]), w);
                continue;
            }
            sub_.resize(rows_[c].size());  // the weights of the samples this label counts
            for (std::size_t r = 0; r < sub_.size(); ++r) sub_[r] = w[rows_[c][r]];
            auc[c] = weighted_auc(ranks_[c], detail::as_bools(pos_[c]), sub_);
        }
        double hit = 0, all = 0;
        for (std::size_t d = 0; d < right_.size(); ++d) all += w[sample_[d]], hit += right_[d] ? w[sample_[d]] : 0.0;
        accuracy = all > 0 ? hit / all : nan;
        double sum = 0;
        int defined = 0;
        for (double a : auc)
            if (!std::isnan(a)) sum += a, ++defined;
        return defined ? sum / defined : nan;
    }

private:
    scored s_;
    std::vector<std::size_t> sample_;  // per decision, its sample
    std::vector<bool> right_;
    std::vector<ranked> ranks_;
    std::vector<std::vector<char>> pos_;
    std::vector<std::vector<std::size_t>> rows_;  // per class, the samples it counts (empty: all)
    mutable std::vector<double> sub_;
};

/// Percentile intervals from a bootstrap over `cluster` (patient ids, one per sample).
inline intervals bootstrap_intervals(const scored& s, std::span<const std::int64_t> cluster, const bootstrap_options& opt) {
    const weighted_metrics metric(s);
    check<value_error>(cluster.size() == metric.samples(), "stats::bootstrap_intervals: ", cluster.size(), " patient ids for ",
                       metric.samples(), " samples");
    const cluster_bootstrap boot(cluster, opt);
    std::vector<double> acc, macro;
    std::vector<std::vector<double>> per(std::size_t(s.k));
    std::vector<double> auc;
    boot.each([&](std::span<const double> w) {
        double a = 0;
        macro.push_back(metric(w, auc, a));
        acc.push_back(a);
        for (std::size_t c = 0; c < auc.size(); ++c) per[c].push_back(auc[c]);
    });
    intervals out;
    out.accuracy = percentile_interval(acc);
    out.auc_macro = percentile_interval(macro);
    for (auto& v : per) out.auc_per_class.push_back(percentile_interval(v));
    out.replicates = opt.replicates;
    out.clusters = boot.clusters();
    return out;
}

/// Two models on the same samples.
struct comparison {
    paired_difference accuracy, auc_macro;
    std::vector<paired_difference> auc_per_class;
    mcnemar_result mcnemar;  ///< analytic form only
    int replicates = 0;      ///< 0: DeLong and McNemar; else the paired bootstrap's count
    std::size_t clusters = 0;
};

namespace detail {
inline void check_same_samples(const scored& a, const scored& b) {
    a.validate("stats::compare (model A)");
    b.validate("stats::compare (model B)");
    check<value_error>(a.k == b.k && a.n() == b.n() && a.multiclass() == b.multiclass(), "stats::compare: model A scores ", a.n(),
                       " x ", a.k, ", model B ", b.n(), " x ", b.k, ": not the same samples");
    const bool same = a.multiclass() ? std::equal(a.labels.begin(), a.labels.end(), b.labels.begin())
                                     : std::equal(a.targets.begin(), a.targets.end(), b.targets.begin(), [](float x, float y) {
                                           return x == y || (std::isnan(x) && std::isnan(y));  // left out in both
                                       });
    check<value_error>(same, "stats::compare: the two models were scored against different labels");
}
inline double accuracy_of(const std::vector<bool>& r) {
    return r.empty() ? nan : double(std::count(r.begin(), r.end(), true)) / double(r.size());
}
}  // namespace detail

/// DeLong's paired test per class and for the macro AUC; McNemar for accuracy (its
/// difference's interval: the Wald interval of paired proportions).
inline comparison analytic_comparison(const scored& a, const scored& b) {
    detail::check_same_samples(a, b);
    comparison out;
    std::vector<auc_components> pa, pb;
    analytic_intervals(a, &pa);
    analytic_intervals(b, &pb);
    for (std::size_t c = 0; c < pa.size(); ++c) out.auc_per_class.push_back(delong_paired(pa[c], pb[c]));
    out.auc_macro = delong_paired(mean_of(pa), mean_of(pb));
    const auto ra = a.right(), rb = b.right();
    std::vector<char> va(ra.begin(), ra.end()), vb(rb.begin(), rb.end());
    out.mcnemar = mcnemar(detail::as_bools(va), detail::as_bools(vb));
    auto& d = out.accuracy;
    d.a = detail::accuracy_of(ra), d.b = detail::accuracy_of(rb), d.difference = d.a - d.b;
    const double n = double(ra.size()), p10 = double(out.mcnemar.a_only) / n, p01 = double(out.mcnemar.b_only) / n;
    d.ci = normal_interval(d.difference, (p10 + p01 - (p10 - p01) * (p10 - p01)) / n, false);
    d.statistic = out.mcnemar.statistic;
    d.p = out.mcnemar.p;
    return out;
}

/// The paired bootstrap over `cluster`: both models' metrics on each replicate, the
/// difference's percentile interval, and p from z = difference / sd of the replicates'
/// differences (pROC's roc.test(method = "bootstrap")).
inline comparison bootstrap_comparison(const scored& a, const scored& b, std::span<const std::int64_t> cluster,
                                       const bootstrap_options& opt) {
    detail::check_same_samples(a, b);
    const weighted_metrics ma(a), mb(b);
    check<value_error>(cluster.size() == ma.samples(), "stats::bootstrap_comparison: ", cluster.size(), " patient ids for ",
                       ma.samples(), " samples");
    const cluster_bootstrap boot(cluster, opt);
    const std::size_t k = std::size_t(a.k);
    std::vector<std::vector<double>> diff(k + 2);  // per class, macro, accuracy
    std::vector<double> auc_a, auc_b;
    boot.each([&](std::span<const double> w) {
        double acc_a = 0, acc_b = 0;
        const double macro_a = ma(w, auc_a, acc_a), macro_b = mb(w, auc_b, acc_b);
        for (std::size_t c = 0; c < k; ++c) diff[c].push_back(auc_a[c] - auc_b[c]);
        diff[k].push_back(macro_a - macro_b);
        diff[k + 1].push_back(acc_a - acc_b);
    });
    const std::vector<double> ones(ma.samples(), 1.0);
    std::vector<double> full_a, full_b;
    double acc_a = 0, acc_b = 0;
    const double macro_a = ma(ones, full_a, acc_a), macro_b = mb(ones, full_b, acc_b);
    auto summarise = [](double va, double vb, std::vector<double> d) {
        paired_difference p;
        p.a = va, p.b = vb, p.difference = va - vb;
        d.erase(std::remove_if(d.begin(), d.end(), [](double x) { return !std::isfinite(x); }), d.end());
        if (d.size() < 2) return p;
        const double mean = std::accumulate(d.begin(), d.end(), 0.0) / double(d.size());
        double ss = 0;
        for (double x : d) ss += (x - mean) * (x - mean);
        const double sd = std::sqrt(ss / double(d.size() - 1));
        p.ci = percentile_interval(d);
        p.statistic = sd > 0 ? p.difference / sd : nan;
        p.p = sd > 0 ? normal_p(p.statistic) : (p.difference == 0 ? 1.0 : nan);
        return p;
    };
    comparison out;
    for (std::size_t c = 0; c < k; ++c) out.auc_per_class.push_back(summarise(full_a[c], full_b[c], diff[c]));
    out.auc_macro = summarise(macro_a, macro_b, diff[k]);
    out.accuracy = summarise(acc_a, acc_b, diff[k + 1]);
    out.replicates = opt.replicates;
    out.clusters = boot.clusters();
    return out;
}

}  // namespace micle::train::stats

namespace micle {
namespace stats = train::stats;  // also spelled micle::stats
}  // namespace micle
